/** A validated Config for a test, from a YAML-shaped object written to a temp file. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig, type Config } from '../../src/config/index.js';

/** Loads `doc` (dataDir defaults to `dir/data`) with no environment variables applied. */
export function testConfig(dir: string, doc: Record<string, unknown> = {}, name = 'pullthrough.yaml'): Config {
  const file = join(dir, name);
  writeFileSync(file, stringify({ dataDir: join(dir, 'data'), ...doc }));
  return loadConfig({ file, env: {} });
}
