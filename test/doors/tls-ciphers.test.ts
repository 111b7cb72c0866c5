/**
 * The TLS door's cipher suites (and so the CONNECT door's, whose tunnels end in it): the server's
 * order decides, AES-128-GCM first by default (its handshake hashes with SHA-256, not SHA-384:
 * src/net/tls-ciphers.ts), `tls.ciphers` replaces the list. Driven by Node's TLS client and curl
 * (OpenSSL), both of which list AES-256-GCM first.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CertificateAuthority } from '../../src/pki/index.js';
import { startTlsDoor, type TlsDoor } from '../../src/doors/tls-door.js';
import { startProxyDoor, type ProxyDoor } from '../../src/doors/connect-proxy.js';
import { freePort, run, tempDir } from '../helpers/process.js';
import { testConfig } from '../helpers/config.js';

function handler(_req: IncomingMessage, res: ServerResponse): void {
  res.end('{}');
}

let tmp: { path: string; cleanup: () => Promise<void> };
let ca: CertificateAuthority;
let caFile: string;
/** Default suites; 127.0.0.1 among its names, so clients without SNI get the default certificate. */
let door: TlsDoor;
/** tls.ciphers set to AES-256-GCM first. */
let configured: TlsDoor;
/** The CONNECT door in front of `door`: its tunnels end in the same TLS server. */
let proxy: ProxyDoor;

before(async () => {
  tmp = await tempDir();
  const config = testConfig(tmp.path, { listen: { tls: `127.0.0.1:${await freePort()}`, proxy: `127.0.0.1:${await freePort()}` }, tls: { extraNames: ['127.0.0.1'] } });
  ca = await CertificateAuthority.load(config);
  caFile = join(tmp.path, 'ca.pem');
  writeFileSync(caFile, ca.caPem());
  door = await startTlsDoor(config, handler, ca);
  proxy = await startProxyDoor(config, handler, door);
  const ciphers = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256';
  configured = await startTlsDoor(testConfig(tmp.path, { listen: { tls: `127.0.0.1:${await freePort()}` }, tls: { ciphers } }, 'configured.yaml'), handler, ca);
});

after(async () => {
  await proxy?.close();
  await configured?.close();
  await door?.close();
  await tmp?.cleanup();
});

/** The suite a handshake with the door on `port` settles on (`servername` undefined: no SNI). */
function negotiated(port: number, opts: { servername?: string; version?: 'TLSv1.3' | 'TLSv1.2'; ciphers?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: ca.caPem(),
      ...(opts.servername ? { servername: opts.servername } : { checkServerIdentity: () => undefined }),
      ...(opts.version ? { minVersion: opts.version, maxVersion: opts.version } : {}),
      ...(opts.ciphers ? { ciphers: opts.ciphers } : {}),
    });
    s.on('error', reject);
    s.on('secureConnect', () => {
      const name = s.getCipher().standardName;
      s.destroy();
      resolve(name);
    });
  });
}

test('TLS door: AES-128-GCM although the client lists AES-256-GCM first, with SNI and with the default certificate', async () => {
  const port = door.bound!.port;
  // Node's client, like OpenSSL's, lists TLS_AES_256_GCM_SHA384 first.
  assert.equal(await negotiated(port, { servername: 'quay.io' }), 'TLS_AES_128_GCM_SHA256');
  // No SNI: the default certificate, set with setSecureContext after the server was created.
  assert.equal(await negotiated(port, {}), 'TLS_AES_128_GCM_SHA256');
  assert.equal(await negotiated(port, { servername: 'quay.io', version: 'TLSv1.2' }), 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
  // A client without AES-128 still gets its own choice.
  assert.equal(await negotiated(port, { servername: 'quay.io', ciphers: 'TLS_AES_256_GCM_SHA384' }), 'TLS_AES_256_GCM_SHA384');
  assert.equal(await negotiated(port, { servername: 'quay.io', ciphers: 'TLS_CHACHA20_POLY1305_SHA256' }), 'TLS_CHACHA20_POLY1305_SHA256');
});

test('TLS and CONNECT doors: curl (OpenSSL) settles on TLS_AES_128_GCM_SHA256 and gets its answer', async () => {
  const port = door.bound!.port;
  // curl must not pick up proxy settings from the environment.
  const curl = (args: string[]) => run('curl', ['-sS', '-v', '--max-time', '10', '--cacert', caFile, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  const direct = await curl(['--resolve', `quay.io:${port}:127.0.0.1`, `https://quay.io:${port}/v2/`]);
  assert.equal(direct.stdout, '{}');
  assert.match(direct.stderr, /TLSv1\.3 \/ TLS_AES_128_GCM_SHA256/);
  const tunnelled = await curl(['-x', `http://127.0.0.1:${proxy.bound.port}`, 'https://quay.io/v2/']);
  assert.equal(tunnelled.stdout, '{}');
  assert.match(tunnelled.stderr, /TLSv1\.3 \/ TLS_AES_128_GCM_SHA256/);
});

test('TLS door: tls.ciphers replaces the list and its order decides', async () => {
  const port = configured.bound!.port;
  // The client prefers AES-128; the configured order puts AES-256 first.
  const clientPrefers128 = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384';
  assert.equal(await negotiated(port, { servername: 'quay.io', ciphers: clientPrefers128 }), 'TLS_AES_256_GCM_SHA384');
  assert.equal(await negotiated(port, { servername: 'quay.io', version: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384' }), 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384');
  // A suite the list leaves out is refused.
  await assert.rejects(negotiated(port, { servername: 'quay.io', ciphers: 'TLS_CHACHA20_POLY1305_SHA256' }));
});
