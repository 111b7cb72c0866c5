/**
 * Runs the real pullthrough binary (dist/src/main.js) as a child process with a config written to
 * a temp dir; listeners use port 0 and their ports are read from the "listening" log lines.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { ownedTempDir, removeOnExit, startProcess, type Proc } from './process.js';

/** dist/src/main.js, relative to this compiled file (dist/test/helpers). */
export const MAIN = resolve(import.meta.dirname, '../../src/main.js');

/**
 * What a build without a C compiler gives: a copy of this build's dist/src with no dist/native
 * beside it, inside dist so that its imports still find node_modules. `main` is its main.js;
 * the copy goes at `cleanup()` or, at the latest, when the test process exits.
 */
export function buildWithoutNative(): { main: string; cleanup: () => Promise<void> } {
  const copy = mkdtempSync(join(dirname(dirname(MAIN)), 'no-native-'));
  const cleanup = removeOnExit(copy);
  cpSync(dirname(MAIN), join(copy, 'src'), { recursive: true });
  return { main: join(copy, 'src', 'main.js'), cleanup };
}
/**
 * The Node.js flags pullthrough ships with (package.json's start, the Dockerfile's CMD, main.ts's
 * shebang), so the tests and the bench run it as users do.
 */
export const NODE_FLAGS = ['--max-semi-space-size=4'];
/**
 * The environment pullthrough ships with, by the same launchers (docs/operations.md, Memory):
 * glibc's mmap threshold pinned, so freed large buffers go back to the system.
 * test/deploy.test.ts checks that every launcher sets these and NODE_FLAGS.
 */
export const LAUNCH_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };

/** One JSON log line of pullthrough. */
export type LogLine = Record<string, unknown> & { msg: string; level: string };

export interface Pullthrough {
  readonly proc: Proc;
  readonly dataDir: string;
  readonly configFile: string;
  /** Listener ports by door (mirror, tls, proxy, dns). */
  readonly ports: Readonly<Record<string, number>>;
  /** http://127.0.0.1:PORT of the mirror door. */
  readonly url: string;
  /** `127.0.0.1:PORT` of the mirror door (for skopeo/podman references). */
  readonly host: string;
  logs(): LogLine[];
  /** Request log lines only. */
  requests(): LogLine[];
  /** The /metrics text. */
  metrics(): Promise<string>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  kill9(): Promise<void>;
  /** Stops the process and removes its temp dir (a data dir given in the options is kept). */
  cleanup(): Promise<void>;
}

export interface StartOptions {
  /** Reuse a data dir (restart scenarios). */
  dataDir?: string;
  env?: Record<string, string>;
  /** How long to wait for the listeners (default 20 s). */
  timeoutMs?: number;
  /** The entry script (default MAIN: this build's dist/src/main.js). */
  main?: string;
}

/** The value of a metric line (`name{labels} value`) whose labels include all of `labels`; sums matches. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/**
 * Starts pullthrough with `config` (the YAML shape; `listen` defaults to a mirror on port 0 and
 * `dataDir` to a fresh temp dir) and waits for its listeners.
 */
export async function startPullthrough(config: Record<string, unknown>, opts: StartOptions = {}): Promise<Pullthrough> {
  // Removed at the latest when the test process exits: a test that only stops the process (a
  // restart with its own data dir) or whose start fails never calls cleanup().
  const dir = await ownedTempDir('pullthrough-pt-');
  const dataDir = opts.dataDir ?? join(dir.path, 'data');
  const doc: Record<string, unknown> = { dataDir, listen: { mirror: '127.0.0.1:0' }, ...config };
  // The admin door's default (127.0.0.1:5001) would collide between tests run side by side.
  // Log lines are written as they are logged (log.flushMs 0): tests read them right after the
  // request they describe; batching (the default) is checked in observability/logger.test.ts.
  const full = {
    ...doc,
    listen: { admin: '127.0.0.1:0', ...(doc.listen as Record<string, unknown>) },
    log: { flushMs: 0, ...(doc.log as Record<string, unknown> | undefined) },
  };
  const configFile = join(dir.path, 'config.yml');
  await writeFile(configFile, stringify(full));
  const proc = startProcess(process.execPath, [...NODE_FLAGS, opts.main ?? MAIN, 'serve', '--config', configFile], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir.path, ...LAUNCH_ENV, ...opts.env },
  });
  const wanted = Object.entries((full.listen ?? {}) as Record<string, unknown>).filter(([, v]) => v !== null).map(([k]) => k);
  const ports: Record<string, number> = {};
  const parse = (): LogLine[] =>
    proc
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as LogLine;
        } catch {
          return { msg: 'unparsable', level: 'none', line: l };
        }
      });
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  while (wanted.some((w) => ports[w] === undefined)) {
    for (const l of parse()) if (l.msg === 'listening') ports[l.door as string] = l.port as number;
    if (proc.child.exitCode !== null) throw new Error(`pullthrough exited ${proc.child.exitCode}:\n${proc.output().slice(-4000)}`);
    if (Date.now() > deadline) {
      await proc.kill9();
      throw new Error(`pullthrough did not start listening (${wanted.join(', ')}):\n${proc.output().slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const host = `127.0.0.1:${ports.mirror}`;
  return {
    proc,
    dataDir,
    configFile,
    ports,
    url: `http://${host}`,
    host,
    logs: parse,
    requests: () => parse().filter((l) => l.msg === 'request'),
    metrics: async () => (await fetch(`http://${host}/metrics`)).text(),
    stop: () => proc.stop(),
    kill9: () => proc.kill9(),
    async cleanup() {
      await proc.stop();
      // The temp dir holds the config (and the data dir unless one was given, which is kept).
      await dir.cleanup();
    },
  };
}
