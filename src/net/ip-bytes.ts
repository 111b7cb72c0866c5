import { isIP } from 'node:net';

/**
 * The network-order bytes of an IP address (4 for IPv4, 16 for IPv6; an IPv4-in-IPv6 tail such
 * as `::ffff:1.2.3.4` is understood).
 * @throws TypeError when `ip` is not an IP address.
 */
export function ipToBytes(ip: string): Buffer {
  const family = isIP(ip);
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  if (family !== 6) throw new TypeError(`not an IP address: ${ip}`);
  let text = ip.split('%')[0]!;
  // A dotted IPv4 tail becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The IPv4 address embedded in an IPv4-mapped (`::ffff:a.b.c.d`) IPv6 address, else null. */
export function unmapIPv4(ip: string): string | null {
  if (isIP(ip) !== 6) return null;
  const b = ipToBytes(ip);
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return null;
  if (b[10] !== 0xff || b[11] !== 0xff) return null;
  return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
}
