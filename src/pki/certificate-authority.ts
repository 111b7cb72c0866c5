/**
 * Certificates for the names pullthrough stands in for, issued on first use by its CA. Each name
 * is issued once even under concurrent handshakes (single-flight in a process, a lock file across
 * the workers sharing the data directory), cached in memory and on disk, and reissued when near
 * expiry, when the CA changed, or when leafValidityDays shrank.
 */
import { createPrivateKey, generateKeyPair, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { promisify } from 'node:util';
import type { Config } from '../config/index.js';
import { servedNames, type NamesSettings } from '../config/served-names.js';
import { normalizeHost } from '../net/host-port.js';
import { silentLog, type LogSink } from '../util/log-sink.js';
import { BACKDATE_MS, loadCaMaterial, serialNumber, type CaMaterial } from './ca-files.js';
import { buildCertificate } from './certificate-builder.js';
import { LeafStore } from './leaf-store.js';

const generateKeyPairAsync = promisify(generateKeyPair);
const DAY_MS = 86_400_000;

/** A leaf certificate for one name, as PEM. */
export interface LeafCertificate {
  name: string;
  certPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

interface Entry {
  leaf: LeafCertificate;
  context: SecureContext;
  /** From this moment the leaf is replaced on its next use. */
  renewAt: number;
}

/** Options for {@link CertificateAuthority.load}. */
export interface CertificateAuthorityOptions {
  log?: LogSink;
  /** The clock (tests); defaults to Date.now. */
  now?: () => number;
}

/** What the CA reads: `paths.ca`, `tls.*` and the served names it issues certificates for. */
export type CaSettings = Pick<Config, 'paths' | 'tls'> & NamesSettings;

export class CertificateAuthority {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();
  private readonly store: LeafStore;
  private readonly served: ReadonlySet<string>;
  private readonly validityMs: number;
  private readonly counters = { issued: 0, loadedFromDisk: 0 };

  private constructor(
    private readonly ca: CaMaterial,
    config: CaSettings,
    private readonly log: LogSink,
    private readonly now: () => number,
  ) {
    this.store = new LeafStore(join(config.paths.ca, 'leaves'));
    this.served = new Set(servedNames(config).keys());
    this.validityMs = Math.min(config.tls.leafValidityDays, 397) * DAY_MS;
  }

  /**
   * Loads the configured CA or the one under paths.ca, creating it on first start.
   * @throws PkiError when the CA files are unreadable, mismatched, expired or of an unsupported key type.
   */
  static async load(config: CaSettings, opts: CertificateAuthorityOptions = {}): Promise<CertificateAuthority> {
    const log = opts.log ?? silentLog;
    const ca = await loadCaMaterial(config, log);
    return new CertificateAuthority(ca, config, log, opts.now ?? Date.now);
  }

  /** The CA certificate(s) clients must trust, as PEM (serve it at /ca.crt). */
  caPem(): string {
    return this.ca.certPem;
  }

  /** SHA-256 fingerprint of the CA certificate. */
  get fingerprint(): string {
    return this.ca.fingerprint;
  }

  /** Whether the CA was created by pullthrough or supplied by the user. */
  get origin(): 'generated' | 'configured' {
    return this.ca.origin;
  }

  /** True when `servername` is one of the names certificates are issued for. */
  serves(servername: string): boolean {
    return this.served.has(normalizeHost(servername));
  }

  /** Every name a certificate may be issued for. */
  names(): string[] {
    return [...this.served];
  }

  /** The name whose certificate serves handshakes without SNI (clients dialling an IP send none): the first IP name, if any. */
  defaultName(): string | null {
    return [...this.served].find((n) => isIP(n) !== 0) ?? null;
  }

  /** Issuance counters since this instance was loaded. */
  stats(): { issued: number; loadedFromDisk: number } {
    return { ...this.counters };
  }

  /** The in-memory context for `servername` when it is current; undefined otherwise (no I/O, for the handshake fast path). */
  cachedContext(servername: string): SecureContext | undefined {
    const e = this.entries.get(normalizeHost(servername));
    return e && this.now() < e.renewAt ? e.context : undefined;
  }

  /**
   * The TLS context for `servername`, issuing its certificate on first use; null for a name
   * pullthrough does not serve (the handshake must then fail).
   * @throws the fs or crypto error when a certificate can be neither loaded nor issued and stored.
   */
  async secureContextFor(servername: string): Promise<SecureContext | null> {
    const entry = await this.entryFor(servername);
    return entry ? entry.context : null;
  }

  /**
   * The leaf certificate and key for `name` (issued on first use); null for an unserved name.
   * @throws as {@link secureContextFor}.
   */
  async certificateFor(name: string): Promise<LeafCertificate | null> {
    const entry = await this.entryFor(name);
    return entry ? entry.leaf : null;
  }

  private async entryFor(servername: string): Promise<Entry | null> {
    const name = normalizeHost(servername);
    if (!this.served.has(name)) return null;
    const cached = this.entries.get(name);
    if (cached && this.now() < cached.renewAt) return cached;
    let p = this.inflight.get(name);
    if (!p) {
      p = this.obtain(name, cached === undefined).finally(() => this.inflight.delete(name));
      this.inflight.set(name, p);
    }
    return p;
  }

  /**
   * From disk when a usable leaf is there, else a new one. Other processes on this data directory
   * (workers) issue on their own: under the store's lock for the name, disk is read again, so of
   * two workers meeting a new (or due) name at once, one issues and the other uses its leaf.
   */
  private async obtain(name: string, tryDisk: boolean): Promise<Entry> {
    let entry = tryDisk ? await this.fromDisk(name) : null;
    if (!entry) {
      const release = await this.store.lock(name);
      try {
        entry = (await this.fromDisk(name)) ?? (await this.issue(name));
      } finally {
        await release();
      }
    }
    this.entries.set(name, entry);
    return entry;
  }

  /** The stored leaf for `name` when it is usable (counted); else null. */
  private async fromDisk(name: string): Promise<Entry | null> {
    const stored = await this.store.read(name);
    const entry = stored && this.usable(name, stored.certPem, stored.keyPem);
    if (!entry) return null;
    this.counters.loadedFromDisk++;
    return entry;
  }

  /** An entry for a stored leaf, or null when it must be replaced. */
  private usable(name: string, certPem: string, keyPem: string): Entry | null {
    try {
      const cert = new X509Certificate(certPem);
      const key = createPrivateKey(keyPem);
      if (!cert.checkIssued(this.ca.cert) || !cert.verify(this.ca.cert.publicKey)) return null; // another CA
      if (!cert.checkPrivateKey(key)) return null;
      if (!(isIP(name) ? cert.checkIP(name) : cert.checkHost(name, { wildcards: false }))) return null;
      const leaf: LeafCertificate = { name, certPem, keyPem, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
      if (leaf.notAfter.getTime() - leaf.notBefore.getTime() > this.validityMs) return null; // leafValidityDays shrank
      const entry = this.entryOf(leaf);
      return this.now() < entry.renewAt ? entry : null;
    } catch {
      return null; // unreadable: replace it
    }
  }

  private entryOf(leaf: LeafCertificate): Entry {
    const span = leaf.notAfter.getTime() - leaf.notBefore.getTime();
    // Renew a month before expiry, or in the last third for short-lived leaves.
    const renewAt = leaf.notAfter.getTime() - Math.min(30 * DAY_MS, span / 3);
    const context = createSecureContext({ key: leaf.keyPem, cert: leaf.certPem + this.ca.chainPems.join('') });
    return { leaf, context, renewAt };
  }

  private async issue(name: string): Promise<Entry> {
    const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
    const notBefore = this.now() - BACKDATE_MS;
    const notAfter = Math.min(notBefore + this.validityMs, Date.parse(this.ca.cert.validTo));
    const { pem } = buildCertificate(
      {
        commonName: name,
        organization: 'pullthrough',
        publicKey,
        serial: serialNumber(),
        notBefore: new Date(notBefore),
        notAfter: new Date(notAfter),
        isCa: false,
        altNames: [name],
      },
      this.ca.signer,
    );
    const leaf: LeafCertificate = {
      name,
      certPem: pem,
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      // What the certificate says, to the second.
      notBefore: new Date(Math.floor(notBefore / 1000) * 1000),
      notAfter: new Date(Math.floor(notAfter / 1000) * 1000),
    };
    await this.store.write(name, leaf);
    this.counters.issued++;
    this.log.info('issued a certificate', { name, notAfter: leaf.notAfter.toISOString() });
    return this.entryOf(leaf);
  }
}
