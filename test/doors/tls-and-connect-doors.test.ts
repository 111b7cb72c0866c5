/**
 * The TLS door and the CONNECT door in front of a trivial handler, driven by curl, Node's TLS
 * client and raw sockets, all on loopback.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Duplex } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../src/config/index.js';
import { CertificateAuthority } from '../../src/pki/index.js';
import { startTlsDoor, type TlsDoor } from '../../src/doors/tls-door.js';
import { startProxyDoor, type ProxyDoor } from '../../src/doors/connect-proxy.js';
import { freePort, run, tempDir } from '../helpers/process.js';
import { testConfig } from '../helpers/config.js';
import { exchange, statusLine } from '../helpers/raw-socket.js';
import { startTestResolver, type TestResolver } from '../helpers/dns-fixture.js';

/** Says what reached it, so tests can tell which door and which name a request came through. */
function handler(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/throw') throw new Error('handler bug');
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ host: req.headers.host, url: req.url, tls: Boolean((req.socket as TLSSocket).encrypted), proxyAuth: req.headers['proxy-authorization'] ?? null }));
}

// curl must not pick up proxy settings from the environment.
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
const curl = (args: string[], allowFail = false) => run('curl', ['-sS', '--max-time', '10', ...args], { env, allowFail });

let tmp: { path: string; cleanup: () => Promise<void> };
let config: Config;
let openConfig: Config;
let ca: CertificateAuthority;
let tlsDoor: TlsDoor;
let proxy: ProxyDoor;
let privateProxy: ProxyDoor;
let echo: TcpServer;
let echoPort: number;
let resolver: TestResolver;
let caFile: string;

before(async () => {
  tmp = await tempDir();
  echo = createTcpServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
  // Tunnel targets are named through this resolver (as dns.forwarders), like production names.
  resolver = await startTestResolver({ 'echo.tunnel.test': ['127.0.0.1'], 'public.tunnel.test': ['127.0.0.1'] });
  const [tlsPort, proxyPort, privatePort] = [await freePort(), await freePort(), await freePort()];
  const common = {
    dns: { forwarders: [`127.0.0.1:${resolver.port}`] },
    registries: { 'registry.local:5000': { upstream: 'http://127.0.0.1:9' } },
    // `*:80` lets every host through the glob, so only the address guard stands before metadata endpoints.
    proxy: { tunnel: ['*.tunnel.test:*', '127.0.0.1:*', '*:80'] },
  };
  config = testConfig(tmp.path, { ...common, listen: { tls: `127.0.0.1:${tlsPort}`, proxy: `127.0.0.1:${proxyPort}` } });
  openConfig = testConfig(tmp.path, { ...common, listen: { proxy: `127.0.0.1:${privatePort}` }, proxy: { ...common.proxy, allowPrivate: true } }, 'private.yaml');
  ca = await CertificateAuthority.load(config);
  caFile = join(tmp.path, 'ca.pem');
  writeFileSync(caFile, ca.caPem());
  tlsDoor = await startTlsDoor(config, handler, ca);
  proxy = await startProxyDoor(config, handler, tlsDoor);
  privateProxy = await startProxyDoor(openConfig, handler, tlsDoor);
});

after(async () => {
  await privateProxy?.close();
  await proxy?.close();
  await tlsDoor?.close();
  await resolver?.close();
  await new Promise((r) => echo?.close(r));
  await tmp?.cleanup();
});

test('TLS door: curl reaches the handler under the registry name, verified by the CA; keep-alive reuses the connection', async () => {
  const port = tlsDoor.bound!.port;
  const r = await curl(['-v', '--cacert', caFile, '--resolve', `quay.io:${port}:127.0.0.1`, `https://quay.io:${port}/v2/`, `https://quay.io:${port}/v2/again`]);
  const [first, second] = r.stdout.split('}{').map((s, i) => JSON.parse(i === 0 ? `${s}}` : `{${s}`));
  assert.deepEqual(first, { host: `quay.io:${port}`, url: '/v2/', tls: true, proxyAuth: null });
  assert.equal(second.url, '/v2/again');
  assert.match(r.stderr, /Re-using existing connection/);
  assert.match(r.stderr, /ALPN.*http\/1\.1/);
});

/** Connects to a TLS door for quay.io as `version`, offering `session`; says whether it resumed, and the session it got. */
function connectOnce(port: number, version: 'TLSv1.3' | 'TLSv1.2', session?: Buffer): Promise<{ reused: boolean; session?: Buffer }> {
  return new Promise((resolve, reject) => {
    let saved: Buffer | undefined;
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'quay.io', ca: ca.caPem(), session, minVersion: version, maxVersion: version });
    s.on('session', (sess: Buffer) => (saved = sess));
    s.on('error', reject);
    s.on('secureConnect', () => {
      const reused = s.isSessionReused();
      // A request and its answer give the TLS 1.3 ticket time to arrive.
      s.write('GET /v2/ HTTP/1.1\r\nHost: quay.io\r\nConnection: close\r\n\r\n');
      s.on('data', () => {});
      s.on('close', () => resolve({ reused, session: saved }));
    });
  });
}

test('TLS door: with tls.sessionTickets on, sessions resume, with TLS 1.3 tickets and TLS 1.2', async (t) => {
  const port = await freePort();
  const door = await startTlsDoor(testConfig(tmp.path, { listen: { tls: `127.0.0.1:${port}` }, tls: { sessionTickets: true } }, 'tickets.yaml'), handler, ca);
  t.after(() => door.close());
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const first = await connectOnce(port, version);
    assert.ok(first.session, `${version}: a session to resume`);
    assert.equal(first.reused, false);
    const second = await connectOnce(port, version, first.session);
    assert.equal(second.reused, true, `${version}: session resumed`);
  }
});

test('TLS door: by default no session resumes (no tickets: the registry clients never resume)', async () => {
  const port = tlsDoor.bound!.port;
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    // The client still gets a session (TLS 1.3: a stateful ticket); offering it back resumes nothing.
    const first = await connectOnce(port, version);
    assert.ok(first.session, `${version}: a session the client can offer`);
    const second = await connectOnce(port, version, first.session);
    assert.equal(second.reused, false, `${version}: a full handshake again`);
  }
});

test('TLS door: a handler that throws gives a 500 and the door keeps serving', async () => {
  const port = tlsDoor.bound!.port;
  const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', '--cacert', caFile, '--resolve', `quay.io:${port}:127.0.0.1`, `https://quay.io:${port}/throw`]);
  assert.equal(r.stdout, '500');
  const ok = await curl(['--cacert', caFile, '--resolve', `quay.io:${port}:127.0.0.1`, `https://quay.io:${port}/v2/`]);
  assert.equal(JSON.parse(ok.stdout).url, '/v2/');
});

test('CONNECT door: HTTPS to a registry through the proxy ends in pullthrough with that name\'s certificate', async () => {
  const proxyUrl = `http://127.0.0.1:${proxy.bound.port}`;
  const r = await curl(['--noproxy', '', '-x', proxyUrl, '--cacert', caFile, 'https://quay.io/v2/library/alpine/manifests/3']);
  assert.deepEqual(JSON.parse(r.stdout), { host: 'quay.io', url: '/v2/library/alpine/manifests/3', tls: true, proxyAuth: null });
  // An alias, and a registry name with its own port.
  assert.equal(JSON.parse((await curl(['-x', proxyUrl, '--cacert', caFile, 'https://index.docker.io/v2/'])).stdout).host, 'index.docker.io');
  assert.equal(JSON.parse((await curl(['-x', proxyUrl, '--cacert', caFile, 'https://registry.local:5000/v2/'])).stdout).host, 'registry.local:5000');
  // The proxy's credentials stop at the proxy.
  const withAuth = await curl(['-x', proxyUrl, '-U', 'user:secret', '--cacert', caFile, 'https://quay.io/v2/']);
  assert.equal(JSON.parse(withAuth.stdout).proxyAuth, null);
});

test('CONNECT door: a ClientHello sent together with the CONNECT is not lost', async () => {
  // Capture a ClientHello for quay.io, then send CONNECT and it in one write.
  const hello = await new Promise<Buffer>((resolve) => {
    const sink = new Duplex({ read() {}, write(chunk: Buffer, _enc, cb) { resolve(Buffer.from(chunk)); cb(); } });
    tlsConnect({ socket: sink, servername: 'quay.io', rejectUnauthorized: false }).on('error', () => {});
  });
  const got = await exchange(proxy.bound.port, Buffer.concat([Buffer.from('CONNECT quay.io:443 HTTP/1.1\r\nHost: quay.io:443\r\n\r\n'), hello]), 1000);
  const end = got.indexOf('\r\n\r\n');
  assert.equal(got.subarray(0, end).toString(), 'HTTP/1.1 200 Connection Established');
  assert.equal(got[end + 4], 0x16, 'a TLS handshake record (ServerHello) follows');
});

test('CONNECT door: other hosts are refused (403) unless proxy.tunnel allows them, and private targets only with allowPrivate', async () => {
  const port = proxy.bound.port;
  const connectStatus = async (p: number, target: string): Promise<string> => statusLine(await exchange(p, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
  assert.match(await connectStatus(port, 'example.com:443'), /^HTTP\/1\.1 403/);
  assert.match(await connectStatus(port, 'quay.io:8443'), /^HTTP\/1\.1 403/, 'a served name only on its port');
  // Allowed by glob, but loopback: refused without allowPrivate, by IP and by name.
  assert.match(await connectStatus(port, `127.0.0.1:${echoPort}`), /^HTTP\/1\.1 403/);
  assert.match(await connectStatus(port, `echo.tunnel.test:${echoPort}`), /^HTTP\/1\.1 403/);
  assert.match(await connectStatus(port, `[::1]:${echoPort}`), /^HTTP\/1\.1 403/, 'not allowed by any glob');
  for (const meta of ['169.254.169.254:80', '[fd00:ec2::254]:80', '[::ffff:169.254.169.254]:80', '[64:ff9b::a9fe:a9fe]:80', '10.0.0.1:80', '100.100.100.200:80', 'localhost:80', '0.0.0.0:80']) {
    const answer = (await exchange(port, `CONNECT ${meta} HTTP/1.1\r\n\r\n`)).toString();
    assert.match(answer, /^HTTP\/1\.1 403/, meta);
    assert.match(answer, /private, loopback or link-local/, meta);
  }
  // With allowPrivate, the allowed name tunnels to the echo server.
  const privatePort = privateProxy.bound.port;
  const reply = await new Promise<string>((resolve, reject) => {
    const s = netConnect(privatePort, '127.0.0.1', () => s.write(`CONNECT echo.tunnel.test:${echoPort} HTTP/1.1\r\n\r\n`));
    let buf = '';
    s.on('data', (b) => {
      buf += b.toString();
      if (buf.includes('\r\n\r\n') && !buf.includes('ping')) s.write('ping');
      if (buf.endsWith('ping')) {
        s.destroy();
        resolve(buf);
      }
    });
    s.on('error', reject);
  });
  assert.equal(reply, 'HTTP/1.1 200 Connection Established\r\n\r\nping');
  // Still no glob, still no tunnel.
  assert.match(await connectStatus(privatePort, `other.example:${echoPort}`), /^HTTP\/1\.1 403/);
  // A name that does not resolve, and a port where nothing listens: 502.
  assert.match(await connectStatus(privatePort, `missing.tunnel.test:${echoPort}`), /^HTTP\/1\.1 502/);
  assert.match(await connectStatus(privatePort, `127.0.0.1:${await freePort()}`), /^HTTP\/1\.1 502/);
  // curl agrees.
  const refused = await curl(['-x', `http://127.0.0.1:${port}`, 'https://example.com/'], true);
  assert.equal(refused.code, 56);
  assert.match(refused.stderr, /403/);
});

test('CONNECT door: plain requests with a path reach the handler; absolute URIs only for served names', async () => {
  const port = proxy.bound.port;
  const direct = await curl([`http://127.0.0.1:${port}/ca.crt`]);
  assert.deepEqual(JSON.parse(direct.stdout), { host: `127.0.0.1:${port}`, url: '/ca.crt', tls: false, proxyAuth: null });
  // Through the proxy to itself (HTTP_PROXY set on the client).
  const viaProxy = await curl(['-x', `http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/setup/containerd`]);
  assert.equal(JSON.parse(viaProxy.stdout).url, '/setup/containerd');
  const served = await curl(['-x', `http://127.0.0.1:${port}`, 'http://quay.io/v2/']);
  assert.deepEqual(JSON.parse(served.stdout), { host: 'quay.io', url: '/v2/', tls: false, proxyAuth: null });
  const other = await curl(['-x', `http://127.0.0.1:${port}`, '-o', '/dev/null', '-w', '%{http_code}', 'http://example.com/'], true);
  assert.equal(other.stdout, '403');
  assert.match(statusLine(await exchange(port, 'GET ftp://quay.io/ HTTP/1.1\r\nHost: quay.io\r\n\r\n')), /^HTTP\/1\.1 403/);
});

test('CONNECT door: malformed requests get 400 and the door keeps serving', async () => {
  const port = proxy.bound.port;
  const bad = [
    'CONNECT garbage HTTP/1.1\r\n\r\n',
    'CONNECT quay.io HTTP/1.1\r\n\r\n',
    'CONNECT quay.io:99999 HTTP/1.1\r\n\r\n',
    'CONNECT quay.io:abc HTTP/1.1\r\n\r\n',
    'CONNECT user@quay.io:443 HTTP/1.1\r\n\r\n',
    'CONNECT /v2/ HTTP/1.1\r\n\r\n',
    'CONNECT [::1:443 HTTP/1.1\r\n\r\n',
    'CONNECT\r\n\r\n',
    'CONNECT quay.io:443 HTTP/9.9\r\n\r\n',
    '\x00\x01\x02\x03 garbage\r\n\r\n',
    `CONNECT ${'a'.repeat(70_000)}:443 HTTP/1.1\r\n\r\n`,
  ];
  for (const req of bad) {
    const line = statusLine(await exchange(port, req));
    assert.match(line, /^HTTP\/1\.1 (400|431)/, JSON.stringify(req.slice(0, 40)));
  }
  // Half a request, then the client goes away.
  await exchange(port, 'CONNECT quay.io:4', 200);
  const r = await curl(['-x', `http://127.0.0.1:${port}`, '--cacert', caFile, 'https://quay.io/v2/']);
  assert.equal(JSON.parse(r.stdout).host, 'quay.io');
});

test('CONNECT door with the TLS door not listening itself (listen.tls off): interception still works in-process', async () => {
  const port = await freePort();
  const cfg = testConfig(tmp.path, { listen: { proxy: `127.0.0.1:${port}` } }, 'proxy-only.yaml');
  const inner = await startTlsDoor(cfg, handler, ca);
  assert.equal(inner.bound, null);
  const door = await startProxyDoor(cfg, handler, inner);
  try {
    const r = await curl(['-x', `http://127.0.0.1:${port}`, '--cacert', caFile, 'https://ghcr.io/v2/']);
    assert.deepEqual(JSON.parse(r.stdout), { host: 'ghcr.io', url: '/v2/', tls: true, proxyAuth: null });
  } finally {
    await door.close();
    await inner.close();
  }
});
