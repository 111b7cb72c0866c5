/**
 * Writes X.509 v3 certificates: the CA's own (self-signed) and the per-name leaves. Keys are Node
 * KeyObjects of any type Node can sign with (EC P-256/384/521, RSA, Ed25519), so a user's EC or
 * RSA CA works and leaves can be EC P-256, whose keys take a millisecond to make.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { PkiError } from './errors.js';
import { ipToBytes } from '../net/ip-bytes.js';
import {
  bitString, bool, bytesOf, childrenOf, contentOf, explicit, implicit, nul, octets, oid, readTlv, seq, set,
  smallInteger, time, unsignedInteger, utf8,
} from './der.js';

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  ed25519: '1.3.101.112',
} as const;

/** The signature algorithm identifier and digest for certificates signed by `key`. */
function signatureAlgorithm(key: KeyObject): { algorithmId: Buffer; digest: string | null } {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { algorithmId: seq(oid(OID.sha256WithRSA), nul()), digest: 'sha256' };
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      // RFC 5758: ECDSA algorithm identifiers carry no parameters.
      if (curve === 'prime256v1') return { algorithmId: seq(oid(OID.ecdsaSha256)), digest: 'sha256' };
      if (curve === 'secp384r1') return { algorithmId: seq(oid(OID.ecdsaSha384)), digest: 'sha384' };
      if (curve === 'secp521r1') return { algorithmId: seq(oid(OID.ecdsaSha512)), digest: 'sha512' };
      throw new PkiError(`unsupported CA key: EC curve ${curve ?? 'unknown'} (use P-256, P-384, P-521, RSA or Ed25519)`);
    }
    case 'ed25519':
      return { algorithmId: seq(oid(OID.ed25519)), digest: null };
    default:
      throw new PkiError(`unsupported CA key type ${key.asymmetricKeyType ?? 'unknown'} (use EC, RSA or Ed25519)`);
  }
}

/** @throws PkiError unless pullthrough can sign certificates with `key`. */
export function assertSigningKey(key: KeyObject): void {
  signatureAlgorithm(key);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const [, bits] = childrenOf(spki, readTlv(spki, 0));
  // Skip the BIT STRING's unused-bits byte.
  return createHash('sha1').update(contentOf(spki, bits!).subarray(1)).digest();
}

function name(commonName: string | null, organization: string): Buffer {
  const rdn = (type: string, value: string): Buffer => set(seq(oid(type), utf8(value)));
  // ub-common-name is 64; longer host names live in the SAN only.
  return seq(rdn(OID.organization, organization), ...(commonName && commonName.length <= 64 ? [rdn(OID.commonName, commonName)] : []));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
}

/** The certificate's subject Name (raw DER) and its subject key identifier, if it has one. */
export function certificateFields(der: Buffer): { subjectDer: Buffer; keyIdentifier: Buffer | null } {
  try {
    const cert = readTlv(der, 0);
    const tbs = childrenOf(der, childrenOf(der, cert)[0]!);
    const off = tbs[0]!.tag === 0xa0 ? 1 : 0;
    const subjectDer = Buffer.from(bytesOf(der, tbs[off + 4]!));
    let ski: Buffer | null = null;
    const extsWrapper = tbs.find((t) => t.tag === 0xa3);
    if (extsWrapper) {
      const skiOid = oid(OID.subjectKeyIdentifier);
      for (const ext of childrenOf(der, childrenOf(der, extsWrapper)[0]!)) {
        const parts = childrenOf(der, ext);
        if (!bytesOf(der, parts[0]!).equals(skiOid)) continue;
        const outer = parts[parts.length - 1]!;
        ski = Buffer.from(contentOf(der, readTlv(der, outer.contentStart, outer.end)));
      }
    }
    return { subjectDer, keyIdentifier: ski };
  } catch (err) {
    throw new PkiError('cannot read the CA certificate structure', { cause: err });
  }
}

/** What a new certificate says. */
export interface CertificateSpec {
  /** CN (dropped when longer than 64 characters). */
  commonName: string | null;
  organization: string;
  publicKey: KeyObject;
  /** Big-endian serial magnitude; keep it positive and at most 20 bytes. */
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** A CA certificate (basicConstraints cA, pathLen 0, keyCertSign) rather than a TLS server leaf. */
  isCa: boolean;
  /** Subject alternative names: host names become DNS names, IP addresses IP names. */
  altNames?: string[];
}

/** Who signs: its private key, its subject Name (DER, copied verbatim) and key identifier. */
export interface Signer {
  key: KeyObject;
  subjectDer: Buffer;
  keyIdentifier: Buffer | null;
}

/**
 * Builds and signs a certificate. With no `signer` it is self-signed by `selfKey`.
 * @throws PkiError when the signing key's type or curve is not supported.
 */
export function buildCertificate(spec: CertificateSpec, signer: Signer | { selfKey: KeyObject }): { der: Buffer; pem: string } {
  const subject = name(spec.commonName, spec.organization);
  const ownKeyId = keyIdentifier(spec.publicKey);
  const s: Signer = 'selfKey' in signer ? { key: signer.selfKey, subjectDer: subject, keyIdentifier: ownKeyId } : signer;
  const { algorithmId, digest } = signatureAlgorithm(s.key);

  const exts: Buffer[] = [];
  if (spec.isCa) {
    exts.push(extension(OID.basicConstraints, true, seq(bool(true), smallInteger(0))));
    // keyCertSign (bit 5) and cRLSign (bit 6): 0b0000_0110, one unused bit.
    exts.push(extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)));
  } else {
    exts.push(extension(OID.basicConstraints, true, seq()));
    // digitalSignature (bit 0); RSA leaves would also need keyEncipherment for TLS 1.2 RSA kex.
    const rsa = spec.publicKey.asymmetricKeyType === 'rsa';
    exts.push(extension(OID.keyUsage, true, rsa ? bitString(Buffer.from([0xa0]), 5) : bitString(Buffer.from([0x80]), 7)));
    exts.push(extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))));
  }
  if (spec.altNames?.length) {
    // GeneralName: dNSName [2] IA5String, iPAddress [7] OCTET STRING, both implicitly tagged.
    const names = spec.altNames.map((n) => (isIP(n) ? implicit(7, ipToBytes(n)) : implicit(2, Buffer.from(n, 'ascii'))));
    exts.push(extension(OID.subjectAltName, false, seq(...names)));
  }
  exts.push(extension(OID.subjectKeyIdentifier, false, octets(ownKeyId)));
  if (s.keyIdentifier) exts.push(extension(OID.authorityKeyIdentifier, false, seq(implicit(0, s.keyIdentifier))));

  const tbs = seq(
    explicit(0, smallInteger(2)),
    unsignedInteger(spec.serial),
    algorithmId,
    s.subjectDer,
    seq(time(spec.notBefore), time(spec.notAfter)),
    subject,
    spec.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(...exts)),
  );
  const signature = sign(digest, tbs, s.key);
  const der = seq(tbs, algorithmId, bitString(signature));
  return { der, pem: toPem(der) };
}

/** PEM text of a DER certificate. */
export function toPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/** Every PEM certificate block in `text`, in order. */
export function splitPemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)?.map((s) => `${s}\n`) ?? [];
}
