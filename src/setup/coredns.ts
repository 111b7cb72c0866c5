import { isIP } from 'node:net';
import type { Config } from '../config/index.js';
import { hijackedNames } from '../config/served-names.js';
import { SetupError } from './errors.js';

/**
 * A CoreDNS `hosts` block answering the registry names with pullthrough's addresses and passing
 * every other name on (`fallthrough`), for a Corefile's server block.
 * @throws SetupError when there is no address: pass `addresses` or set dns.answer.
 */
export function corednsConfig(config: Config, addresses: readonly string[] = config.dns.answer): string {
  const ips = addresses.filter((a) => isIP(a));
  if (ips.length === 0) throw new SetupError('no address for the registry names: set dns.answer to where clients reach pullthrough');
  const names = hijackedNames(config);
  const lines = ['hosts {', ...ips.map((ip) => `    ${ip} ${names.join(' ')}`), `    ttl ${config.dns.ttl}`, '    no_reverse', '    fallthrough', '}'];
  return `${lines.join('\n')}\n`;
}
