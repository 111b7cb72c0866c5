/** A validated Config for a test, from a YAML-shaped object written to a temp file. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig, type Config } from '../../src/config/index.js';

/** Loads `doc` (dataDir defaults to `dir/data`) with no environment variables applied. */
export function testConfig(dir: string, doc: Record<string, unknown> = {}, name = 'pullthrough.yaml'): Config {
  const file = join(dir, name);
  // Tests that start doors in-process name theirs; the admin door's default (127.0.0.1:5001) would
  // collide between tests run side by side, so it is off unless a test names it.
  const listen = doc.listen ? { listen: { admin: null, ...(doc.listen as Record<string, unknown>) } } : {};
  writeFileSync(file, stringify({ dataDir: join(dir, 'data'), ...doc, ...listen }));
  return loadConfig({ file, env: {} });
}
