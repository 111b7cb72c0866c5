/**
 * ObjectReader (the HTTP client of S3BlobStore.read and of a pull's upstream requests: blob and
 * manifest GETs, HEADs) against a scripted HTTP/1.1 server on a real socket, for what s3rver and
 * docker-registry never send: chunked and close-delimited bodies, heads split across packets,
 * 100 Continue, connections closed while kept alive, a body after a HEAD, error answers and
 * retries, heads that never come, and aborts. The everyday
 * paths (Content-Length bodies from s3rver and the upstream registry) are covered by the BlobStore
 * suite and the pull tests.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ObjectReader, SLAB_SIZE, type BodyPlan } from '../../src/net/object-reader.js';
import { S3BlobStore } from '../../src/storage/s3-blob-store.js';
import { BlobNotFoundError, StorageUnavailableError } from '../../src/storage/errors.js';
import { randomKey, readAll, sha256 } from '../storage/blob-store.suite.js';
import { createCA, issueServerCert } from '../helpers/pki.js';
import { run } from '../helpers/process.js';

interface Request {
  method: string;
  path: string;
  headers: Record<string, string>;
}

type Script = (req: Request, socket: Socket, n: number) => void | Promise<void>;

/** A server that answers each request by running `script` on the raw socket. */
async function scripted(): Promise<{ url: string; connections: () => number; requests: Request[]; set(s: Script): void; close(): Promise<void> }> {
  let script: Script = (_req, socket) => void socket.end('HTTP/1.1 500 Unset\r\ncontent-length: 0\r\n\r\n');
  let connections = 0;
  const requests: Request[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [line, ...rest] = buf.slice(0, end).split('\r\n');
        buf = buf.slice(end + 4);
        const [method, path] = line!.split(' ');
        const headers: Record<string, string> = {};
        for (const h of rest) headers[h.slice(0, h.indexOf(':')).toLowerCase()] = h.slice(h.indexOf(':') + 1).trim();
        const req = { method: method!, path: path!, headers };
        requests.push(req);
        void script(req, socket, requests.length);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    requests,
    set(s) {
      script = s;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const whole: BodyPlan = { skip: 0, take: Infinity };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes `parts` one by one with a pause between, so each arrives as its own read. */
async function trickle(socket: Socket, parts: Array<string | Buffer>): Promise<void> {
  for (const p of parts) {
    socket.write(p);
    await sleep(3);
  }
}

describe('ObjectReader on a scripted HTTP/1.1 server', () => {
  let srv: Awaited<ReturnType<typeof scripted>>;
  let reader: ObjectReader;
  before(async () => {
    srv = await scripted();
  });
  after(async () => {
    reader?.close();
    await srv.close();
  });
  const fresh = (slabSize?: number): ObjectReader => {
    reader?.close();
    return (reader = new ObjectReader({ connectTimeoutMs: 2000, idleTimeoutMs: 2000, ...(slabSize ? { slabSize } : {}) }));
  };

  it('decodes chunked bodies (extensions, trailers, chunks split across reads) and reuses the connection', async () => {
    const r = fresh();
    const data = randomBytes(700_000);
    srv.set(async (_req, socket) => {
      const parts: Array<string | Buffer> = ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'];
      for (let i = 0, n = 1; i < data.length; i += n, n = (n * 7919) % 200_003 + 1) {
        const c = data.subarray(i, i + n);
        parts.push(`${c.length.toString(16)}${n % 3 ? '' : ';ext=1'}\r\n`, c.subarray(0, c.length >> 1), c.subarray(c.length >> 1), '\r\n');
      }
      parts.push('0\r\nx-trailer: 1\r\n\r\n');
      // Small writes and large ones, some coalesced by the kernel: every framing boundary falls
      // somewhere in some read.
      await trickle(socket, [parts.slice(0, 3).join(''), ...parts.slice(3, 40)]);
      socket.write(Buffer.concat(parts.slice(40).map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
    });
    const before = srv.connections();
    for (let i = 0; i < 2; i++) {
      const res = await r.get(new URL(`${srv.url}/b/k`), {}, () => whole);
      assert.equal(sha256(await readAll(res.body!)), sha256(data));
    }
    assert.equal(srv.connections() - before, 1, 'one connection for both');
    assert.deepEqual(r.stats(), { active: 0, idle: 1 });
  });

  it('reads a close-delimited body to the end, and does not reuse that connection', async () => {
    const r = fresh();
    const data = randomBytes(300_000);
    srv.set((_req, socket) => {
      socket.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n');
      socket.end(data);
    });
    const res = await r.get(new URL(`${srv.url}/b/k`), {}, () => whole);
    assert.ok((await readAll(res.body!)).equals(data));
    await sleep(20);
    assert.deepEqual(r.stats(), { active: 0, idle: 0 });
  });

  it('takes a head that arrives a few bytes at a time, after a 100 Continue', async () => {
    const r = fresh();
    srv.set(async (_req, socket) => {
      const text = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-4/10\r\nContent-Length: 3\r\nX-Long: ' + 'y'.repeat(20_000) + '\r\n\r\n234';
      const parts: string[] = [];
      for (let i = 0; i < text.length; i += i < 200 ? 7 : 4096) parts.push(text.slice(i, i + (i < 200 ? 7 : 4096)));
      await trickle(socket, parts);
    });
    const res = await r.get(new URL(`${srv.url}/b/k`), { range: 'bytes=2-4' }, (head) => {
      assert.equal(head.status, 206);
      assert.equal(head.headers['content-range'], 'bytes 2-4/10');
      return whole;
    });
    assert.equal((await readAll(res.body!)).toString(), '234');
    assert.equal(srv.requests.at(-1)!.headers.range, 'bytes=2-4');
  });

  it('cuts the body to the planned window, and drops the connection when the rest is not wanted', async () => {
    const r = fresh();
    const data = randomBytes(2 << 20);
    srv.set((_req, socket) => void socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${data.length}\r\n\r\n`), data])));
    const res = await r.get(new URL(`${srv.url}/b/k`), {}, () => ({ skip: 1000, take: 5000 }));
    assert.ok((await readAll(res.body!)).equals(data.subarray(1000, 6000)));
    await sleep(20);
    assert.deepEqual(r.stats(), { active: 0, idle: 0 });
  });

  it('collects error answers as text, keeping the connection', async () => {
    const r = fresh();
    const xml = '<?xml version="1.0"?><Error><Code>SlowDown</Code></Error>';
    srv.set((_req, socket) => void socket.write(`HTTP/1.1 503 Slow Down\r\ncontent-length: ${xml.length}\r\n\r\n${xml}`));
    const res = await r.get(new URL(`${srv.url}/b/k`), {}, (h) => (h.status === 200 ? whole : 'collect'));
    assert.equal(res.head.status, 503);
    assert.equal(res.text, xml);
    assert.equal(res.body, undefined);
    assert.deepEqual(r.stats(), { active: 0, idle: 1 });
  });

  it('replaces a kept-alive connection the server closed meanwhile, without an error', async () => {
    const r = fresh();
    const served = new WeakMap<Socket, number>();
    srv.set((_req, socket, n) => {
      const k = (served.get(socket) ?? 0) + 1;
      served.set(socket, k);
      // The server closes an idle connection just as the next request arrives on it (the
      // keep-alive race), or just after answering (noticed while idle).
      if (k > 1) return void socket.destroy();
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      if (n % 3 === 0) setTimeout(() => socket.destroy(), 5);
    });
    const conns = srv.connections();
    for (let i = 0; i < 6; i++) {
      const res = await r.get(new URL(`${srv.url}/b/k`), {}, () => whole);
      assert.equal((await readAll(res.body!)).toString(), 'ok');
      await sleep(30);
    }
    assert.equal(srv.connections() - conns, 6, 'a new connection for each');
    assert.equal(r.stats().active, 0);
  });

  it('sends HEADs: no body read whatever the Content-Length, the connection kept for the next request', async () => {
    const r = fresh();
    const data = randomBytes(100_000);
    srv.set((req, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${data.length}\r\ndocker-content-digest: sha256:${sha256(data)}\r\n\r\n`);
      if (req.method === 'GET') socket.write(data);
    });
    const before = srv.connections();
    for (let i = 0; i < 3; i++) {
      const head = await r.get(new URL(`${srv.url}/v2/a/manifests/t`), {}, () => 'collect', { method: 'HEAD' });
      assert.equal(head.head.status, 200);
      assert.equal(head.head.headers['content-length'], String(data.length));
      assert.equal(head.text, '');
    }
    const res = await r.get(new URL(`${srv.url}/v2/a/blobs/b`), {}, () => whole);
    assert.ok((await readAll(res.body!)).equals(data));
    assert.deepEqual(srv.requests.slice(-4).map((q) => q.method), ['HEAD', 'HEAD', 'HEAD', 'GET']);
    assert.equal(srv.connections() - before, 1, 'one connection for three HEADs and a GET');
  });

  it('a server that sends a body after a HEAD: the next request starts again on a new connection and gets its own answer', async () => {
    const r = fresh();
    const data = randomBytes(5_000);
    const stray = Buffer.from('{"schemaVersion":2,"layers":[]}');
    srv.set((req, socket) => {
      // The body a HEAD must not have, sent with the head: it is in place of the next response's head.
      if (req.method === 'HEAD') socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${stray.length}\r\n\r\n`), stray]));
      else socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${data.length}\r\n\r\n`), data]));
    });
    const before = srv.connections();
    const head = await r.get(new URL(`${srv.url}/m`), {}, () => 'collect', { method: 'HEAD' });
    assert.equal(head.head.status, 200);
    const res = await r.get(new URL(`${srv.url}/b`), {}, () => whole);
    assert.ok((await readAll(res.body!)).equals(data), 'the GET got its own bytes, not the stray body');
    assert.ok(srv.connections() - before <= 2, 'at most one new connection');
    // The same when the stray bytes come late, while the connection is idle: it is closed then.
    srv.set((req, socket) => {
      if (req.method !== 'HEAD') return void socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${data.length}\r\n\r\n`), data]));
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${stray.length}\r\n\r\n`);
      setTimeout(() => socket.write(stray), 5);
    });
    await r.get(new URL(`${srv.url}/m`), {}, () => 'collect', { method: 'HEAD' });
    await sleep(50);
    const res2 = await r.get(new URL(`${srv.url}/b`), {}, () => whole);
    assert.ok((await readAll(res2.body!)).equals(data));
    // And when they come only with the next response, in place of its head.
    const pending = new WeakMap<Socket, Buffer>();
    srv.set((req, socket) => {
      const answer = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${req.method === 'HEAD' ? stray.length : data.length}\r\n\r\n`);
      if (req.method === 'HEAD') {
        pending.set(socket, stray);
        return void socket.write(answer);
      }
      socket.write(Buffer.concat([pending.get(socket) ?? Buffer.alloc(0), answer, data]));
      pending.delete(socket);
    });
    const beforeLate = srv.connections();
    await r.get(new URL(`${srv.url}/m`), {}, () => 'collect', { method: 'HEAD' });
    const res3 = await r.get(new URL(`${srv.url}/b`), {}, () => whole);
    assert.ok((await readAll(res3.body!)).equals(data), 'the GET got its own bytes');
    assert.deepEqual(srv.requests.slice(-3).map((q) => q.method), ['HEAD', 'GET', 'GET'], 'the GET was sent again');
    assert.equal(srv.connections() - beforeLate, 1, 'on a new connection');
  });

  it('fails with a typed error when the server goes away mid-body, or answers with garbage', async () => {
    const r = fresh();
    srv.set((_req, socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n');
      socket.end(randomBytes(1000));
    });
    const res = await r.get(new URL(`${srv.url}/b/k`), {}, () => ({ skip: 0, take: 1_000_000 }));
    await assert.rejects(readAll(res.body!), (e: Error & { code?: string }) => e.code === 'ECONNRESET' || e.code === 'ESHORTBODY');
    srv.set((_req, socket) => void socket.end('SSH-2.0-OpenSSH\r\n\r\n'));
    await assert.rejects(r.get(new URL(`${srv.url}/b/k`), {}, () => whole), (e: Error & { code?: string }) => e.code === 'EPROTO');
    await sleep(20);
    assert.equal(r.stats().active, 0);
  });

  it('resolves names with the given lookup, and bounds the wait for a head apart from the body', async () => {
    const looked: string[] = [];
    const r = new ObjectReader({
      connectTimeoutMs: 2000,
      idleTimeoutMs: 5000,
      headTimeoutMs: 300,
      lookup: (host, opts, cb) => {
        looked.push(host);
        // net asks for every address (`all`) when it may try several families.
        const answer = cb as (e: Error | null, a: unknown, f?: number) => void;
        if (opts.all) answer(null, [{ address: '127.0.0.1', family: 4 }]);
        else answer(null, '127.0.0.1', 4);
      },
    });
    try {
      const port = new URL(srv.url).port;
      srv.set((req, socket) => void socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${req.headers['user-agent']!.length}\r\n\r\n${req.headers['user-agent']}`));
      const res = await r.get(new URL(`http://blobs.example:${port}/b/k`), { 'user-agent': 'pullthrough/test' }, () => whole);
      assert.equal((await readAll(res.body!)).toString(), 'pullthrough/test', 'the caller\'s User-Agent, sent once');
      assert.deepEqual(looked, ['blobs.example']);
      // A head that never comes: the head timeout, not the (longer) idle one.
      srv.set(() => {});
      const started = Date.now();
      await assert.rejects(r.get(new URL(`${srv.url}/b/k`), {}, () => whole), /timed out waiting for response headers/);
      assert.ok(Date.now() - started < 3000);
      // A body that starts and stalls: slower than the head timeout is fine as long as bytes come.
      srv.set((_req, socket) => void trickle(socket, ['HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n', 'a']).then(() => sleep(500)).then(() => socket.write('b')));
      const slow = await r.get(new URL(`${srv.url}/b/k`), {}, () => whole);
      assert.equal((await readAll(slow.body!)).toString(), 'ab');
    } finally {
      r.close();
    }
  });

  it('aborts with the signal: before the head (the connection is not retried) and in the middle of a body', async () => {
    const r = fresh();
    srv.set(() => {});
    const early = new AbortController();
    setTimeout(() => early.abort(new Error('caller gave up')), 50);
    await assert.rejects(r.get(new URL(`${srv.url}/b/k`), {}, () => whole, { signal: early.signal }), /caller gave up/);
    srv.set((_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n' + 'x'.repeat(1000)));
    const late = new AbortController();
    const res = await r.get(new URL(`${srv.url}/b/k`), {}, () => whole, { signal: late.signal });
    const reading = readAll(res.body!);
    await sleep(50);
    late.abort(new Error('fill timed out'));
    await assert.rejects(reading, /fill timed out/);
    await sleep(20);
    assert.equal(r.stats().active, 0, 'the aborted connection is gone');
    await assert.rejects(r.get(new URL(`${srv.url}/b/k`), {}, () => whole, { signal: late.signal }), /fill timed out/, 'an aborted signal fails at once');
  });

  it('keeps the slabs of many concurrent bodies for reuse (allocations follow concurrency, not bytes), and lets the surplus go once idle', async () => {
    const r = fresh();
    const size = 8 << 20;
    const bodies = 16;
    const data = randomBytes(size);
    srv.set((_req, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
      socket.write(data);
    });
    // A consumer like the response writer: each chunk handed back a little later (once
    // "written"), the slices of a slab returning out of step with other bodies'.
    const readOne = async (): Promise<string> => {
      const res = await r.get(new URL(`${srv.url}/b/k`), {}, () => whole);
      const body = res.body!;
      const hash = createHash('sha256');
      body.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        setImmediate(() => body.recycle(chunk));
      });
      await once(body, 'end');
      return hash.digest('hex');
    };
    const digests = await Promise.all(Array.from({ length: bodies }, readOne));
    // Reuse must never hand a slab out while a slice of it is still being read.
    for (const d of digests) assert.equal(d, sha256(data));
    const slabsRead = (bodies * size) / SLAB_SIZE;
    assert.ok(r.slabs.allocated <= bodies * 6, `${r.slabs.allocated} slabs allocated for ${slabsRead} slabs' worth of reads by ${bodies} bodies`);
    assert.ok(r.slabs.idle > 8, `the slabs are kept for the next reads (${r.slabs.idle})`);
    await sleep(2_300);
    assert.ok(r.slabs.idle <= 8, `after 2 s without reads at most 8 are kept (${r.slabs.idle})`);
  });

  it('reads into slabs of the size it is given: a body waiting in the socket comes in reads up to 1 MiB, not 256 KiB', async () => {
    const size = 16 << 20;
    const data = randomBytes(size);
    srv.set((_req, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
      socket.write(data);
    });
    /** Reads the body, pausing 20 ms after each of the first chunks so the socket fills up meanwhile; the largest chunk. */
    const largestChunk = async (r: ObjectReader): Promise<number> => {
      const body = (await r.get(new URL(`${srv.url}/b/k`), {}, () => whole)).body!;
      const hash = createHash('sha256');
      let largest = 0;
      let n = 0;
      body.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        largest = Math.max(largest, chunk.length);
        body.recycle(chunk);
        if (n++ < 8) {
          body.pause();
          setTimeout(() => body.resume(), 20);
        }
      });
      await once(body, 'end');
      assert.equal(hash.digest('hex'), sha256(data));
      return largest;
    };
    const big = await largestChunk(fresh(1 << 20));
    assert.ok(big > SLAB_SIZE && big <= 1 << 20, `largest read ${big} bytes with 1 MiB slabs`);
    const small = await largestChunk(fresh());
    assert.ok(small <= SLAB_SIZE, `largest read ${small} bytes with the default slabs`);
  });
});

describe('ObjectReader over HTTPS', () => {
  it('checks the certificate against the usual roots (NODE_EXTRA_CA_CERTS too), sends SNI, reads and reuses', async (t) => {
    const ca = await createCA();
    const cert = await issueServerCert(ca);
    const data = randomBytes(3 << 20);
    const names: Array<string | false | null> = [];
    let connections = 0;
    const server = createTlsServer({ key: cert.keyPem, cert: cert.certPem }, (socket) => {
      connections++;
      names.push(socket.servername);
      socket.on('error', () => {});
      let buf = '';
      socket.on('data', (d) => {
        buf += d.toString('latin1');
        while (buf.includes('\r\n\r\n')) {
          buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${data.length}\r\n\r\n`);
          socket.write(data);
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, r));
    t.after(() => new Promise((r) => server.close(r)));
    const url = `https://localhost:${(server.address() as AddressInfo).port}/b/k`;
    // A child process, since NODE_EXTRA_CA_CERTS is read at start.
    const reader = fileURLToPath(new URL('../../src/net/object-reader.js', import.meta.url));
    const script = `
      import { createHash } from 'node:crypto';
      const { ObjectReader } = await import(${JSON.stringify(reader)});
      const r = new ObjectReader({ connectTimeoutMs: 5000, idleTimeoutMs: 5000 });
      const out = [];
      for (let i = 0; i < 2; i++) {
        try {
          const res = await r.get(new URL(process.argv[1]), {}, () => ({ skip: 0, take: Infinity }));
          const h = createHash('sha256');
          for await (const c of res.body) h.update(c);
          out.push(h.digest('hex'));
        } catch (e) {
          out.push(e.code ?? String(e));
        }
      }
      out.push(r.stats().idle);
      r.close();
      console.log(JSON.stringify(out));`;
    const child = async (env: NodeJS.ProcessEnv) => {
      const r = await run(process.execPath, ['--input-type=module', '-e', script, url], { env: { PATH: process.env.PATH ?? '', ...env }, timeoutMs: 30_000 });
      return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as unknown[];
    };
    assert.deepEqual(await child({ NODE_EXTRA_CA_CERTS: ca.certFile }), [sha256(data), sha256(data), 1]);
    assert.equal(connections, 1, 'the second GET reused the connection');
    assert.deepEqual(names, ['localhost']);
    const untrusted = await child({});
    assert.match(String(untrusted[0]), /CERT|SIGNATURE|ISSUER/);
  });
});

describe('S3BlobStore.read against a scripted endpoint: error mapping and retries', () => {
  let srv: Awaited<ReturnType<typeof scripted>>;
  before(async () => {
    srv = await scripted();
  });
  after(async () => {
    await srv.close();
  });
  const store = (): S3BlobStore =>
    new S3BlobStore({ bucket: 'b', endpoint: srv.url, forcePathStyle: true, region: 'us-east-1', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-never-logged', prefix: 'p' });
  const answer = (status: number, code: string) => (_req: Request, socket: Socket) => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>m</Message></Error>`;
    socket.write(`HTTP/1.1 ${status} X\r\ncontent-type: application/xml\r\ncontent-length: ${xml.length}\r\n\r\n${xml}`);
  };
  const noSecrets = (e: unknown): void => {
    const text = `${(e as Error).message} ${String((e as Error).cause)} ${JSON.stringify(e)}`;
    assert.doesNotMatch(text, /X-Amz-Signature|X-Amz-Credential|secret-never-logged|AKIDEXAMPLE/);
  };

  it('sends a presigned GET with the Range unsigned, and serves the body', async () => {
    const s = store();
    try {
      srv.set((_req, socket) => void socket.write('HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 5-9/100\r\ncontent-length: 5\r\n\r\nhello'));
      const key = randomKey();
      assert.equal((await readAll(await s.read(key, { start: 5, end: 9 }))).toString(), 'hello');
      const req = srv.requests.at(-1)!;
      assert.equal(req.method, 'GET');
      assert.ok(req.path.startsWith(`/b/p/${key}?`), req.path);
      assert.match(req.path, /X-Amz-Signature=/);
      assert.match(req.path, /X-Amz-SignedHeaders=host(&|$)/);
      assert.equal(req.headers.range, 'bytes=5-9');
    } finally {
      await s.close();
    }
  });

  it('maps 404 to BlobNotFoundError and 416 on a range to an empty body', async () => {
    const s = store();
    try {
      srv.set(answer(404, 'NoSuchKey'));
      await assert.rejects(s.read(randomKey()), BlobNotFoundError);
      srv.set(answer(416, 'InvalidRange'));
      assert.equal((await readAll(await s.read(randomKey(), { start: 500, end: 600 }))).length, 0);
    } finally {
      await s.close();
    }
  });

  it('retries 5xx and throttling up to maxAttempts, then fails with the S3 code; 403 at once', async () => {
    const s = store();
    try {
      srv.set(answer(503, 'SlowDown'));
      let n = srv.requests.length;
      await assert.rejects(s.read(randomKey()), (e: unknown) => {
        assert.ok(e instanceof StorageUnavailableError);
        assert.match(e.message, /^s3 unavailable: GET p\/blobs\/sha256\/\w+\/\w+: SlowDown \(HTTP 503\)$/);
        noSecrets(e);
        return true;
      });
      assert.equal(srv.requests.length - n, 3);

      n = srv.requests.length;
      srv.set(answer(403, 'AccessDenied'));
      await assert.rejects(s.read(randomKey()), (e: unknown) => {
        assert.ok(e instanceof StorageUnavailableError);
        assert.match(e.message, /AccessDenied \(HTTP 403\)$/);
        noSecrets(e);
        return true;
      });
      assert.equal(srv.requests.length - n, 1);

      // A 500 first, then the object.
      let failed = false;
      srv.set((req, socket) => {
        if (!failed) return void ((failed = true), answer(500, 'InternalError')(req, socket));
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc');
      });
      n = srv.requests.length;
      assert.equal((await readAll(await s.read(randomKey()))).toString(), 'abc');
      assert.equal(srv.requests.length - n, 2);
    } finally {
      await s.close();
    }
  });

  it('fails with StorageUnavailableError (no URL in it) when the endpoint refuses connections', async () => {
    const dead = new S3BlobStore({ bucket: 'b', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, region: 'us-east-1', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-never-logged', maxAttempts: 2 });
    try {
      await assert.rejects(dead.read(randomKey()), (e: unknown) => {
        assert.ok(e instanceof StorageUnavailableError);
        assert.match(e.message, /ECONNREFUSED/);
        noSecrets(e);
        return true;
      });
    } finally {
      await dead.close();
    }
  });
});
