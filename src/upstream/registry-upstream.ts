/**
 * The registry client, as the rest of pullthrough imports it. Its parts:
 * - `registry-client.ts`: RegistryUpstream, one upstream registry (request, relay, token relay);
 * - `token-flow.ts`: challenges, credentials per repository, Bearer tokens;
 * - `redirects.ts`: one request plus redirects, headers, metrics, typed transport failures;
 * - `origin-guard.ts`: the address rule for origins the upstream names, routes;
 * - `transport.ts` with `undici-transport.ts` and `object-reader-transport.ts`, paired by route in
 *   `routed-transports.ts`;
 * - `upstream-pool.ts`: one client per configured registry;
 * - `upstream-request.ts`, `response-body.ts`: the request/response types and body helpers.
 */
export { RegistryUpstream, type UpstreamSettings } from './registry-client.js';
export { UpstreamPool } from './upstream-pool.js';
export { USER_AGENT, type Credentials, type UpstreamKind, type UpstreamRequest, type UpstreamResponse } from './upstream-request.js';
export { readLimited, upstreamStatusError } from './response-body.js';
