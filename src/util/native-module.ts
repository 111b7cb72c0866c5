/**
 * The Node-API modules `npm run build` compiles into dist/native (src/native/build.sh), loaded
 * once each. A build without a C compiler has none: callers get the reason and run without.
 */
import { createRequire } from 'node:module';

const loaded = new Map<string, unknown>();

/**
 * dist/native/<name>.node, or why it cannot be used ("is not built …", "failed to load: …").
 * `T` is the module's exports as its C file defines them.
 */
export function nativeModule<T>(name: 'dns-fast-path' | 'tcp-options' | 'send-file'): T | string {
  if (!loaded.has(name)) {
    try {
      loaded.set(name, createRequire(import.meta.url)(`../../native/${name}.node`));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      loaded.set(name, e.code === 'MODULE_NOT_FOUND' ? 'is not built (npm run build needs a C compiler)' : `failed to load: ${e.message}`);
    }
  }
  return loaded.get(name) as T | string;
}
