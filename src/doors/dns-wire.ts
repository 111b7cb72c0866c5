/**
 * The few DNS wire-format operations the DNS door needs, on raw bytes: read a query's header and
 * question, and write a response that echoes the question. Every read is bounds-checked and
 * nothing here throws on hostile input; a parser that decodes whole packets (dns2's) costs time
 * on the hot path (a third of these answers/s in test/bench/dns-codec.ts: 6 408 against 21 895)
 * and throws on malformed ones.
 */

export const QTYPE = { A: 1, AAAA: 28, ANY: 255 } as const;
export const QCLASS_IN = 1;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NOTIMP: 4, REFUSED: 5 } as const;

/** A query's header fields and its one question. */
export interface Query {
  id: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
  /** Lowercase, dot-joined, no trailing dot; null when a label holds a dot (it can match no served name). */
  name: string | null;
  qtype: number;
  qclass: number;
  /** Offset just past the question section: bytes [12, questionEnd) are echoed in the response. */
  questionEnd: number;
}

export type Parsed =
  | { kind: 'query'; query: Query }
  /** Too short to answer, or a response: say nothing (no reflection of junk). */
  | { kind: 'drop' }
  /** Answer with this rcode and no question. */
  | { kind: 'error'; id: number; opcode: number; rd: boolean; rcode: number };

/** Reads the header and the single question of `msg`. Never throws. */
export function parseQuery(msg: Buffer): Parsed {
  if (msg.length < 12) return { kind: 'drop' };
  const id = msg.readUInt16BE(0);
  const b2 = msg[2]!;
  if (b2 & 0x80) return { kind: 'drop' };
  const opcode = (b2 >> 3) & 0x0f;
  const rd = (b2 & 0x01) !== 0;
  if (opcode !== 0) return { kind: 'error', id, opcode, rd, rcode: RCODE.NOTIMP };
  const formerr: Parsed = { kind: 'error', id, opcode, rd, rcode: RCODE.FORMERR };
  if (msg.readUInt16BE(4) !== 1) return formerr;
  const labels: string[] = [];
  let dotted = false;
  let p = 12;
  let total = 0;
  for (;;) {
    if (p >= msg.length) return formerr;
    const len = msg[p]!;
    // Compression pointers and the reserved label types have no place in a question.
    if (len & 0xc0) return formerr;
    p++;
    if (len === 0) break;
    total += len + 1;
    if (total > 255 || p + len > msg.length) return formerr;
    const label = msg.toString('latin1', p, p + len);
    if (label.includes('.')) dotted = true;
    labels.push(label);
    p += len;
  }
  if (p + 4 > msg.length) return formerr;
  return {
    kind: 'query',
    query: {
      id,
      opcode,
      rd,
      cd: (msg[3]! & 0x10) !== 0,
      name: dotted ? null : labels.join('.').toLowerCase(),
      qtype: msg.readUInt16BE(p),
      qclass: msg.readUInt16BE(p + 2),
      questionEnd: p + 4,
    },
  };
}

/**
 * A response to `q` echoing its question, with `answers` (resource records whose owner name is a
 * pointer to the question, 0xC00C) counted by `ancount`.
 */
export function buildResponse(msg: Buffer, q: Query, rcode: number, opts: { aa: boolean; ra: boolean }, answers?: Buffer, ancount = 0): Buffer {
  const qlen = q.questionEnd - 12;
  const out = Buffer.allocUnsafe(12 + qlen + (answers?.length ?? 0));
  out.writeUInt16BE(q.id, 0);
  out[2] = 0x80 | (q.opcode << 3) | (opts.aa ? 0x04 : 0) | (q.rd ? 0x01 : 0);
  out[3] = (opts.ra ? 0x80 : 0) | (q.cd ? 0x10 : 0) | rcode;
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(ancount, 6);
  out.writeUInt32BE(0, 8);
  msg.copy(out, 12, 12, q.questionEnd);
  answers?.copy(out, 12 + qlen);
  return out;
}

/** A header-only response (FORMERR, NOTIMP) for a query whose question could not be used. */
export function buildHeaderOnly(id: number, opcode: number, rd: boolean, rcode: number, ra: boolean): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(id, 0);
  out[2] = 0x80 | (opcode << 3) | (rd ? 0x01 : 0);
  out[3] = (ra ? 0x80 : 0) | rcode;
  return out;
}

/** One answer record for the question's name: pointer 0xC00C, type, class IN, TTL, data. */
export function answerRecord(type: number, ttl: number, rdata: Buffer): Buffer {
  const rr = Buffer.alloc(12 + rdata.length);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(type, 2);
  rr.writeUInt16BE(QCLASS_IN, 4);
  rr.writeUInt32BE(ttl, 6);
  rr.writeUInt16BE(rdata.length, 10);
  rdata.copy(rr, 12);
  return rr;
}
