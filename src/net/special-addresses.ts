import { isIP } from 'node:net';
import { CidrList } from './cidr-list.js';
import { ipToBytes } from './ip-bytes.js';

/**
 * Ranges a tunnel must never reach unless the operator allows private targets: loopback, private,
 * link-local, carrier-grade NAT, cloud metadata endpoints, multicast, reserved and documentation
 * ranges. Cloud metadata lives at 169.254.169.254 (AWS, GCP, Azure, OpenStack), fd00:ec2::254
 * (AWS IPv6), 100.100.100.200 (Alibaba, in 100.64/10), 192.0.0.192 (Oracle, in 192.0.0.0/24) and
 * 168.63.129.16 (Azure's host endpoint, a public address, hence listed alone).
 */
const SPECIAL = new CidrList([
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '168.63.129.16/32',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  '64:ff9b:1::/48',
  '100::/64',
  '2001::/23',
  '2001:db8::/32',
  '3fff::/20',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
]);

/** IPv6 prefixes that carry an IPv4 address a packet may end up at (mapped, compatible, NAT64, 6to4). */
function embeddedIPv4(ip: string): string | null {
  const b = ipToBytes(ip);
  const v4 = (o: number): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
  if (b.subarray(0, 10).every((x) => x === 0) && ((b[10] === 0xff && b[11] === 0xff) || (b[10] === 0 && b[11] === 0))) return v4(12);
  // 64:ff9b::/96, the well-known NAT64 prefix.
  if (b.readUInt32BE(0) === 0x0064ff9b && b.subarray(4, 12).every((x) => x === 0)) return v4(12);
  // 2002::/16, 6to4: the IPv4 address follows the prefix.
  if (b.readUInt16BE(0) === 0x2002) return v4(2);
  return null;
}

/**
 * True when `ip` is loopback, private, link-local, metadata or otherwise not a public unicast
 * address, looking through IPv6 forms that embed an IPv4 address. Anything that is not an IP
 * counts as special (fail closed).
 */
export function isSpecialAddress(ip: string): boolean {
  const family = isIP(ip);
  if (!family) return true;
  if (SPECIAL.has(ip)) return true;
  if (family === 6) {
    const v4 = embeddedIPv4(ip);
    // ::/96 (IPv4-compatible) with a zero tail is :: itself, already listed.
    if (v4 !== null && (v4 === '0.0.0.0' || SPECIAL.has(v4))) return true;
  }
  return false;
}

/** Cloud metadata and host endpoints (see {@link SPECIAL}): credentials live behind these. */
const METADATA = new CidrList(['169.254.169.254/32', 'fd00:ec2::254/128', '100.100.100.200/32', '192.0.0.192/32', '168.63.129.16/32']);

/**
 * True when `ip` is a cloud metadata or host endpoint, also in an IPv6 form that embeds it.
 * Anything that is not an IP counts (fail closed).
 */
export function isMetadataAddress(ip: string): boolean {
  const family = isIP(ip);
  if (!family) return true;
  if (METADATA.has(ip)) return true;
  const v4 = family === 6 ? embeddedIPv4(ip) : null;
  return v4 !== null && METADATA.has(v4);
}
