/**
 * The mirror door as a Door (src/doors/door.ts): it reports the port it bound, a port in use fails
 * with an error naming listen.mirror, and shutdown is stopAccepting (new connections refused, a
 * response in progress goes on and is counted by HttpTraffic) then close. Real sockets on loopback.
 */
import { test, before, after } from 'node:test';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { startMirrorDoor } from '../../src/doors/mirror-door.js';
import { HttpTraffic } from '../../src/doors/http-traffic.js';
import { silentLog } from '../../src/util/log-sink.js';
import { testConfig } from '../helpers/config.js';
import { freePort, tempDir } from '../helpers/process.js';

let tmp: { path: string; cleanup: () => Promise<void> };

before(async () => {
  tmp = await tempDir();
});
after(async () => {
  await tmp?.cleanup();
});

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v2/', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('a port in use: the error names listen.mirror and the address', async () => {
  const taken: Server = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  try {
    const config = testConfig(tmp.path, { listen: { mirror: `127.0.0.1:${port}` } }, 'taken.yaml');
    await assert.rejects(startMirrorDoor(config, (_req, res) => res.end()), (err: Error) => {
      assert.match(err.message, new RegExp(`^listen\\.mirror: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      return true;
    });
  } finally {
    await new Promise<void>((r) => taken.close(() => r()));
  }
});

test('stopAccepting refuses new connections, lets a response in progress finish; close ends the door', async () => {
  const port = await freePort();
  const config = testConfig(tmp.path, { listen: { mirror: `127.0.0.1:${port}` } }, 'drain.yaml');
  let held: ServerResponse | undefined;
  let arrived!: () => void;
  const arrival = new Promise<void>((r) => (arrived = r));
  const door = await startMirrorDoor(config, (_req: IncomingMessage, res: ServerResponse) => {
    held = res;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first half, ');
    arrived();
  });
  const traffic = new HttpTraffic(silentLog);
  traffic.watch(door.server);
  assert.equal(door.name, 'mirror');
  assert.deepEqual({ address: door.bound.address, port: door.bound.port }, { address: '127.0.0.1', port });

  const inFlight = get(port);
  await arrival;
  assert.equal(traffic.active, 1);
  door.stopAccepting();
  await assert.rejects(get(port), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
  held!.end('second half');
  assert.deepEqual(await inFlight, { status: 200, body: 'first half, second half' });
  // HttpTraffic's own 'close' listener was added first, so it has run once this one has.
  if (!held!.closed) await once(held!, 'close');
  assert.equal(traffic.active, 0);
  await door.close();
  assert.equal(door.server.listening, false);
});
