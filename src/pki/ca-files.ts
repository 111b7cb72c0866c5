/**
 * The CA pullthrough signs with: the user's (tls.caCert/tls.caKey) or one it creates on first
 * start under paths.ca. The created key is owner-only (0600, in a 0700 directory); the
 * certificate is world-readable (0644), since clients download it to trust it.
 */
import { createPrivateKey, generateKeyPair, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Config } from '../config/index.js';
import { isErrno } from '../util/atomic-file.js';
import type { LogSink } from '../util/log-sink.js';
import { assertSigningKey, buildCertificate, certificateFields, splitPemCertificates, type Signer } from './certificate-builder.js';
import { PkiError } from './errors.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** How long a created CA is valid; replacing it means every client trusts a new one. */
const CA_VALIDITY_DAYS = 3650;
/** Clocks on clients drift; a certificate valid from an hour ago is accepted by all of them. */
export const BACKDATE_MS = 3_600_000;

/** A loaded CA, ready to sign. */
export interface CaMaterial {
  /** The CA certificate clients trust. */
  cert: X509Certificate;
  certPem: string;
  /** Intermediate certificates sent after each leaf (a user's CA may be an intermediate). */
  chainPems: string[];
  signer: Signer;
  /** SHA-256 fingerprint of the CA certificate (colon-separated hex). */
  fingerprint: string;
  origin: 'generated' | 'configured';
}

/**
 * Loads the configured CA, or the one under paths.ca, creating it (EC P-256, 10 years) when
 * absent. Two processes starting at once on one data directory end up with the same CA.
 * @throws PkiError when CA files are unreadable, do not match, are not a CA, or have expired;
 *   and when a key exists without its certificate (never overwritten: clients may trust it).
 */
export async function loadCaMaterial(config: Pick<Config, 'tls' | 'paths'>, log: LogSink): Promise<CaMaterial> {
  if (config.tls.caCert && config.tls.caKey) return loadConfigured(config.tls.caCert, config.tls.caKey, log);
  return loadOrCreateGenerated(config.paths.ca, log);
}

async function loadConfigured(certPath: string, keyPath: string, log: LogSink): Promise<CaMaterial> {
  const [certText, keyText] = await Promise.all([
    readFile(certPath, 'utf8').catch((err: Error) => {
      throw new PkiError(`tls.caCert: cannot read ${certPath}: ${err.message}`);
    }),
    readFile(keyPath, 'utf8').catch((err: Error) => {
      throw new PkiError(`tls.caKey: cannot read ${keyPath}: ${err.message}`);
    }),
  ]);
  const mode = (await stat(keyPath)).mode & 0o777;
  if (mode & 0o077) log.warn('tls.caKey is readable by group or others; make it 0600', { path: keyPath, mode: mode.toString(8) });
  return material(certText, keyText, 'configured', `${certPath} / ${keyPath}`);
}

function material(certText: string, keyText: string, origin: CaMaterial['origin'], where: string): CaMaterial {
  const pems = splitPemCertificates(certText);
  if (pems.length === 0) throw new PkiError(`${where}: no PEM certificate found`);
  let key: KeyObject;
  let cert: X509Certificate;
  try {
    key = createPrivateKey(keyText);
  } catch (err) {
    throw new PkiError(`${where}: cannot read the CA private key (PEM, unencrypted): ${(err as Error).message}`);
  }
  try {
    cert = new X509Certificate(pems[0]!);
  } catch (err) {
    throw new PkiError(`${where}: cannot read the CA certificate: ${(err as Error).message}`);
  }
  if (!cert.ca) throw new PkiError(`${where}: the certificate is not a CA (basicConstraints cA is not set)`);
  if (!cert.checkPrivateKey(key)) throw new PkiError(`${where}: the private key does not belong to the certificate`);
  if (Date.parse(cert.validTo) <= Date.now()) throw new PkiError(`${where}: the CA certificate expired on ${cert.validTo}`);
  assertSigningKey(key);
  const fields = certificateFields(cert.raw);
  // Certificates after the first that are not self-signed are intermediates to send along.
  const chainPems = pems.slice(1).filter((p) => {
    const c = new X509Certificate(p);
    return c.subject !== c.issuer;
  });
  if (cert.subject !== cert.issuer) chainPems.unshift(pems[0]!);
  return {
    cert,
    certPem: pems.join(''),
    chainPems,
    signer: { key, subjectDer: fields.subjectDer, keyIdentifier: fields.keyIdentifier },
    fingerprint: cert.fingerprint256,
    origin,
  };
}

async function loadOrCreateGenerated(dir: string, log: LogSink): Promise<CaMaterial> {
  // Parents keep default modes (the data directory is not only the CA's); the CA directory is 0700.
  await mkdir(dirname(dir), { recursive: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The directory is ours: tighten it even if something made it looser.
  await chmod(dir, 0o700);
  const certPath = join(dir, 'ca.crt');
  const keyPath = join(dir, 'ca.key');
  for (let attempt = 0; ; attempt++) {
    const [certText, keyText] = await Promise.all([readOptional(certPath), readOptional(keyPath)]);
    if (certText !== null && keyText !== null) {
      const mode = (await stat(keyPath)).mode & 0o777;
      if (mode !== 0o600) {
        await chmod(keyPath, 0o600);
        log.warn('CA key permissions tightened to 0600', { path: keyPath, was: mode.toString(8) });
      }
      return material(certText, keyText, 'generated', dir);
    }
    if (keyText !== null || certText !== null) {
      // Another process may be between writing the key and the certificate: give it a moment.
      if (attempt < 40) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      throw new PkiError(`${dir}: ${keyText !== null ? 'ca.key exists without ca.crt' : 'ca.crt exists without ca.key'}; restore the missing file, or remove both to create a new CA (clients must then trust the new one)`);
    }
    if (await createGenerated(dir, certPath, keyPath)) log.info('created a new CA; clients must trust it', { path: certPath });
  }
}

/** Writes a fresh CA; returns false when another process got there first. */
async function createGenerated(dir: string, certPath: string, keyPath: string): Promise<boolean> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  const now = Date.now();
  const { pem } = buildCertificate(
    {
      // A unique name per CA keeps trust stores from confusing an old pullthrough CA with a new one.
      commonName: `pullthrough CA ${hostname().slice(0, 24)} ${randomBytes(3).toString('hex')}`,
      organization: 'pullthrough',
      publicKey,
      serial: serialNumber(),
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CA_VALIDITY_DAYS * 86_400_000),
      isCa: true,
    },
    { selfKey: privateKey },
  );
  const tag = randomBytes(6).toString('hex');
  const keyTmp = join(dir, `.ca.key.${tag}`);
  const certTmp = join(dir, `.ca.crt.${tag}`);
  try {
    await writeFile(keyTmp, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    await writeFile(certTmp, pem, { mode: 0o644, flag: 'wx' });
    await chmod(certTmp, 0o644);
    // link() fails when ca.key exists, so of two racing processes exactly one CA wins.
    try {
      await link(keyTmp, keyPath);
    } catch (err) {
      if (isErrno(err, 'EEXIST')) return false;
      throw err;
    }
    await rename(certTmp, certPath);
    return true;
  } finally {
    await rm(keyTmp, { force: true });
    await rm(certTmp, { force: true });
  }
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw new PkiError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** 16 random bytes, high bit clear so the DER INTEGER is positive, never zero. */
export function serialNumber(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b;
}

