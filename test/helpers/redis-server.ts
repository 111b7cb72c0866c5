/**
 * A real Redis for tests: Debian's redis-server on 127.0.0.1 and a free port, no persistence,
 * stopped by PID. restart() comes back on the same port (empty, as Redis without persistence does).
 */
import { freePort, startProcess, tempDir, waitForPort, type Proc } from './process.js';

export interface RedisHandle {
  readonly url: string;
  readonly port: number;
  readonly pid: () => number;
  /** SIGTERM by PID. */
  stop(): Promise<void>;
  /** SIGKILL by PID (a crash: open connections are reset). */
  kill9(): Promise<void>;
  /** Starts redis-server again on the same port. */
  restart(): Promise<void>;
}

export async function startRedis(extraArgs: string[] = []): Promise<RedisHandle> {
  const port = await freePort();
  // Its working dir: redis-server never writes here with --save '' and appendonly off, but a
  // temp dir keeps any stray file out of the repository.
  const dir = await tempDir('pullthrough-redis-');
  let proc: Proc | undefined;
  const launch = async (): Promise<void> => {
    proc = startProcess('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir.path, ...extraArgs]);
    await waitForPort(port, '127.0.0.1', 20_000, proc);
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => proc!.pid,
    async stop() {
      await proc?.stop();
      await dir.cleanup();
    },
    async kill9() {
      await proc?.kill9();
    },
    async restart() {
      await proc?.kill9();
      await launch();
    },
  };
}
