/**
 * A throwaway PKI for tests: a CA, server certificates for loopback servers, and self-signed
 * signing certificates (for the token server's JWTs). Keys come from node's native RSA generator
 * because node-forge's pure-JS one takes seconds per key; forge only builds and signs certificates.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { ownedTempDir } from './process.js';

/** A PEM certificate and its key, written to files. */
export interface CertFiles {
  /** PEM certificate file. */
  readonly certFile: string;
  /** PEM (PKCS#8) private key file. */
  readonly keyFile: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** A test certificate authority. */
export interface TestCA extends CertFiles {
  /** Folder holding the CA's files (and, by default, what it issues). */
  readonly dir: string;
  /**
   * A folder containing only `ca.crt` (this CA), the layout skopeo's `--src-cert-dir`,
   * podman's `--cert-dir` and docker's certs.d expect.
   */
  readonly certDir: string;
  /** Removes `dir` (only when this CA created it). */
  cleanup(): Promise<void>;
}

/** What a server certificate is valid for. */
export interface ServerCertOptions {
  /** IP SANs; default `['127.0.0.1', '::1']`. */
  ips?: string[];
  /** DNS SANs; default `['localhost']`. */
  dnsNames?: string[];
  /** Subject CN; default the first DNS name or IP. */
  commonName?: string;
  /** File name stem inside the CA dir; default `server-<n>`. */
  name?: string;
  /** Days of validity; default 30. Negative makes an already-expired certificate. */
  days?: number;
}

function newKey(bits = 2048): { pub: forge.pki.PublicKey; priv: forge.pki.rsa.PrivateKey; keyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { pub: forge.pki.publicKeyFromPem(publicKey), priv: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey, keyPem: privateKey };
}

function serial(): string {
  // A leading byte below 0x80 keeps the DER integer positive, which Go's x509 insists on.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f | 0x10;
  return b.toString('hex');
}

function validity(cert: forge.pki.Certificate, days: number): void {
  const now = Date.now();
  if (days >= 0) {
    // Backdated an hour so clock skew between processes never makes a fresh cert "not yet valid".
    cert.validity.notBefore = new Date(now - 3600_000);
    cert.validity.notAfter = new Date(now + days * 86400_000);
  } else {
    cert.validity.notBefore = new Date(now + (days - 1) * 86400_000);
    cert.validity.notAfter = new Date(now + days * 86400_000);
  }
}

/** A self-signed certificate valid for a year, with a new key; subject = issuer = `attrs`. */
function selfSigned(attrs: forge.pki.CertificateField[], extensions: object[]): { certPem: string; keyPem: string } {
  const { pub, priv, keyPem } = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serial();
  validity(cert, 365);
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions(extensions);
  cert.sign(priv, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/** Creates a CA (RSA 2048, SHA-256) in `dir` or a fresh temp dir. */
export async function createCA(opts: { dir?: string; commonName?: string } = {}): Promise<TestCA> {
  const own = opts.dir ? undefined : await ownedTempDir('pullthrough-pki-');
  const dir = opts.dir ?? own!.path;
  await mkdir(dir, { recursive: true });
  const { certPem, keyPem } = selfSigned(
    [{ name: 'commonName', value: opts.commonName ?? 'pullthrough test CA' }, { name: 'organizationName', value: 'pullthrough tests' }],
    [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ],
  );
  const certFile = join(dir, 'ca.pem');
  const keyFile = join(dir, 'ca-key.pem');
  const certDir = join(dir, 'certdir');
  await mkdir(certDir, { recursive: true });
  await Promise.all([writeFile(certFile, certPem), writeFile(keyFile, keyPem, { mode: 0o600 }), writeFile(join(certDir, 'ca.crt'), certPem)]);
  return { dir, certFile, keyFile, certPem, keyPem, certDir, cleanup: async () => (own ? own.cleanup() : undefined) };
}

let issued = 0;

/** Issues a TLS server certificate signed by `ca` (SANs from `opts`), written into `ca.dir`. */
export async function issueServerCert(ca: TestCA, opts: ServerCertOptions = {}): Promise<CertFiles> {
  const ips = opts.ips ?? ['127.0.0.1', '::1'];
  const dnsNames = opts.dnsNames ?? ['localhost'];
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  const { pub, keyPem } = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serial();
  validity(cert, opts.days ?? 30);
  // Go ignores the CN for host checks (SANs only) but some tools print it.
  cert.setSubject([{ name: 'commonName', value: opts.commonName ?? dnsNames[0] ?? ips[0] ?? 'server' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [...dnsNames.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  const stem = opts.name ?? `server-${++issued}`;
  const certFile = join(ca.dir, `${stem}.pem`);
  const keyFile = join(ca.dir, `${stem}-key.pem`);
  await Promise.all([writeFile(certFile, certPem), writeFile(keyFile, keyPem, { mode: 0o600 })]);
  return { certFile, keyFile, certPem, keyPem };
}

/**
 * A self-signed certificate for signing (not TLS): the token server puts it in the JWT `x5c`
 * header and the registry trusts it as its `rootcertbundle`.
 */
export async function createSigningCert(dir: string, name = 'token-signer'): Promise<CertFiles> {
  await mkdir(dir, { recursive: true });
  const { certPem, keyPem } = selfSigned(
    [{ name: 'commonName', value: name }],
    [{ name: 'basicConstraints', cA: true }, { name: 'keyUsage', digitalSignature: true, keyCertSign: true }, { name: 'subjectKeyIdentifier' }],
  );
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  await Promise.all([writeFile(certFile, certPem), writeFile(keyFile, keyPem, { mode: 0o600 })]);
  return { certFile, keyFile, certPem, keyPem };
}

/** The DER bytes of the first certificate in a PEM, base64 (standard, padded) as `x5c` wants. */
export function pemToX5c(certPem: string): string {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(certPem);
  if (!m) throw new Error('no certificate in PEM');
  return m[1]!.replace(/\s+/g, '');
}
