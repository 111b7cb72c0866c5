/**
 * The TLS door's cipher suites: Node.js's default list with TLS_AES_128_GCM_SHA256 first, in the
 * server's order of preference.
 *
 * Why: Node.js's default list, which its TLS server follows, puts TLS_AES_256_GCM_SHA384 first (as
 * OpenSSL's and curl's do), so TLS 1.3 handshakes used it. That suite runs the transcript hash and
 * key schedule on SHA-384, which no x86 CPU accelerates, while TLS_AES_128_GCM_SHA256 runs them on
 * SHA-256 (SHA-NI): on the bench's machine the SHA-384 work was ~4 % of the server's CPU per new
 * TLS connection and the SHA-256 work ~1 % (docs/performance.md). AES-128-GCM is TLS 1.3's
 * mandatory suite and what Go's TLS server and BoringSSL prefer on AES hardware. TLS 1.2 clients
 * get Node's order, which puts AES-128-GCM first already.
 */
import { createSecureContext, DEFAULT_CIPHERS } from 'node:tls';

const PREFERRED = 'TLS_AES_128_GCM_SHA256';

/** Node's default cipher list with TLS_AES_128_GCM_SHA256 moved to the front. */
export const DOOR_CIPHERS = [PREFERRED, ...DEFAULT_CIPHERS.split(':').filter((c) => c !== PREFERRED)].join(':');

/** Whether OpenSSL accepts `ciphers` as a cipher list (at least one suite matches). */
export function acceptsCiphers(ciphers: string): boolean {
  try {
    createSecureContext({ ciphers });
    return true;
  } catch {
    return false;
  }
}
