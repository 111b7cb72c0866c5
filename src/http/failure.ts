import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { OciError } from '../oci/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { UpstreamFailureLog } from '../observability/upstream-failure-log.js';
import { toOciError } from './error-mapping.js';
import { auditDenied } from './audit.js';
import type { RequestView } from './request-view.js';
import type { DoorKind } from './v2-routes.js';

/** What {@link failureOf} writes to. */
export interface FailureDeps {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly door: DoorKind;
  readonly upstreamFailures?: UpstreamFailureLog;
}

/**
 * The answer to a request that failed with `err`, after the side effects every failure has: the
 * error code in the request's state (for its log line), the audit line of a refusal, the
 * upstream failure note, and the stack of an internal error. Used by the front and by koa alike.
 */
export function failureOf(deps: FailureDeps, view: RequestView, err: unknown): OciError {
  const oci = toOciError(err, view.state.kind);
  view.state.errorCode = oci.code;
  auditDenied(deps.log, deps.metrics, deps.door, view, err);
  deps.upstreamFailures?.note(err);
  if (oci.code === 'INTERNAL') deps.log.error('internal error', { path: view.path.slice(0, 512), error: (err as Error)?.stack ?? String(err) });
  return oci;
}

/** Writes `oci` as the response, or aborts it when the headers are out already. */
export function sendFailure(res: ServerResponse, method: string, oci: OciError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = method === 'HEAD' ? undefined : JSON.stringify(oci.toBody());
  // One writeHead with every header: cheaper than a setHeader per header on every refused request.
  const headers: OutgoingHttpHeaders = { ...oci.headers, 'content-type': 'application/json; charset=utf-8' };
  if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
  res.writeHead(oci.status, headers);
  res.end(body);
}
