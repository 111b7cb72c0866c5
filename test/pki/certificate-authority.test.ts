/**
 * The CA and its leaves, through real files, real handshakes and openssl: modes, SANs, validity,
 * verification, refusal of unserved names, single-flight issuance, reuse across restarts, and
 * reissue when the CA or the validity changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../src/pki/index.js';
import { startTlsDoor } from '../../src/doors/tls-door.js';
import { freePort, inTempDir, run, tempDir } from '../helpers/process.js';
import { testConfig } from '../helpers/config.js';

const DAY = 86_400_000;
const mode = (p: string): number => statSync(p).mode & 0o777;

/** One handshake to 127.0.0.1:port for `servername`, verified against `ca`; resolves with the peer certificate. */
function handshake(port: number, servername: string, ca: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, ca }, () => {
      const cert = s.getPeerCertificate();
      s.end();
      resolve(cert);
    });
    s.on('error', reject);
  });
}

test('first start creates an owner-only CA; leaves carry the name, backdated, within leafValidityDays, and verify with openssl', async () => {
  await inTempDir(async (tmp) => {
    const config = testConfig(tmp.path, { tls: { leafValidityDays: 30, extraNames: ['127.0.0.1', 'mirror.internal'] } });
    const ca = await CertificateAuthority.load(config);
    const caDir = config.paths.ca;
    assert.equal(mode(caDir), 0o700);
    assert.equal(mode(join(caDir, 'ca.key')), 0o600);
    assert.equal(mode(join(caDir, 'ca.crt')), 0o644);
    assert.equal(ca.origin, 'generated');
    const caCert = new X509Certificate(ca.caPem());
    assert.ok(caCert.ca);

    const before = Date.now();
    const leaf = await ca.certificateFor('Quay.IO.');
    assert.ok(leaf);
    const x = new X509Certificate(leaf.certPem);
    assert.equal(x.subjectAltName, 'DNS:quay.io');
    assert.ok(!x.ca);
    const notBefore = Date.parse(x.validFrom);
    const notAfter = Date.parse(x.validTo);
    assert.ok(notAfter - notBefore <= 30 * DAY, 'validity at most leafValidityDays');
    assert.ok(Math.abs(before - 3_600_000 - notBefore) < 60_000, 'notBefore backdated by an hour');
    assert.ok(x.checkIssued(caCert) && x.verify(caCert.publicKey));
    assert.equal(mode(join(caDir, 'leaves', 'quay.io.key')), 0o600);
    assert.equal(mode(join(caDir, 'leaves', 'quay.io.crt')), 0o644);

    writeFileSync(join(tmp.path, 'ca.pem'), ca.caPem());
    writeFileSync(join(tmp.path, 'leaf.pem'), leaf.certPem);
    const v = await run('openssl', ['verify', '-CAfile', join(tmp.path, 'ca.pem'), '-verify_hostname', 'quay.io', '-purpose', 'sslserver', join(tmp.path, 'leaf.pem')]);
    assert.match(v.stdout, /leaf\.pem: OK/);

    const ipLeaf = await ca.certificateFor('127.0.0.1');
    assert.equal(new X509Certificate(ipLeaf!.certPem).subjectAltName, 'IP Address:127.0.0.1');
    writeFileSync(join(tmp.path, 'ip.pem'), ipLeaf!.certPem);
    await run('openssl', ['verify', '-CAfile', join(tmp.path, 'ca.pem'), '-verify_ip', '127.0.0.1', join(tmp.path, 'ip.pem')]);
    assert.ok(await ca.certificateFor('mirror.internal'));
    assert.equal(ca.defaultName(), '127.0.0.1');

    // Names pullthrough does not serve get nothing.
    assert.equal(await ca.certificateFor('example.com'), null);
    assert.equal(await ca.secureContextFor('quay.io.example.com'), null);
    assert.equal(ca.stats().issued, 3);
  });
});

test('a handshake for an unserved name fails without a certificate (an alert); one without SNI gets the IP name certificate', async () => {
  const tmp = await tempDir();
  const port = await freePort();
  const config = testConfig(tmp.path, { listen: { tls: `127.0.0.1:${port}` }, tls: { extraNames: ['127.0.0.1'] } });
  const ca = await CertificateAuthority.load(config);
  const door = await startTlsDoor(config, (_req, res) => res.end('ok'), ca);
  try {
    // With an IP name configured (a default certificate), an unserved name is dropped without a certificate.
    await assert.rejects(handshake(port, "evil.example", ca.caPem()), /ECONNRESET|socket disconnected|alert|handshake/i);
    const cert = await handshake(port, 'quay.io', ca.caPem());
    assert.equal(cert.subjectaltname, 'DNS:quay.io');
    writeFileSync(join(tmp.path, 'ca.pem'), ca.caPem());
    // curl sends no SNI for an IP; the default certificate must match the IP.
    const r = await run('curl', ['-sS', '--cacert', join(tmp.path, 'ca.pem'), `https://127.0.0.1:${port}/`]);
    assert.equal(r.stdout, 'ok');
    const bad = await run('curl', ['-sS', '-k', '--resolve', `evil.example:${port}:127.0.0.1`, `https://evil.example:${port}/`], { allowFail: true });
    assert.notEqual(bad.code, 0, 'no certificate, not even with -k');
  } finally {
    await door.close();
  }
  // Without an IP name there is no default certificate, and an unserved name gets a TLS alert.
  const plain = testConfig(tmp.path, { listen: { tls: `127.0.0.1:${port}` } }, 'plain.yaml');
  const door2 = await startTlsDoor(plain, (_req, res) => res.end('ok'), await CertificateAuthority.load(plain));
  try {
    await assert.rejects(handshake(port, 'evil.example', ca.caPem()), /alert handshake failure/i);
    const bad = await run('curl', ['-sS', '-k', '--resolve', `evil.example:${port}:127.0.0.1`, `https://evil.example:${port}/`], { allowFail: true });
    assert.equal(bad.code, 35);
    assert.match(bad.stderr, /alert handshake failure/);
  } finally {
    await door2.close();
    await tmp.cleanup();
  }
});

test('100 concurrent handshakes over 20 new names issue each certificate exactly once; a restart reuses them from disk', async () => {
  const tmp = await tempDir();
  const port = await freePort();
  const names = Array.from({ length: 20 }, (_, i) => `reg${i}.test`);
  const registries = Object.fromEntries(names.map((n) => [n, { upstream: `https://${n}` }]));
  const config = testConfig(tmp.path, { listen: { tls: `127.0.0.1:${port}` }, registries });
  const ca = await CertificateAuthority.load(config);
  const door = await startTlsDoor(config, (_req, res) => res.end('ok'), ca);
  let serials: Map<string, string>;
  try {
    const t0 = Date.now();
    const certs = await Promise.all(Array.from({ length: 100 }, (_, i) => handshake(port, names[i % 20]!, ca.caPem())));
    const took = Date.now() - t0;
    assert.equal(ca.stats().issued, 20, 'one issuance per name');
    serials = new Map(certs.map((c, i) => [names[i % 20]!, c.serialNumber]));
    certs.forEach((c, i) => assert.equal(c.serialNumber, serials.get(names[i % 20]!), 'every handshake for a name saw the same certificate'));
    assert.equal(readdirSync(join(config.paths.ca, 'leaves')).filter((f) => f.endsWith('.crt')).length, 20);
    assert.ok(took < 20_000, `100 handshakes took ${took} ms`);
  } finally {
    await door.close();
  }

  // The same at the API, where all 100 requests are sure to start before the first issuance ends.
  const more = Array.from({ length: 20 }, (_, i) => `more${i}.test`);
  const config2 = testConfig(tmp.path, { registries: Object.fromEntries(more.map((n) => [n, { upstream: `https://${n}` }])) }, 'more.yaml');
  const caBurst = await CertificateAuthority.load(config2);
  const contexts = await Promise.all(Array.from({ length: 100 }, (_, i) => caBurst.secureContextFor(more[i % 20]!)));
  assert.ok(contexts.every(Boolean));
  assert.equal(caBurst.stats().issued, 20, 'one issuance per name under a burst of 100 requests');

  // Restart: a new CA instance and door on the same data directory.
  const ca2 = await CertificateAuthority.load(config);
  const door2 = await startTlsDoor(config, (_req, res) => res.end('ok'), ca2);
  try {
    for (const n of names) assert.equal((await handshake(port, n, ca2.caPem())).serialNumber, serials.get(n));
    assert.deepEqual(ca2.stats(), { issued: 0, loadedFromDisk: 20 });
  } finally {
    await door2.close();
    await tmp.cleanup();
  }
});

test('leaves are reissued when near expiry, when leafValidityDays shrinks, and when the CA changes (a user RSA CA from openssl)', async () => {
  await inTempDir(async (tmp) => {
    const config = testConfig(tmp.path);
    const ca = await CertificateAuthority.load(config);
    const first = (await ca.certificateFor('quay.io'))!;

    // Near expiry: 380 days later (397-day leaves renew 30 days before the end).
    const later = await CertificateAuthority.load(config, { now: () => Date.now() + 380 * DAY });
    const renewed = (await later.certificateFor('quay.io'))!;
    assert.notEqual(renewed.certPem, first.certPem);
    assert.deepEqual(later.stats(), { issued: 1, loadedFromDisk: 0 });

    // The same moment again: the renewed leaf is reused.
    const again = await CertificateAuthority.load(config, { now: () => Date.now() + 380 * DAY });
    assert.equal((await again.certificateFor('quay.io'))!.certPem, renewed.certPem);

    // A shorter leafValidityDays replaces longer-lived leaves.
    const shorter = testConfig(tmp.path, { tls: { leafValidityDays: 7 } }, 'shorter.yaml');
    const caShort = await CertificateAuthority.load(shorter);
    const short = (await caShort.certificateFor('quay.io'))!;
    assert.equal(caShort.stats().issued, 1);
    assert.ok(short.notAfter.getTime() - short.notBefore.getTime() <= 7 * DAY);

    // The user's own CA (RSA, made by openssl) replaces the generated one: every leaf is reissued under it.
    const key = join(tmp.path, 'user-ca.key');
    const crt = join(tmp.path, 'user-ca.crt');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '30', '-subj', '/CN=user test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    chmodSync(key, 0o644);
    const warnings: string[] = [];
    const log = { debug() {}, info() {}, error() {}, warn: (m: string) => warnings.push(m) };
    const user = testConfig(tmp.path, { tls: { caCert: crt, caKey: key } }, 'user.yaml');
    const userCa = await CertificateAuthority.load(user, { log });
    assert.equal(userCa.origin, 'configured');
    assert.ok(warnings.some((w) => /caKey is readable/.test(w)), 'a group/world-readable CA key is reported');
    const underUser = (await userCa.certificateFor('quay.io'))!;
    assert.equal(userCa.stats().issued, 1);
    writeFileSync(join(tmp.path, 'leaf.pem'), underUser.certPem);
    await run('openssl', ['verify', '-CAfile', crt, '-verify_hostname', 'quay.io', join(tmp.path, 'leaf.pem')]);
    // The leaf never outlives its CA.
    assert.ok(underUser.notAfter.getTime() <= Date.parse(new X509Certificate(userCa.caPem()).validTo));
  });
});

test('two processes starting at once on a new data directory end up with one CA; a loosened key is tightened', async () => {
  await inTempDir(async (tmp) => {
    const config = testConfig(tmp.path);
    const [a, b, c] = await Promise.all([CertificateAuthority.load(config), CertificateAuthority.load(config), CertificateAuthority.load(config)]);
    assert.equal(a.fingerprint, b.fingerprint);
    assert.equal(a.fingerprint, c.fingerprint);
    assert.deepEqual(readdirSync(config.paths.ca).sort(), ['ca.crt', 'ca.key']);
    chmodSync(join(config.paths.ca, 'ca.key'), 0o644);
    const d = await CertificateAuthority.load(config);
    assert.equal(d.fingerprint, a.fingerprint);
    assert.equal(mode(join(config.paths.ca, 'ca.key')), 0o600);
  });
});

test('two CA instances on one data directory (workers) issuing the same names at once: each name issued once, key and certificate on disk match', async () => {
  await inTempDir(async (tmp) => {
    const names = Array.from({ length: 20 }, (_, i) => `shared${i}.test`);
    const config = testConfig(tmp.path, { registries: Object.fromEntries(names.map((n) => [n, { upstream: `https://${n}` }])) });
    // As each worker does: its own instance, loading the CA the primary created.
    await CertificateAuthority.load(config);
    const [a, b] = await Promise.all([CertificateAuthority.load(config), CertificateAuthority.load(config)]);
    const leaves = await Promise.all(names.flatMap((n) => [a!.certificateFor(n), b!.certificateFor(n)]));
    assert.equal(a!.stats().issued + b!.stats().issued, 20, `one issuance per name over both: ${JSON.stringify([a!.stats(), b!.stats()])}`);
    assert.equal(a!.stats().loadedFromDisk + b!.stats().loadedFromDisk, 20, 'the other instance used the stored leaf');
    for (let i = 0; i < names.length; i++) {
      assert.equal(leaves[2 * i]!.certPem, leaves[2 * i + 1]!.certPem, `${names[i]}: both serve one certificate`);
      const dir = join(config.paths.ca, 'leaves');
      const cert = new X509Certificate(readFileSync(join(dir, `${names[i]}.crt`)));
      assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, `${names[i]}.key`)))), `${names[i]}: key matches certificate on disk`);
    }
    assert.deepEqual(readdirSync(join(config.paths.ca, 'leaves')).filter((f) => f.endsWith('.lock')), [], 'no lock left behind');

    // A lock left by a process that died while issuing is taken over once it is stale (10 s).
    const lock = join(config.paths.ca, 'leaves', 'late.test.lock');
    writeFileSync(lock, '');
    utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const late = testConfig(tmp.path, { registries: { 'late.test': { upstream: 'https://late.test' } } }, 'late.yaml');
    const c = await CertificateAuthority.load(late);
    assert.ok(await c.certificateFor('late.test'));
    assert.equal(c.stats().issued, 1);
  });
});
