/**
 * Cached blobs sent by sendfile (src/net/send-file.ts over src/native/send-file.c). First the
 * native transfer on real loopback sockets: the exact bytes of a file or of a span of it, a
 * reader that stops (cancel), a reader that goes away, a file shorter than the span, every
 * duplicated descriptor closed afterwards, and the send cap lifted only for a transfer alone.
 * Then through pullthrough, with a real upstream registry: warm blobs over plain HTTP whole, by
 * range and back to back on one kept-alive connection, counted by the sendfile metric; a client
 * that drops mid-blob leaving no descriptor behind; TLS and `storage.sendfile: false` streamed
 * instead. Which is faster is the bench's to show (docs/performance.md, twentieth round).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { open, readdir, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { Agent, createServer as createHttpServer, get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import { getSystemErrorName } from 'node:util';
import { sendFileBinding, sendFileBody } from '../../src/net/send-file.js';
import { descriptorOf, limitNotSent, NOT_SENT_LOWAT, notSentLimit } from '../../src/net/tcp-options.js';
import { tempDir } from '../helpers/process.js';
import { until } from '../helpers/replicas.js';
import { socketPair } from '../helpers/raw-socket.js';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage } from '../helpers/images.js';
import { metricValue, startPullthrough, type Pullthrough } from '../helpers/pullthrough.js';

const SIZE = 24 << 20;
let tmp: { path: string; cleanup: () => Promise<void> };
let data: Buffer;
let file: FileHandle;

before(async () => {
  tmp = await tempDir();
  data = randomBytes(SIZE);
  await writeFile(join(tmp.path, 'blob'), data);
  file = await open(join(tmp.path, 'blob'), 'r');
});
after(async () => {
  await file?.close();
  await tmp?.cleanup();
});

const native = (): Exclude<ReturnType<typeof sendFileBinding>, string> => {
  const b = sendFileBinding();
  // npm test installs a C compiler (test/setup/install-deps.sh): the module is always built here.
  if (typeof b === 'string') assert.fail(`the send-file module ${b}`);
  return b;
};

/** Descriptors this process holds open. */
const openDescriptors = async (pid: number | 'self' = 'self'): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;

/** Runs a native transfer of [start, start + length) to a fresh pair's client; what it sent and got. */
async function transfer(
  start: number,
  length: number,
  during?: (pair: { client: Socket; peer: Socket }, handle: object) => void,
): Promise<{ errno: number; sent: number; received: Buffer }> {
  const pair = await socketPair();
  try {
    const chunks: Buffer[] = [];
    pair.client.on('data', (c: Buffer) => chunks.push(c));
    pair.client.on('error', () => {});
    const ended = new Promise<{ errno: number; sent: number }>((resolve) => {
      const handle = native().sendFile(descriptorOf(pair.peer)!, file.fd, start, length, (errno, sent) => resolve({ errno, sent }));
      during?.(pair, handle);
    });
    const result = await ended;
    // The sender is done; what it sent is in flight on loopback. End our side and read the rest.
    if (result.errno === 0 || getSystemErrorName(-result.errno) === 'ENODATA') {
      pair.peer.end();
      await once(pair.client, 'end');
    }
    return { ...result, received: Buffer.concat(chunks) };
  } finally {
    pair.close();
  }
}

test('sendfile sends a whole file, and a span of it, byte for byte', async () => {
  const whole = await transfer(0, SIZE);
  assert.equal(whole.errno, 0);
  assert.equal(whole.sent, SIZE);
  assert.ok(whole.received.equals(data), 'the same bytes');
  const span = await transfer(1_000_003, 5_000_017);
  assert.equal(span.errno, 0);
  assert.equal(span.sent, 5_000_017);
  assert.ok(span.received.equals(data.subarray(1_000_003, 6_000_020)));
});

test('a span past the end of the file ends with ENODATA after the bytes there are', async () => {
  const r = await transfer(SIZE - 1000, 5000);
  assert.equal(getSystemErrorName(-r.errno), 'ENODATA');
  assert.equal(r.sent, 1000);
  assert.ok(r.received.equals(data.subarray(SIZE - 1000)));
});

test('a reader that stops is cancelled; one that goes away ends the transfer; no descriptor is left behind', async () => {
  const before = await openDescriptors();
  const stopped = await transfer(0, SIZE, ({ client }, handle) => {
    client.pause(); // reads nothing: the send blocks once the socket buffers are full
    setTimeout(() => native().cancel(handle), 300);
  });
  assert.equal(getSystemErrorName(-stopped.errno), 'ECANCELED');
  assert.ok(stopped.sent > 0 && stopped.sent < SIZE, `sent ${stopped.sent} of ${SIZE} before the cancel`);
  const gone = await transfer(0, SIZE, ({ client }) => {
    client.pause();
    setTimeout(() => client.destroy(), 300);
  });
  assert.ok(['EPIPE', 'ECONNRESET'].includes(getSystemErrorName(-gone.errno)), `errno ${getSystemErrorName(-gone.errno)}`);
  assert.ok(gone.sent < SIZE);
  // Cancelling after the end is a no-op.
  const done = await transfer(0, 1000, (_pair, handle) => setTimeout(() => native().cancel(handle), 500));
  assert.equal(done.errno, 0);
  assert.equal(await openDescriptors(), before, 'the duplicated socket and file descriptors are closed');
});

test('a transfer alone lifts its socket\'s send cap while it runs; with another under way it keeps it; after, both have it back', async () => {
  const pairs = [await socketPair(), await socketPair()];
  try {
    const received = pairs.map((p) => {
      assert.ok(limitNotSent(p.peer), 'the send cap set, as the doors set it');
      const chunks: Buffer[] = [];
      p.client.on('data', (c: Buffer) => chunks.push(c));
      p.client.pause(); // nothing read yet: each transfer stays under way
      return chunks;
    });
    const start = (p: (typeof pairs)[number]): Promise<{ errno: number; sent: number }> =>
      new Promise((resolve) => native().sendFile(descriptorOf(p.peer)!, file.fd, 0, SIZE, (errno, sent) => resolve({ errno, sent })));
    const [a, b] = pairs as [(typeof pairs)[number], (typeof pairs)[number]];
    const first = start(a);
    await until('the lone transfer to lift its cap', () => notSentLimit(a.peer) === 0, 5000);
    const second = start(b);
    // The second's thread has long filled what its reader's buffers take by then.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(notSentLimit(b.peer), NOT_SENT_LOWAT, 'a transfer with another under way keeps the cap');
    for (const p of pairs) p.client.resume();
    for (const r of await Promise.all([first, second])) assert.deepEqual(r, { errno: 0, sent: SIZE });
    assert.equal(notSentLimit(a.peer), NOT_SENT_LOWAT, 'the lone transfer\'s socket has its cap back');
    assert.equal(notSentLimit(b.peer), NOT_SENT_LOWAT);
    for (const [i, p] of pairs.entries()) {
      p.peer.end();
      await once(p.client, 'end');
      assert.ok(Buffer.concat(received[i]!).equals(data), `transfer ${i + 1}: the same bytes`);
    }
  } finally {
    for (const p of pairs) p.close();
  }
});

test('sendFileBody declines a TLS socket and a span shorter than the body, writing nothing', async () => {
  const pair = await socketPair();
  try {
    const span = { fd: file.fd, start: 0, end: SIZE };
    const res = { flushHeaders: () => assert.fail('nothing is written') } as never;
    const fail = (): void => assert.fail('done is never called');
    assert.equal(sendFileBody(res, new TLSSocket(pair.peer, { isServer: true }), span, 100, fail), false);
    assert.equal(sendFileBody(res, pair.peer, span, SIZE + 1, fail), false);
  } finally {
    pair.close();
  }
});

test('past the cap on transfers under way, a body is left to stream; a finished transfer frees its place', async (t) => {
  const started: boolean[] = [];
  const server = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-length': SIZE });
    const ok = sendFileBody(res, req.socket, { fd: file.fd, start: 0, end: SIZE }, SIZE, (_sent, err) => (err ? res.destroy() : res.end()), 1);
    started.push(ok);
    if (!ok) res.end(data); // what the caller does when sendfile declines: stream the body
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  // The first client reads nothing: its transfer stays under way, holding the only place.
  const stalled = connect((server.address() as { port: number }).port, '127.0.0.1');
  stalled.on('error', () => {});
  t.after(() => {
    stalled.destroy();
    server.closeAllConnections();
    server.close();
  });
  stalled.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  stalled.pause();
  await until('the stalled request to start its transfer', () => started.length >= 1, 5000);
  const second = await get(url);
  assert.ok(second.body.equals(data), 'the second body, streamed, is whole');
  assert.deepEqual(started, [true, false]);
  stalled.destroy();
  // The stalled transfer ends (the client went away) and gives its place back.
  let third: Awaited<ReturnType<typeof get>> | undefined;
  await until(
    'a body sent by sendfile again',
    async () => {
      third = await get(url);
      return started.at(-1) === true;
    },
    5000,
  );
  assert.equal(started.at(-1), true, 'sendfile again once the place is free');
  assert.ok(third?.body.equals(data));
});

// Through pullthrough's doors, with a real upstream registry.
let hub: Upstream;
let pt: Pullthrough;
let ca: string;
let layer: { digest: string; data: Buffer };

before(async () => {
  hub = await startUpstreamRegistry();
  const image = await makeImage({ format: 'oci', seed: 'send-file', layers: 1, layerSize: 6 << 20 });
  await pushImage(hub, 'library/big', 'v1', image);
  layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
  pt = await startPullthrough({ listen: { mirror: '127.0.0.1:0', tls: '127.0.0.1:0' }, registries: { 'docker.io': { upstream: hub.url } } });
  ca = await readFile(join(pt.dataDir, 'ca', 'ca.crt'), 'utf8');
  await warmUp(pt, layer.digest);
});
after(async () => {
  await pt?.cleanup();
  await hub?.stop();
});

const sent = async (): Promise<number> => metricValue(await pt.metrics(), 'pullthrough_served_sendfile_bytes_total');
/**
 * The metric's growth since `from`, read until it reaches `expected` or 2.5 s pass: a request is
 * counted once its response has ended, which may come a moment after the client's last byte.
 */
async function sentSince(from: number, expected: number): Promise<number> {
  await until(`the sendfile metric to grow by ${expected}`, async () => (await sent()) - from >= expected, 2500);
  return (await sent()) - from;
}

test('warm blobs over plain HTTP go by sendfile: whole, by range, and back to back on one connection', async () => {
  const url = `${pt.url}/v2/library/big/blobs/${layer.digest}`;
  const s0 = await sent();
  const whole = await get(url);
  assert.equal(whole.status, 200);
  assert.equal(whole.headers['content-length'], String(layer.data.length));
  assert.equal(sha(whole.body), layer.digest);
  assert.equal(await sentSince(s0, layer.data.length), layer.data.length, 'every byte by sendfile');
  const ranged = await get(url, { range: 'bytes=1000-2000999' });
  assert.equal(ranged.status, 206);
  assert.equal(ranged.headers['content-range'], `bytes 1000-2000999/${layer.data.length}`);
  assert.ok(ranged.body.equals(layer.data.subarray(1000, 2001000)));
  assert.equal(await sentSince(s0, layer.data.length + 2_000_000), layer.data.length + 2_000_000);
  // Keep-alive: the next response on the same connection starts right after the last byte.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const a = await get(url, {}, agent);
    const b = await get(`${pt.url}/v2/library/big/blobs/${layer.digest}`, { range: 'bytes=0-99' }, agent);
    const c = await get(`${pt.url}/v2/`, {}, agent);
    assert.equal(sha(a.body), layer.digest);
    assert.ok(b.body.equals(layer.data.subarray(0, 100)));
    assert.equal(c.status, 200);
    assert.equal(a.localPort, b.localPort, 'one connection');
    assert.equal(b.localPort, c.localPort, 'one connection');
  } finally {
    agent.destroy();
  }
  // The request log counts the bytes sent: its line comes a moment after the response.
  const ranges = (): unknown[] => pt.requests().filter((l) => l.path === `/v2/library/big/blobs/${layer.digest}` && l.status === 206).map((l) => l.bytes);
  await until('both ranged requests in the request log', () => ranges().length >= 2, 2500);
  assert.deepEqual(ranges(), [2_000_000, 100]);
});

test('a client that drops mid-blob leaves no descriptor behind, and the next one gets every byte', async () => {
  const pid = pt.proc.child.pid!;
  await get(`${pt.url}/v2/library/big/blobs/${layer.digest}`);
  const before = await openDescriptors(pid);
  for (let i = 0; i < 3; i++) {
    const s = connect(Number(new URL(pt.url).port), '127.0.0.1');
    s.write(`GET /v2/library/big/blobs/${layer.digest} HTTP/1.1\r\nhost: x\r\n\r\n`);
    s.pause();
    await new Promise((r) => setTimeout(r, 200)); // the send blocks on the unread socket
    s.destroy();
  }
  let now = await openDescriptors(pid);
  for (let i = 0; i < 50 && now > before; i++) {
    await new Promise((r) => setTimeout(r, 100));
    now = await openDescriptors(pid);
  }
  assert.ok(now <= before, `${now} descriptors open, ${before} before`);
  assert.equal(sha((await get(`${pt.url}/v2/library/big/blobs/${layer.digest}`)).body), layer.digest);
});

test('over TLS, and with storage.sendfile false, the same bytes are streamed instead', async () => {
  const s0 = await sent();
  const tls = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const path = `/v2/library/big/blobs/${layer.digest}`;
    httpsGet({ host: '127.0.0.1', port: pt.ports.tls, servername: 'docker.io', path, ca, agent: false, headers: { host: 'docker.io' } }, (res) =>
      collect(res).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject),
    ).on('error', reject);
  });
  assert.equal(tls.status, 200);
  assert.equal(sha(tls.body), layer.digest);
  assert.equal(await sent(), s0, 'TLS is streamed');
  const off = await startPullthrough({ registries: { 'docker.io': { upstream: hub.url } }, storage: { driver: 'fs', sendfile: false } });
  try {
    await warmUp(off, layer.digest);
    const warm = await get(`${off.url}/v2/library/big/blobs/${layer.digest}`);
    assert.equal(sha(warm.body), layer.digest);
    const fromCache = async (): Promise<number> => metricValue(await off.metrics(), 'pullthrough_served_bytes_total', { source: 'cache' });
    await until('the bytes served from the cache counted', async () => (await fromCache()) >= layer.data.length, 2500);
    assert.ok((await fromCache()) >= layer.data.length, 'served from the cache');
    assert.equal(metricValue(await off.metrics(), 'pullthrough_served_sendfile_bytes_total'), 0, 'streamed');
  } finally {
    await off.cleanup();
  }
});

/**
 * Pulls the layer through `mirror` until it is answered from the cache: the first GET fills it,
 * and the commit to storage follows the client's last byte by a moment.
 */
async function warmUp(mirror: Pullthrough, digest: string): Promise<void> {
  const path = `/v2/library/big/blobs/${digest}`;
  for (let i = 0; i < 50; i++) {
    assert.equal(sha((await get(`${mirror.url}${path}`)).body), digest);
    if (mirror.requests().filter((l) => l.path === path).pop()?.cache === 'hit') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail('the layer was never answered from the cache');
}

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

function collect(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('response aborted')));
  });
}

/** A GET over plain HTTP; rejects when the body is cut short. */
function get(
  url: string,
  headers: Record<string, string> = {},
  agent: Agent | false = false,
): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer; localPort: number }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { headers, agent }, (res) => {
      const localPort = res.socket.localPort ?? 0;
      collect(res).then((body) => {
        const length = Number(res.headers['content-length']);
        if (body.length !== length) reject(new Error(`got ${body.length} of ${length} bytes`));
        else resolve({ status: res.statusCode ?? 0, headers: res.headers, body, localPort });
      }, reject);
    }).on('error', reject);
  });
}
