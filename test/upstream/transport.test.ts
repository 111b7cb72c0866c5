/**
 * The transport seam (src/upstream/transport.ts): both implementations against one real HTTP
 * server on a loopback socket, answering the same request with the same status, headers and
 * bytes; the guarded variants refusing a name that resolves to loopback under the `public` rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo, LookupFunction } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { Readable } from 'node:stream';
import { UndiciTransport } from '../../src/upstream/undici-transport.js';
import { ObjectReaderTransport } from '../../src/upstream/object-reader-transport.js';
import { RoutedTransports } from '../../src/upstream/routed-transports.js';
import type { Transport, TransportOptions } from '../../src/upstream/transport.js';
import { AddressRefusedError, findAddressRefusal } from '../../src/net/address-guard.js';
import { recyclerOf } from '../../src/util/reusable-buffers.js';

const BLOB = randomBytes(3 * 1024 * 1024 + 17);
const opts: TransportOptions = { connectTimeout: 5000, headersTimeout: 5000, bodyTimeout: 5000, keepAliveMs: 4000 };

async function startServer(): Promise<{ server: Server; port: number; seen: Array<{ method: string; url: string; headers: Record<string, unknown> }> }> {
  const seen: Array<{ method: string; url: string; headers: Record<string, unknown> }> = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: { ...req.headers } });
    if (req.url === '/blob') {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': BLOB.length, 'X-Digest': createHash('sha256').update(BLOB).digest('hex') });
      res.end(req.method === 'HEAD' ? undefined : BLOB);
    } else {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"no such blob"}]}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

async function bytes(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const recycle = recyclerOf(body);
  for await (const c of body) {
    chunks.push(Buffer.from(c as Buffer)); // a copy: a recycled slab is reused for later bytes
    recycle?.(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A resolver that answers every name with 127.0.0.1, as a rebinding DNS name would. */
const toLoopback = ((_h: string, _o: unknown, cb: (err: null, list: LookupAddress[]) => void) => process.nextTick(cb, null, [{ address: '127.0.0.1', family: 4 }])) as unknown as LookupFunction;

for (const [name, make] of [
  ['UndiciTransport', (): Transport => new UndiciTransport(opts)],
  ['ObjectReaderTransport', (): Transport => new ObjectReaderTransport(opts)],
] as const) {
  test(`${name}: a 200 body arrives whole with lower-cased headers, a 404's text is readable, headers go out as given`, async (t) => {
    const { server, port, seen } = await startServer();
    const transport = make();
    t.after(async () => {
      await transport.close();
      server.close();
    });
    const r = await transport.exchange({ url: new URL(`http://127.0.0.1:${port}/blob`), method: 'GET', headers: { 'user-agent': 'transport-test', authorization: 'Bearer abc' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(BLOB.length));
    const got = await bytes(r.body);
    assert.equal(createHash('sha256').update(got).digest('hex'), r.headers['x-digest']);
    assert.equal(seen[0]!.headers['authorization'], 'Bearer abc');
    assert.equal(seen[0]!.headers['user-agent'], 'transport-test');

    const missing = await transport.exchange({ url: new URL(`http://127.0.0.1:${port}/nothing?x=1`), method: 'GET', headers: {} });
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse((await bytes(missing.body)).toString('utf8')).errors[0].code, 'BLOB_UNKNOWN');
    assert.equal(seen[1]!.url, '/nothing?x=1');
  });
}

test('ObjectReaderTransport: a 200 body hands its slabs back (recyclerOf); HEADs keep the connection; GET and HEAD only', async (t) => {
  const { server, port, seen } = await startServer();
  let connections = 0;
  server.on('connection', () => connections++);
  const transport = new ObjectReaderTransport(opts);
  t.after(async () => {
    await transport.close();
    server.close();
  });
  const r = await transport.exchange({ url: new URL(`http://127.0.0.1:${port}/blob`), method: 'GET', headers: {} });
  assert.equal(typeof recyclerOf(r.body), 'function', 'zero-copy bodies keep their recycle()');
  assert.equal((await bytes(r.body)).length, BLOB.length);
  for (let i = 0; i < 3; i++) {
    const head = await transport.exchange({ url: new URL(`http://127.0.0.1:${port}/blob`), method: 'HEAD', headers: {} });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(BLOB.length), 'a HEAD\'s Content-Length is the resource\'s, and no body follows');
    assert.equal((await bytes(head.body)).length, 0);
  }
  const again = await transport.exchange({ url: new URL(`http://127.0.0.1:${port}/blob`), method: 'GET', headers: {} });
  assert.ok((await bytes(again.body)).equals(BLOB));
  assert.deepEqual(seen.map((s) => s.method), ['GET', 'HEAD', 'HEAD', 'HEAD', 'GET']);
  assert.equal(connections, 1, 'one connection for a GET, three HEADs and a GET');
  await assert.rejects(transport.exchange({ url: new URL(`http://127.0.0.1:${port}/upload`), method: 'PUT', headers: {}, body: Readable.from([Buffer.from('abc')]) }), TypeError);
});

test('UndiciTransport: HEAD and a streamed request body', async (t) => {
  const { server, port, seen } = await startServer();
  const transport = new UndiciTransport(opts);
  t.after(async () => {
    await transport.close();
    server.close();
  });
  const head = await transport.exchange({ url: new URL(`http://127.0.0.1:${port}/blob`), method: 'HEAD', headers: {} });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(BLOB.length));
  assert.equal((await bytes(head.body)).length, 0);
  const put = await transport.exchange({ url: new URL(`http://127.0.0.1:${port}/upload`), method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: Readable.from([Buffer.from('abc')]), headersTimeout: 2000 });
  await bytes(put.body);
  assert.equal(seen.at(-1)!.method, 'PUT');
});

test('RoutedTransports: guarded variants refuse a name resolving to loopback under the public rule; trusted ones reach it', async (t) => {
  const { server, port, seen } = await startServer();
  const transports = new RoutedTransports(opts, toLoopback, () => 'public');
  t.after(async () => {
    await transports.close();
    server.close();
  });
  const url = new URL(`http://cdn.example.test:${port}/blob`);
  for (const traffic of ['api', 'pull'] as const) {
    const err = await transports
      .pick('guarded', traffic)
      .exchange({ url, method: 'GET', headers: {} })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(findAddressRefusal(err) instanceof AddressRefusedError, `${traffic}: ${String(err)}`);
  }
  assert.equal(seen.length, 0, 'no guarded request reached the server');
  for (const traffic of ['api', 'pull'] as const) {
    const r = await transports.pick('trusted', traffic).exchange({ url, method: 'GET', headers: {} });
    assert.equal(r.status, 200);
    assert.equal((await bytes(r.body)).length, BLOB.length);
  }
  assert.equal(seen.length, 2);
});
