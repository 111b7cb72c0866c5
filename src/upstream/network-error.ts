import { errors as undiciErrors } from 'undici';

/** A short text for a transport failure (undici's timeouts by name, else the system error's code and message). */
export function describeNetworkError(err: unknown): string {
  if (err instanceof undiciErrors.ConnectTimeoutError) return 'connect timeout';
  if (err instanceof undiciErrors.HeadersTimeoutError) return 'timed out waiting for response headers';
  if (err instanceof undiciErrors.BodyTimeoutError) return 'timed out waiting for the response body';
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.code ?? e.cause?.code;
  const msg = e.cause?.message ?? e.message ?? String(err);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
