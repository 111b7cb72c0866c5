import { isIP } from 'node:net';
import type { Config } from '../config/index.js';
import { hijackedNames, type NamesSettings } from '../config/served-names.js';
import { SetupError } from './errors.js';

/**
 * A CoreDNS `hosts` block answering the registry names with pullthrough's addresses and passing
 * every other name on (`fallthrough`), for a Corefile's server block.
 * @throws SetupError naming dns.answer when there is no address: pass `addresses` or set dns.answer.
 */
export function corednsConfig(config: Pick<Config, 'dns'> & NamesSettings, addresses: readonly string[] = config.dns.answer): string {
  const ips = addresses.filter((a) => isIP(a));
  if (ips.length === 0) {
    throw new SetupError(
      'dns.answer is not set: the CoreDNS block answers the registry names with the addresses clients reach pullthrough at. ' +
        'Set them in the config file (dns: { answer: [10.0.0.5] }, with --config FILE) or as PULLTHROUGH_DNS_ANSWER=10.0.0.5 (comma-separated)',
    );
  }
  const names = hijackedNames(config);
  const lines = ['hosts {', ...ips.map((ip) => `    ${ip} ${names.join(' ')}`), `    ttl ${config.dns.ttl}`, '    no_reverse', '    fallthrough', '}'];
  return `${lines.join('\n')}\n`;
}
