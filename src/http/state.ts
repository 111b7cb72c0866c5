import type { RequestKind } from './error-mapping.js';
import type { CacheStatus } from '../cache/results.js';

/** Per-request facts the handlers record for the access log and metrics. */
export interface RequestState {
  kind: RequestKind;
  registry?: string;
  repo?: string;
  cache?: CacheStatus;
  /** Body bytes written (streams count as they go). */
  bytes: number;
  errorCode?: string;
  staleReason?: string;
}
