/**
 * A real Redis for tests: Debian's redis-server on 127.0.0.1 and a free port, no persistence,
 * stopped by PID. restart() comes back on the same port (empty, as Redis without persistence does).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, run, startProcess, tempDir, waitForPort, type Proc } from './process.js';

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

/** A Redis Sentinel (redis-server --sentinel) watching the master on `masterPort` as `name`. */
export async function startSentinel(masterPort: number, name = 'mymaster'): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = await tempDir('pullthrough-sentinel-');
  // Sentinel insists on a config file it can rewrite.
  const conf = join(dir.path, 'sentinel.conf');
  await writeFile(conf, [`bind 127.0.0.1`, `port ${port}`, `dir ${dir.path}`, `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`, ''].join('\n'));
  const proc = startProcess('redis-server', [conf, '--sentinel']);
  await waitForPort(port, '127.0.0.1', 20_000, proc);
  return {
    port,
    async stop() {
      await proc.stop();
      await dir.cleanup();
    },
  };
}

/** A 3-master Redis Cluster on loopback (no replicas), ready to serve every slot. */
export async function startRedisCluster(masters = 3): Promise<{ urls: string[]; stop(): Promise<void> }> {
  const dir = await tempDir('pullthrough-rcluster-');
  const nodes: Array<{ port: number; proc: Proc }> = [];
  const stop = async (): Promise<void> => {
    for (const n of nodes) await n.proc.stop();
    await dir.cleanup();
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      // The bus port defaults to port + 10000, past 65535 for most ephemeral ports: pick it too.
      const bus = await freePort();
      const proc = startProcess('redis-server', [
        '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir.path,
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', '--cluster-port', String(bus),
      ]);
      nodes.push({ port, proc });
    }
    for (const n of nodes) await waitForPort(n.port, '127.0.0.1', 20_000, n.proc);
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeoutMs: 30_000 });
    const deadline = Date.now() + 20_000;
    for (const n of nodes) {
      for (;;) {
        const info = await run('redis-cli', ['-p', String(n.port), 'cluster', 'info'], { allowFail: true });
        if (/cluster_state:ok/.test(info.stdout)) break;
        if (Date.now() > deadline) throw new Error(`cluster not ok on ${n.port}:\n${info.stdout}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { urls: nodes.map((n) => `redis://127.0.0.1:${n.port}`), stop };
}
