/**
 * Process, port and temp-dir plumbing for tests: every server a test starts listens on loopback,
 * on a port the OS picked, and is stopped by its PID when the test ends.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { createWriteStream, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A port that was free a moment ago on 127.0.0.1 (the OS picks it: port 0). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A fresh temp directory; `cleanup()` removes it. */
export async function tempDir(prefix = 'pullthrough-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Runs `body` with a fresh temp directory and removes the directory afterwards, whatever `body` did. */
export async function inTempDir<T>(body: (dir: { path: string }) => Promise<T>): Promise<T> {
  const dir = await tempDir();
  try {
    return await body(dir);
  } finally {
    await dir.cleanup();
  }
}

/** A started child process. */
export interface Proc {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything written to stdout+stderr so far (also in `logFile` when given). */
  output(): string;
  /** Resolves with the exit code when the process ends. */
  readonly exited: Promise<number | null>;
  /** SIGTERM by PID, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL by PID. */
  kill9(): Promise<void>;
}

const running = new Set<Proc>();
const exitDirs = new Set<string>();
const exitPids = new Set<number>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  // Node skips 'exit' handlers when a signal kills it (a cancelled or timed-out test file gets
  // SIGTERM), which would orphan every daemon; turn those signals into an orderly exit. Only when
  // nobody else listens, so a test's own handler keeps its meaning.
  for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130], ['SIGHUP', 129]] as const) {
    process.on(sig, () => {
      if (process.listenerCount(sig) === 1) process.exit(code);
    });
  }
  // A test that throws before its cleanup must not leave servers running.
  process.on('exit', () => {
    for (const pid of [...[...running].map((p) => p.pid), ...exitPids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const d of exitDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
  });
}

/**
 * Kills `pid` (SIGKILL) when the test process exits: for grandchildren a daemon starts in their
 * own process group (dockerd's containerd), which dying with their parent would not take along.
 * Returns a function that forgets it.
 */
export function killOnExit(pid: number): () => void {
  hookExit();
  exitPids.add(pid);
  return () => {
    exitPids.delete(pid);
  };
}

/**
 * Removes `path` when the test process exits, for temp dirs a helper hands to the test
 * (e.g. a copied image) that the test may forget to clean up. Returns a function that removes
 * it now and forgets it.
 */
export function removeOnExit(path: string): () => Promise<void> {
  hookExit();
  exitDirs.add(path);
  return async () => {
    exitDirs.delete(path);
    await rm(path, { recursive: true, force: true });
  };
}

/**
 * A fresh temp directory that is also removed when the test process exits (a test that throws, or
 * only stops what it started, never calls `cleanup()`); `cleanup()` removes it now.
 */
export async function ownedTempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const t = await tempDir(prefix);
  return { path: t.path, cleanup: removeOnExit(t.path) };
}

/** Spawns `cmd args`, capturing its output; it is killed when the test process exits. */
export function startProcess(cmd: string, args: string[], opts: SpawnOptions & { logFile?: string } = {}): Proc {
  hookExit();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  const chunks: Buffer[] = [];
  let size = 0;
  const log = opts.logFile ? createWriteStream(opts.logFile) : undefined;
  const keep = (b: Buffer): void => {
    log?.write(b);
    // Keep the last ~4 MiB for assertions and failure messages.
    chunks.push(b);
    size += b.length;
    while (size > 4 << 20 && chunks.length > 1) size -= chunks.shift()!.length;
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      running.delete(proc);
      log?.end();
      resolve(code);
    });
    child.on('error', () => resolve(null));
  });
  const pid = child.pid;
  const proc: Proc = {
    pid,
    child,
    exited,
    output: () => Buffer.concat(chunks).toString('utf8'),
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      const t = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, graceMs);
      await exited;
      clearTimeout(t);
    },
    async kill9() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
      await exited;
    },
  };
  running.add(proc);
  return proc;
}

/** Waits until something accepts TCP connections on host:port. */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 20_000, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) {
      throw new Error(`process exited before listening on ${host}:${port}:\n${proc.output().slice(-4000)}`);
    }
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms${proc ? `:\n${proc.output().slice(-4000)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs a command to completion; rejects with its output when it exits non-zero. */
export async function run(cmd: string, args: string[], opts: SpawnOptions & { timeoutMs?: number; allowFail?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const r = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${r.stderr.slice(-4000)}\n${r.stdout.slice(-2000)}`));
      else resolve(r);
    });
  });
}
