/**
 * Child-process entry for the send cap under node:cluster (test/net/tcp-options.test.ts):
 * `node cluster-listener-main.js PORT`. The primary forks one worker, which listens on PORT through
 * the doors' own `listenOn`. In a worker the listening socket is the primary's (round-robin: the
 * worker's server has no descriptor), so the cap cannot be set on it once; for every connection the
 * worker reports, as one JSON line on the primary's stdout, what the kernel says its socket's cap
 * is and whether the worker's listener has a descriptor at all.
 */
import cluster from 'node:cluster';
import { createServer } from 'node:net';
import { listenOn } from '../../src/doors/listen.js';
import { notSentLimit } from '../../src/net/tcp-options.js';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: cluster-listener-main PORT');
  process.exit(2);
}

if (cluster.isPrimary) {
  const worker = cluster.fork();
  worker.on('message', (m: unknown) => process.stdout.write(`${JSON.stringify(m)}\n`));
  process.on('SIGTERM', () => {
    worker.kill('SIGKILL');
    process.exit(0);
  });
} else {
  const server = createServer((s) => {
    // Read once every 'connection' listener has run (listenOn's comes after this one), as a door's
    // first write comes after them.
    setImmediate(() => {
      process.send?.({ socket: notSentLimit(s) ?? null, listener: notSentLimit(server) ?? null });
      s.end();
    });
  });
  await listenOn(server, { host: '127.0.0.1', port });
  process.send?.({ listening: port });
}
