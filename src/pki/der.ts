/**
 * Just enough DER to write X.509 certificates and to find fields in one. node-forge encodes the
 * primitives (OIDs, times); the structures are assembled here from Buffers, because forge's own
 * certificate writer only knows RSA keys and re-encodes embedded structures (a CA's subject, an
 * EC public key) instead of copying their bytes, which must stay byte-identical.
 */
import forge from 'node-forge';

const { asn1 } = forge;

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with the given tag byte. */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

export const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
export const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));
/** `[n]` EXPLICIT (constructed) context tag. */
export const explicit = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content);
/** `[n]` IMPLICIT primitive context tag. */
export const implicit = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content);
export const octets = (b: Buffer): Buffer => tlv(0x04, b);
export const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));
export const nul = (): Buffer => Buffer.from([0x05, 0x00]);
export const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
/** A BIT STRING whose last byte has `unusedBits` padding bits. */
export const bitString = (b: Buffer, unusedBits = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), b]));

export function oid(dotted: string): Buffer {
  return tlv(0x06, Buffer.from(asn1.oidToDer(dotted).getBytes(), 'binary'));
}

/** A non-negative INTEGER from big-endian magnitude bytes (minimal encoding). */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  return tlv(0x02, m[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : Buffer.from(m));
}

export const smallInteger = (n: number): Buffer => unsignedInteger(Buffer.from([n]));

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5), to the second. */
export function time(d: Date): Buffer {
  const whole = new Date(Math.floor(d.getTime() / 1000) * 1000);
  return whole.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(asn1.dateToUtcTime(whole), 'ascii'))
    : tlv(0x18, Buffer.from(asn1.dateToGeneralizedTime(whole), 'ascii'));
}

/** A TLV found in a buffer: its tag and where its header and content lie. */
export interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/**
 * Reads the TLV at `offset` (single-byte tags, definite lengths, as DER has).
 * @throws RangeError when the bytes are not well-formed DER there.
 */
export function readTlv(buf: Buffer, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw new RangeError('DER: truncated header');
  const tag = buf[offset]!;
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw new RangeError('DER: bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new RangeError('DER: truncated content');
  return { tag, start: offset, contentStart: p, end: p + len };
}

/** The TLVs directly inside a constructed TLV. */
export function childrenOf(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.contentStart; p < parent.end; ) {
    const t = readTlv(buf, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

export const bytesOf = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.start, t.end);
export const contentOf = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.contentStart, t.end);
