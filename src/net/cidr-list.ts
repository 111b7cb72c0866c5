import { BlockList, isIP } from 'node:net';
import { ipToBytes, unmapIPv4 } from './ip-bytes.js';

/** One range of a CidrList as bytes: what code outside JavaScript (the DNS fast path) matches on. */
export interface CidrRange {
  family: 4 | 6;
  /** The address, network order (4 or 16 bytes). */
  bytes: Buffer;
  /** Prefix length; a bare address is /32 or /128. */
  prefix: number;
}

/**
 * A set of IP ranges (`10.0.0.0/8`, `::1/128`, or a bare address) with a membership test.
 * IPv4-mapped IPv6 sources (what a dual-stack socket reports for IPv4 peers) match IPv4 ranges.
 */
export class CidrList {
  private readonly list = new BlockList();
  readonly entries: readonly string[];
  readonly ranges: readonly CidrRange[];

  /** @throws TypeError for an entry that is neither an IP nor a CIDR range. */
  constructor(entries: readonly string[]) {
    this.entries = entries;
    const ranges: CidrRange[] = [];
    for (const e of entries) {
      const [addr, bits, ...rest] = e.split('/');
      const family = addr ? isIP(addr) : 0;
      const n = bits === undefined ? undefined : Number(bits);
      if (!family || rest.length || (n !== undefined && !(Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128)))) {
        throw new TypeError(`not an IP address or CIDR range: ${e}`);
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (n === undefined) this.list.addAddress(addr!, type);
      else this.list.addSubnet(addr!, n, type);
      ranges.push({ family: family as 4 | 6, bytes: ipToBytes(addr!), prefix: n ?? (family === 4 ? 32 : 128) });
    }
    this.ranges = ranges;
  }

  /** True when `ip` lies in one of the ranges; false for anything that is not an IP. */
  has(ip: string): boolean {
    const mapped = unmapIPv4(ip);
    const addr = mapped ?? ip;
    const family = isIP(addr);
    if (!family) return false;
    return this.list.check(addr, family === 4 ? 'ipv4' : 'ipv6');
  }
}
