import type { RequestKind } from './error-mapping.js';
import type { CacheStatus } from '../cache/results.js';
import type { Identity } from '../auth/identity.js';

/** Per-request facts the handlers record for the access log and metrics. */
export interface RequestState {
  kind: RequestKind;
  registry?: string;
  repo?: string;
  cache?: CacheStatus;
  /** Body bytes written (streams count as they go). */
  bytes: number;
  /** Of `bytes`, those sent by sendfile (net/send-file.ts). */
  sendfileBytes?: number;
  errorCode?: string;
  staleReason?: string;
  /** Who the client proved to be (set for /v2 requests; anonymous while authentication is off). */
  identity?: Identity;
  /** The signed-in user, for the request log. */
  user?: string;
  /** The user name a rejected login claimed, for the audit line. */
  claimedUser?: string;
  /** The rule that decided this request (`rules[1] ("docker.io/**")`). */
  rule?: string;
}
