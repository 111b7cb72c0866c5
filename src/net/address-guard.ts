/**
 * Connect-time address checks for URLs that someone else named (an upstream's redirect, token
 * realm or upload Location). The check sits in the `lookup` of the connection itself, so the
 * address that was checked is the address connected to: a name that resolves to a public address
 * when asked first and to 127.0.0.1 when the socket opens (DNS rebinding) is refused all the same.
 * IP literals never reach a lookup (net.connect skips it for them), so callers check those with
 * {@link refusedAddress} before they connect.
 */
import { lookup as systemLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { isMetadataAddress, isSpecialAddress } from './special-addresses.js';
import { PullthroughError } from '../util/errors.js';

/**
 * Which addresses a connection may reach:
 * - `public`: no loopback, private, link-local, unique-local, CGNAT, metadata or reserved address;
 * - `no-metadata`: anything but cloud metadata endpoints;
 * - `any`: no check.
 */
export type AddressRule = 'public' | 'no-metadata' | 'any';

/** A connection refused because the address it would reach breaks the rule. */
export class AddressRefusedError extends PullthroughError {
  readonly code = 'ERR_ADDRESS_REFUSED';
  constructor(
    readonly host: string,
    readonly address: string,
    readonly rule: AddressRule,
  ) {
    super(`${host} ${host === address ? 'is' : `resolves to ${address}, which is`} ${rule === 'no-metadata' ? 'a cloud metadata address' : 'a loopback, private, link-local or otherwise non-public address'}`);
    this.name = 'AddressRefusedError';
  }
}

/** The refusal for connecting to `address` (an IP) under `rule`, or null when it may be reached. */
export function refusedAddress(host: string, address: string, rule: AddressRule): AddressRefusedError | null {
  if (rule === 'any') return null;
  const bad = rule === 'public' ? isSpecialAddress(address) : isMetadataAddress(address);
  return bad ? new AddressRefusedError(host, address, rule) : null;
}

/** The AddressRefusedError somewhere in an error's cause chain (undici and sockets wrap errors). */
export function findAddressRefusal(err: unknown): AddressRefusedError | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof AddressRefusedError) return e;
  }
  return undefined;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * Wraps a lookup (net.connect's `lookup`) so that a name is refused with an AddressRefusedError
 * when ANY of its addresses breaks `rule()` (not only the first: a client may try them all, and a
 * name that mixes public and private answers is a rebinding attempt). `rule` is read on every
 * lookup, so its owner can tighten it without rebuilding connection pools.
 */
export function guardedLookup(inner: LookupFunction | undefined, rule: () => AddressRule): LookupFunction {
  const base = (inner ?? (systemLookup as unknown as LookupFunction)) as unknown as (hostname: string, options: object, cb: LookupCallback) => void;
  const lookup = (hostname: string, options: unknown, callback: LookupCallback): void => {
    const opts = typeof options === 'object' && options !== null ? (options as { all?: boolean; family?: number | string }) : typeof options === 'number' ? { family: options } : {};
    base(hostname, { ...opts, all: true }, (err, list) => {
      if (err) return callback(err, opts.all ? [] : '', 0);
      const addresses = Array.isArray(list) ? list : [{ address: list, family: isIP(list) }];
      const r = rule();
      for (const a of addresses) {
        const refused = refusedAddress(hostname, a.address, r);
        if (refused) return callback(refused as NodeJS.ErrnoException, opts.all ? [] : '', 0);
      }
      if (addresses.length === 0) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), opts.all ? [] : '', 0);
      if (opts.all) callback(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
  return lookup as unknown as LookupFunction;
}

/**
 * Resolves `host` (a name or IP) with `lookup` and returns the refusal for the first address
 * that breaks `rule`, or null. For URLs pullthrough passes on without connecting (a push's upload
 * Location, which the client follows itself).
 * @throws the lookup's error when the name does not resolve.
 */
export async function checkHost(host: string, rule: AddressRule, lookup?: LookupFunction): Promise<AddressRefusedError | null> {
  if (rule === 'any') return null;
  if (isIP(host)) return refusedAddress(host, host, rule);
  const guarded = guardedLookup(lookup, () => rule) as unknown as (h: string, o: object, cb: LookupCallback) => void;
  return new Promise((resolve, reject) => {
    guarded(host, { all: true }, (err) => {
      if (!err) resolve(null);
      else if (err instanceof AddressRefusedError) resolve(err);
      else reject(err);
    });
  });
}
