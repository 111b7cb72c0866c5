import { OciError, OCI_ERROR_TABLE, type OciErrorCode } from '../oci/errors.js';
import { BodyTooLargeError, UpstreamAddressRefusedError, UpstreamIntegrityError, UpstreamManifestInvalidError, UpstreamStatusError, UpstreamTagListError, UpstreamTooLargeError, UpstreamUnavailableError, UpstreamOfflineError } from '../upstream/errors.js';
import { BlobNotFoundError, StorageUnavailableError } from '../storage/errors.js';
import { SetupError } from '../setup/scripts.js';
import { AccessDeniedError, AuthenticationRequiredError, RateLimitedError, TokenRequestError } from '../auth/errors.js';
import { describeRule } from '../auth/rules.js';

/** What a request was about; picks the right `*_UNKNOWN` code for an upstream 404. */
export type RequestKind = 'base' | 'manifest' | 'blob' | 'tags' | 'referrers' | 'push' | 'token' | 'ops' | 'other';

/**
 * The one place where every failure becomes what a client sees. Lower layers throw their own
 * typed errors; nothing else in the project picks HTTP statuses for errors.
 */
export function toOciError(err: unknown, kind: RequestKind): OciError {
  if (err instanceof OciError) return err;
  if (err instanceof AuthenticationRequiredError) {
    const detail = err.rule !== undefined ? { rule: describeRule(err.rule), action: err.action } : undefined;
    return new OciError('UNAUTHORIZED', err.message, detail, { 'www-authenticate': err.challenge });
  }
  if (err instanceof AccessDeniedError) {
    return new OciError('DENIED', err.message, { registry: err.registry, repository: err.repo, action: err.action, rule: describeRule(err.rule) });
  }
  if (err instanceof RateLimitedError) return new OciError('TOOMANYREQUESTS', err.message, undefined, { 'retry-after': String(err.retryAfterSeconds) });
  if (err instanceof TokenRequestError) {
    return new OciError(err.reason === 'bad credentials' || err.reason === 'invalid grant' ? 'UNAUTHORIZED' : 'REQUEST_INVALID', err.message);
  }
  if (err instanceof UpstreamStatusError) {
    const upstream = { registry: err.registry, status: err.status };
    const msg = (fallback: string): string => err.upstreamMessage ?? fallback;
    switch (err.status) {
      case 401:
        // Never pass the upstream's WWW-Authenticate on: the client would go to the upstream's
        // token service instead of through pullthrough.
        return new OciError('UNAUTHORIZED', msg(`upstream ${err.registry} requires authentication`), upstream);
      case 403:
        return new OciError('DENIED', msg(`upstream ${err.registry} denied access`), upstream);
      case 404: {
        const known = err.upstreamCode && err.upstreamCode in OCI_ERROR_TABLE && OCI_ERROR_TABLE[err.upstreamCode as OciErrorCode].status === 404;
        const code: OciErrorCode = known ? (err.upstreamCode as OciErrorCode) : kind === 'blob' ? 'BLOB_UNKNOWN' : kind === 'manifest' ? 'MANIFEST_UNKNOWN' : 'NAME_UNKNOWN';
        return new OciError(code, msg(OCI_ERROR_TABLE[code].message), upstream);
      }
      case 429:
        return new OciError('TOOMANYREQUESTS', msg(`upstream ${err.registry} is rate limiting`), upstream, err.retryAfter ? { 'retry-after': err.retryAfter } : {});
      default:
        if (err.status < 500 && err.upstreamCode && err.upstreamCode in OCI_ERROR_TABLE) {
          const code = err.upstreamCode as OciErrorCode;
          if (OCI_ERROR_TABLE[code].status < 500) return new OciError(code, msg(OCI_ERROR_TABLE[code].message), upstream);
        }
        return new OciError('UPSTREAM_ERROR', `upstream ${err.registry} answered ${err.status}${err.upstreamMessage ? `: ${err.upstreamMessage}` : ''}`, upstream);
    }
  }
  if (err instanceof UpstreamUnavailableError) return new OciError('UNAVAILABLE', err.message, { registry: err.registry });
  // Offline mode is the operator's choice, not a fault: 503 (it passes), saying so by name.
  if (err instanceof UpstreamOfflineError) return new OciError('UNAVAILABLE', err.message, { registry: err.registry, offline: true });
  if (err instanceof UpstreamAddressRefusedError) return new OciError('UPSTREAM_ERROR', err.message, { registry: err.registry, reason: err.reason });
  if (err instanceof UpstreamIntegrityError) return new OciError('UPSTREAM_ERROR', err.message, { registry: err.registry });
  if (err instanceof UpstreamTooLargeError) return new OciError('UPSTREAM_ERROR', err.message, { registry: err.registry });
  // Only upstream bodies are read with a bound; callers normally wrap this with the registry's name.
  if (err instanceof BodyTooLargeError) return new OciError('UPSTREAM_ERROR', `upstream ${err.message}`);
  if (err instanceof UpstreamManifestInvalidError) return new OciError('UPSTREAM_ERROR', err.message, { registry: err.registry });
  if (err instanceof UpstreamTagListError) return new OciError('UPSTREAM_ERROR', err.message, { registry: err.registry });
  if (err instanceof StorageUnavailableError) {
    // Names the store, not its address or the driver's message (those go to the log and /readyz).
    return new OciError('UNAVAILABLE', `cache storage unavailable (${err.backend}); try again shortly`, { backend: err.backend }, { 'retry-after': '5' });
  }
  if (err instanceof BlobNotFoundError) return new OciError('BLOB_UNKNOWN');
  if (err instanceof SetupError) return new OciError('UNSUPPORTED', err.message);
  const status = (err as { status?: unknown; expose?: unknown }).status;
  if (typeof status === 'number' && status >= 400 && status < 500 && (err as { expose?: unknown }).expose) {
    return new OciError(status === 413 ? 'SIZE_INVALID' : 'REQUEST_INVALID', (err as Error).message);
  }
  return new OciError('INTERNAL');
}
