/**
 * TCP_NOTSENT_LOWAT (src/net/tcp-options.ts over src/native/tcp-options.c) on real loopback
 * sockets: the cap the kernel then reports, what a capped socket does when its reader stops (the
 * bytes beyond the cap wait in the writer's process instead of the kernel's buffer), no-ops where
 * there is no descriptor, every door that serves blobs capping the sockets it accepts (once, on its
 * listener; per socket in a node:cluster worker, whose listener is the primary's), and a build
 * without the module warning at start. What the cap does to throughput is the bench's to show
 * (docs/performance.md, fifteenth round).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import { limitNotSent, notSentLimit, tcpOptionsBinding, NOT_SENT_LOWAT } from '../../src/net/tcp-options.js';
import { startMirrorDoor } from '../../src/doors/mirror-door.js';
import { startTlsDoor } from '../../src/doors/tls-door.js';
import { startProxyDoor } from '../../src/doors/connect-proxy.js';
import { CertificateAuthority } from '../../src/pki/index.js';
import { testConfig } from '../helpers/config.js';
import { freePort, startProcess, tempDir } from '../helpers/process.js';
import { buildWithoutNative, startPullthrough } from '../helpers/pullthrough.js';
import { socketPair } from '../helpers/raw-socket.js';
import { until } from '../helpers/replicas.js';

let tmp: { path: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await tempDir();
});
after(async () => {
  await tmp?.cleanup();
});

/** Bytes the kernel took from 8 MiB written in 64 KiB writes to a peer that reads nothing. */
async function bytesTakenByKernel(cap: number | undefined): Promise<number> {
  const { client, peer, close } = await socketPair();
  try {
    peer.pause();
    if (cap !== undefined) assert.equal(limitNotSent(client, cap), true);
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 128; i++) client.write(chunk);
    // Loopback delivers at once; what the kernel did not take by now, it will not.
    await new Promise((r) => setTimeout(r, 200));
    return 128 * chunk.length - client.writableLength;
  } finally {
    close();
  }
}

test('the native module is built (npm run build with a C compiler)', () => {
  assert.notEqual(typeof tcpOptionsBinding(), 'string', String(tcpOptionsBinding()));
});

test('limitNotSent sets the cap, and the kernel reports it; an untouched socket reports 0 (the system default)', async () => {
  const { client, peer, close } = await socketPair();
  try {
    assert.equal(notSentLimit(client), 0);
    assert.equal(limitNotSent(client), true);
    assert.equal(notSentLimit(client), NOT_SENT_LOWAT);
    assert.equal(limitNotSent(peer, 64 * 1024), true);
    assert.equal(notSentLimit(peer), 64 * 1024);
  } finally {
    close();
  }
});

test('a capped socket whose reader stops keeps the rest in the process: the kernel holds far less than without the cap', async () => {
  const uncapped = await bytesTakenByKernel(undefined);
  const capped = await bytesTakenByKernel(NOT_SENT_LOWAT);
  assert.ok(capped <= 512 * 1024, `capped: the kernel took ${capped} bytes`);
  assert.ok(uncapped > 2 * capped, `uncapped: the kernel took ${uncapped} bytes, capped ${capped}`);
});

test('no descriptor: a destroyed socket or one never connected is left alone, without a throw', async () => {
  const { client, close } = await socketPair();
  close();
  await once(client, 'close');
  assert.equal(limitNotSent(client), false);
  assert.equal(notSentLimit(client), undefined);
  assert.equal(limitNotSent(new Socket()), false);
});

test('the mirror, TLS and CONNECT doors cap every socket they accept', async (t) => {
  const [mirrorPort, tlsPort, proxyPort] = [await freePort(), await freePort(), await freePort()];
  const config = testConfig(tmp.path, { listen: { mirror: `127.0.0.1:${mirrorPort}`, tls: `127.0.0.1:${tlsPort}`, proxy: `127.0.0.1:${proxyPort}` } });
  const handler = (_req: unknown, res: { end(): void }): void => res.end();
  const mirror = await startMirrorDoor(config, handler);
  t.after(() => mirror.close());
  const tls = await startTlsDoor(config, handler, await CertificateAuthority.load(config));
  t.after(() => tls.close());
  const proxy = await startProxyDoor(config, handler, tls);
  t.after(() => proxy.close());
  for (const [name, server, port] of [
    ['mirror', mirror.server, mirrorPort],
    ['tls', tls.server, tlsPort],
    ['proxy', proxy.server, proxyPort],
  ] as const) {
    // Set once on the listening socket, which the kernel copies into every socket it accepts.
    assert.equal(notSentLimit(server), NOT_SENT_LOWAT, `${name} door's listener`);
    // Registered after the door's own listeners, so it sees the socket as the door left it.
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const c = connect(port, '127.0.0.1');
    const [s] = await accepted;
    assert.equal(notSentLimit(s), NOT_SENT_LOWAT, `${name} door`);
    c.destroy();
  }
});

test('a node:cluster worker, whose listener has no descriptor of its own, caps each socket it is handed', async (t) => {
  const port = await freePort();
  const proc = startProcess(process.execPath, [join(import.meta.dirname, '../helpers/cluster-listener-main.js'), String(port)]);
  t.after(() => proc.stop());
  const reported = (): Array<Record<string, unknown>> =>
    proc
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const lines = async (n: number): Promise<Array<Record<string, unknown>>> => {
    await until(`${n} report(s) from the worker`, () => reported().length >= n, 10_000);
    return reported();
  };
  await lines(1);
  for (let i = 0; i < 2; i++) {
    const c = connect(port, '127.0.0.1');
    c.on('error', () => {});
    await once(c, 'close');
  }
  const reports = (await lines(3)).slice(1);
  for (const r of reports) assert.deepEqual(r, { socket: NOT_SENT_LOWAT, listener: null });
});

test('a build without the module warns at start, naming it, and serves as before', async (t) => {
  const build = buildWithoutNative();
  t.after(() => build.cleanup());
  const pt = await startPullthrough({}, { main: build.main });
  t.after(() => pt.cleanup());
  assert.ok(
    pt.logs().some((l) => l.level === 'warn' && /native TCP options module is not built/.test(String(l.msg))),
    'a warning says why',
  );
  const res = await fetch(`${pt.url}/v2/`);
  assert.equal(res.status, 200);
});
