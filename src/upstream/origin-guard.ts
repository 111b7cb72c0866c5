import { isIP, type LookupFunction } from 'node:net';
import { lookup as systemLookup } from 'node:dns';
import type { RegistryConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { UpstreamAddressRefusedError, UpstreamUnavailableError } from './errors.js';
import { describeNetworkError } from './network-error.js';
import { checkHost, refusedAddress, type AddressRefusedError, type AddressRule } from '../net/address-guard.js';
import { isSpecialAddress } from '../net/special-addresses.js';

/** How long the finding "the configured upstream lives in private space" holds before it is looked up again. */
const SPACE_TTL_MS = 5 * 60_000;

/**
 * Which connections of a request are checked: `trusted` for the configured upstream's own origin
 * (the operator's choice), `guarded` for any origin the upstream named (redirects, token realm),
 * whose addresses must pass the rule when the connection is made.
 */
export type Route = 'trusted' | 'guarded';

/**
 * The address rule for URLs one upstream names, and which route (transport variant) reaches a URL.
 * Guarded transports read {@link rule} on every lookup (see `guardedLookup`).
 */
export class OriginGuard {
  /** The address rule for guarded connections, kept current by {@link addressRule}. */
  private current: AddressRule = 'public';
  private space: { rule: AddressRule; until: number } | undefined;

  constructor(
    private readonly registry: Pick<RegistryConfig, 'name' | 'allowPrivateRedirects'>,
    private readonly base: URL,
    private readonly log: Logger,
    private readonly lookup?: LookupFunction,
  ) {}

  /** The rule guarded connections are checked against right now. */
  get rule(): AddressRule {
    return this.current;
  }

  /**
   * The rule for addresses the upstream names: `any` with `allowPrivateRedirects`; `no-metadata`
   * when the configured upstream itself lives in private space (its host is `localhost`, or is or
   * resolves to a special address: tests, on-prem registries), so it may send pullthrough to its
   * private neighbours but not to cloud metadata; else `public`. Looked up again every few minutes;
   * a failed lookup counts as public space (the strict rule) and is retried on the next request.
   */
  private async addressRule(): Promise<AddressRule> {
    if (this.registry.allowPrivateRedirects) return 'any';
    if (this.space && this.space.until > Date.now()) return this.space.rule;
    const host = this.base.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    let inPrivateSpace: boolean | undefined;
    if (isIP(host)) inPrivateSpace = isSpecialAddress(host);
    else if (host === 'localhost' || host.endsWith('.localhost')) inPrivateSpace = true;
    else {
      const lookup = (this.lookup ?? (systemLookup as unknown as LookupFunction)) as unknown as (h: string, o: object, cb: (err: Error | null, list: Array<{ address: string }>) => void) => void;
      inPrivateSpace = await new Promise<boolean | undefined>((resolve) =>
        lookup(host, { all: true }, (err, list) => resolve(err || !Array.isArray(list) ? undefined : list.some((a) => isSpecialAddress(a.address)))),
      );
    }
    const rule: AddressRule = inPrivateSpace ? 'no-metadata' : 'public';
    if (inPrivateSpace !== undefined) this.space = { rule, until: Date.now() + SPACE_TTL_MS };
    this.current = rule;
    return rule;
  }

  /**
   * Which connections reach `url`: the configured upstream's own origin is the operator's choice
   * and never checked; any other origin is one the upstream named, and its addresses must pass
   * {@link addressRule} when the connection is made (IP literals here, names in the lookup).
   * @throws UpstreamAddressRefusedError for an IP literal the rule refuses.
   */
  async route(url: URL, what: string): Promise<Route> {
    if (url.origin === this.base.origin) return 'trusted';
    const rule = await this.addressRule();
    if (rule === 'any') return 'trusted';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const refused = isIP(host) ? refusedAddress(host, host, rule) : null;
    if (refused) throw this.refusal(what, url, refused);
    return 'guarded';
  }

  /** The error for a refused URL, logged at warn (origin only: paths and queries may carry credentials). */
  refusal(what: string, url: URL, cause: AddressRefusedError): UpstreamAddressRefusedError {
    const err = new UpstreamAddressRefusedError(this.registry.name, what, url.origin, cause.message);
    this.log.warn('upstream URL refused', { registry: this.registry.name, what, target: url.origin, reason: cause.message });
    return err;
  }

  /**
   * Checks a URL the upstream gave for the client to follow itself (a push's upload Location):
   * same rule as for pullthrough's own connections, with the name resolved now.
   * @throws UpstreamAddressRefusedError when the rule refuses it; UpstreamUnavailableError when
   *   its name does not resolve.
   */
  async checkLocation(location: string): Promise<void> {
    let url: URL;
    try {
      url = new URL(location, this.base);
    } catch {
      return; // not a URL pullthrough or the client could connect to
    }
    if (url.origin === this.base.origin || (url.protocol !== 'http:' && url.protocol !== 'https:')) return;
    const rule = await this.addressRule();
    let refused: AddressRefusedError | null;
    try {
      refused = await checkHost(url.hostname.replace(/^\[|\]$/g, ''), rule, this.lookup);
    } catch (err) {
      throw new UpstreamUnavailableError(this.registry.name, `upload Location ${url.origin} does not resolve: ${describeNetworkError(err)}`, { cause: err });
    }
    if (refused) throw this.refusal('upload Location', url, refused);
  }
}
