import { isIP } from 'node:net';

/** A host (name or IP, IPv6 without brackets) and a port. */
export interface HostPort {
  host: string;
  port: number;
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/;

/** True for a syntactically valid DNS host name (lowercase, no trailing dot). */
export function isHostname(s: string): boolean {
  return HOSTNAME.test(s);
}

/**
 * Lowercases a host and drops one trailing dot, so `Quay.IO.` and `quay.io` compare equal.
 * IPv6 literals lose their brackets.
 */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.') && !isIP(h)) h = h.slice(0, -1);
  return h;
}

/**
 * Parses `host:port`, `[v6]:port`, or (when `defaultPort` is given) a bare host or IP.
 * Returns null for anything else: a missing or non-decimal port, a port outside 1..65535, or a
 * host that is neither a valid name nor an IP. Never throws.
 */
export function parseHostPort(input: string, defaultPort?: number): HostPort | null {
  const s = input.trim();
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (isIP(host) !== 6) return null;
  } else if (isIP(s) === 6) {
    host = s;
  } else {
    const i = s.lastIndexOf(':');
    host = i < 0 ? s : s.slice(0, i);
    portText = i < 0 ? undefined : s.slice(i + 1);
    if (portText !== undefined && !/^\d{1,5}$/.test(portText)) return null;
  }
  host = normalizeHost(host);
  if (!isIP(host) && !isHostname(host)) return null;
  const port = portText === undefined ? defaultPort : Number(portText);
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}
