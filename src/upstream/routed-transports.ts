import type { LookupFunction } from 'node:net';
import { guardedLookup, type AddressRule } from '../net/address-guard.js';
import type { Route } from './origin-guard.js';
import type { Transport, TransportOptions } from './transport.js';
import { UndiciTransport } from './undici-transport.js';
import { ObjectReaderTransport } from './object-reader-transport.js';

/**
 * Which transport a request takes: 'pull' for what a pull asks of a registry (blob and manifest
 * GETs, HEADs), 'api' for the rest (tokens, tag lists, catalog, pushes relayed).
 */
export type Traffic = 'pull' | 'api';

/**
 * The four transports of one registry client: undici for API traffic and an ObjectReader for
 * the pull path, each twice: `trusted` (the configured lookup) and `guarded` (a lookup that refuses
 * addresses by the guard's current rule), chosen per request by route and traffic.
 */
export class RoutedTransports {
  private readonly table: Record<Route, Record<Traffic, Transport>>;

  /** `rule` is read on every guarded lookup, so tightening it needs no new pools. */
  constructor(opts: Omit<TransportOptions, 'lookup'>, lookup: LookupFunction | undefined, rule: () => AddressRule) {
    const pair = (l: LookupFunction | undefined): Record<Traffic, Transport> => {
      const o = { ...opts, ...(l ? { lookup: l } : {}) };
      return { api: new UndiciTransport(o), pull: new ObjectReaderTransport(o) };
    };
    this.table = { trusted: pair(lookup), guarded: pair(guardedLookup(lookup, rule)) };
  }

  /** The transport for `traffic` on `route`. */
  pick(route: Route, traffic: Traffic): Transport {
    return this.table[route][traffic];
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.table).flatMap((p) => [p.api.close(), p.pull.close()]));
  }
}
