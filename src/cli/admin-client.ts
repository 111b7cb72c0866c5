/**
 * The CLI's side of the admin API (docs/admin.md): where the instance is (`--admin URL`,
 * PULLTHROUGH_ADMIN_URL, else listen.admin of the configuration), its credentials
 * (PULLTHROUGH_ADMIN_TOKEN or admin.token; PULLTHROUGH_ADMIN_USER and PULLTHROUGH_ADMIN_PASSWORD for
 * a user of auth.adminGroup), and calls that turn every failure into a CliError a user can act on.
 */
import type { Config } from '../config/index.js';
import { CliError, UsageError } from './parse.js';

/** An answer of the admin API that is no success: what it said, for messages and exit codes. */
export interface AdminFailure {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly detail?: unknown;
}

export class AdminClient {
  constructor(
    /** `http://host:port`, without a trailing slash. */
    readonly base: string,
    private readonly authorization: string | undefined,
    /** `pullthrough images`: the prefix of every message. */
    private readonly who: string,
  ) {}

  /**
   * Calls the admin API and returns its JSON answer.
   * @throws CliError: exit 2 for a request the API calls malformed (400: a bad reference, glob,
   *   duration), exit 1 when the instance cannot be reached, refuses (401/403) or the operation
   *   failed (404, 409, 5xx).
   */
  async call<T>(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.authorization) headers.authorization = this.authorization;
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${Math.round(timeoutMs / 1000)} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new CliError(`${this.who}: cannot reach the admin API at ${this.base}: ${why}. Is pullthrough running there? (set it with --admin URL or PULLTHROUGH_ADMIN_URL)`, 1, { cause: err });
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.ok) {
      if (json === undefined) throw new CliError(`${this.who}: ${this.base} answered ${res.status} without JSON: is that pullthrough's admin API (listen.admin)?`, 1);
      return json as T;
    }
    const e = (json as { error?: { code?: unknown; message?: unknown; detail?: unknown } } | undefined)?.error;
    const f: AdminFailure = {
      status: res.status,
      code: typeof e?.code === 'string' ? e.code : `HTTP_${res.status}`,
      message: typeof e?.message === 'string' ? e.message : `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`,
      detail: e?.detail,
    };
    if (res.status === 401 || res.status === 403) {
      const hint = this.authorization ? 'the credentials given were refused' : 'give PULLTHROUGH_ADMIN_TOKEN (admin.token), or PULLTHROUGH_ADMIN_USER and PULLTHROUGH_ADMIN_PASSWORD for a user of auth.adminGroup';
      throw new CliError(`${this.who}: the admin API at ${this.base} refused (${res.status} ${f.code}): ${f.message}; ${hint}`, 1);
    }
    throw new CliError(`${this.who}: ${f.message} (${f.code})`, res.status === 400 ? 2 : 1);
  }
}

/** A listen address as a URL a client can connect to (0.0.0.0 → 127.0.0.1, :: → ::1). */
function listenUrl(l: { host: string; port: number }): string {
  const host = l.host === '0.0.0.0' || l.host === '' ? '127.0.0.1' : l.host === '::' ? '::1' : l.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${l.port}`;
}

/**
 * The admin client for a command: URL from `--admin`, PULLTHROUGH_ADMIN_URL, else listen.admin of
 * `loadConfig()` (--config / PULLTHROUGH_CONFIG / defaults).
 * @throws UsageError for an --admin that is no http(s) URL; CliError (exit 2) when the
 *   configuration has listen.admin off, or is invalid.
 */
export function adminClient(values: Record<string, unknown>, env: NodeJS.ProcessEnv, loadConfig: () => Config, who: string): AdminClient {
  const given = typeof values.admin === 'string' ? values.admin : env.PULLTHROUGH_ADMIN_URL || undefined;
  let base: string;
  let cfg: Config | undefined;
  if (given !== undefined) {
    let u: URL;
    try {
      u = new URL(given.includes('://') ? given : `http://${given}`);
    } catch {
      throw new UsageError(`${who}: --admin: not a URL: ${JSON.stringify(given)} (e.g. http://127.0.0.1:5001)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${who}: --admin: an http:// or https:// URL, not ${u.protocol}`);
    base = u.origin;
    // The token may still come from the configuration named.
    if (typeof values.config === 'string' || env.PULLTHROUGH_CONFIG) cfg = loadConfig();
  } else {
    cfg = loadConfig();
    if (!cfg.listen.admin) throw new CliError(`${who}: listen.admin is off in the configuration; name the instance with --admin URL or PULLTHROUGH_ADMIN_URL`, 2);
    base = listenUrl(cfg.listen.admin);
  }
  let authorization: string | undefined;
  const token = env.PULLTHROUGH_ADMIN_TOKEN || cfg?.admin.token;
  if (token) authorization = `Bearer ${token}`;
  else if (env.PULLTHROUGH_ADMIN_USER) authorization = `Basic ${Buffer.from(`${env.PULLTHROUGH_ADMIN_USER}:${env.PULLTHROUGH_ADMIN_PASSWORD ?? ''}`).toString('base64')}`;
  return new AdminClient(base, authorization, who);
}
