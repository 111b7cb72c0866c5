/**
 * The TLS door's cipher suites: the server's order decides, AES-128-GCM first by default (its
 * handshake hashes with SHA-256, not SHA-384: src/net/tls-ciphers.ts), `tls.ciphers` replaces the
 * list. Driven by Node's TLS client and curl (OpenSSL), both of which list AES-256-GCM first.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CertificateAuthority } from '../../src/pki/index.js';
import { startTlsDoor, type TlsDoor } from '../../src/doors/tls-door.js';
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

before(async () => {
  tmp = await tempDir();
  const config = testConfig(tmp.path, { listen: { tls: `127.0.0.1:${await freePort()}` }, tls: { extraNames: ['127.0.0.1'] } });
  ca = await CertificateAuthority.load(config);
  caFile = join(tmp.path, 'ca.pem');
  writeFileSync(caFile, ca.caPem());
  door = await startTlsDoor(config, handler, ca);
  const ciphers = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256';
  configured = await startTlsDoor(testConfig(tmp.path, { listen: { tls: `127.0.0.1:${await freePort()}` }, tls: { ciphers } }, 'configured.yaml'), handler, ca);
});

after(async () => {
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

test('TLS door: curl (OpenSSL) settles on TLS_AES_128_GCM_SHA256 and gets its answer', async () => {
  const port = door.bound!.port;
  const r = await run('curl', ['-sS', '-v', '--max-time', '10', '--cacert', caFile, '--resolve', `quay.io:${port}:127.0.0.1`, `https://quay.io:${port}/v2/`], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  assert.equal(r.stdout, '{}');
  assert.match(r.stderr, /TLSv1\.3 \/ TLS_AES_128_GCM_SHA256/);
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
