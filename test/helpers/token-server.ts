/**
 * A Docker-Hub-like token server for the Bearer flow: `GET /token?service=&scope=` (optionally
 * with Basic credentials) and `POST /token` (OAuth2 password and refresh_token grants, as
 * containerd and dockerd send them). It signs RS256 JWTs whose `x5c` header carries the signing
 * certificate, which the registry trusts through `auth.token.rootcertbundle`.
 *
 * It runs in the test process (there is no token server binary on the machine) and records every
 * request so a test can assert which credentials and scopes a client used.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { freePort } from './process.js';
import { pemToX5c, type CertFiles } from './pki.js';

/** Actions one token grants on one resource (the JWT `access` claim entry). */
export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

/** Which actions `user` (undefined = anonymous) gets on repository `repo`. */
export type AccessPolicy = (user: string | undefined, repo: string) => string[];

/** One request the token server answered. */
export interface TokenRequestRecord {
  /** Milliseconds since the epoch when it arrived. */
  readonly time: number;
  readonly method: string;
  /** `GET` for the Docker token flow, `password` / `refresh_token` for OAuth2 POSTs. */
  readonly grantType: 'get' | 'password' | 'refresh_token' | 'other';
  /** The user the request authenticated as (or claimed, when `authOk` is false); undefined = anonymous. */
  readonly user: string | undefined;
  /** False when credentials were sent but did not match. */
  readonly authOk: boolean;
  readonly service: string | undefined;
  /** Scopes as sent (`repository:library/alpine:pull`), split on spaces. */
  readonly scopes: string[];
  readonly account: string | undefined;
  readonly clientId: string | undefined;
  /** What the issued token grants (empty on failure). */
  readonly granted: TokenAccess[];
  readonly status: number;
}

/** Token server settings. */
export interface TokenServerOptions {
  /** The signing certificate and key (its cert is the registry's rootcertbundle). */
  signer: CertFiles;
  /** Users and their passwords; any other credentials get 401. */
  users?: Record<string, string>;
  /**
   * Users that get every action they ask for, whatever `access` says; the harness pushes test
   * images as one of these so that tests can restrict `access` freely.
   */
  admins?: Record<string, string>;
  /** Default: anonymous may `pull` every repo; a named user may `pull` and `push` every repo. */
  access?: AccessPolicy;
  /** `service` put in `aud`; default `test-registry`. */
  service?: string;
  /** `iss`; default `test-token-issuer`. */
  issuer?: string;
  /** Token lifetime in seconds (`expires_in` and `exp`); default 300. */
  expiresIn?: number;
  /** Serve HTTPS with this certificate. */
  tls?: CertFiles;
  /** Listen on this port (default: a free one). */
  port?: number;
}

/** A running token server. */
export interface TokenServer {
  /** `http(s)://127.0.0.1:PORT/token`, the registry's `realm`. */
  readonly realm: string;
  readonly port: number;
  readonly service: string;
  readonly issuer: string;
  /** The registry's `rootcertbundle`. */
  readonly rootCertFile: string;
  /** Every request since start or the last `reset()`, in arrival order. */
  requests(): TokenRequestRecord[];
  /** Forgets recorded requests. */
  reset(): void;
  /** Changes the lifetime of tokens issued from now on. */
  setExpiresIn(seconds: number): void;
  /** Replaces the policy for tokens issued from now on. */
  setAccess(access: AccessPolicy): void;
  /**
   * Signs from now on with `signer` (whose cert must then be the registry's rootcertbundle);
   * the upstream helper's `rotateTokenKey()` does both.
   */
  setSigner(signer: CertFiles): Promise<void>;
  /** Signs a token directly (for tests that need a crafted one). */
  issue(user: string | undefined, access: TokenAccess[], expiresIn?: number): string;
  stop(): Promise<void>;
}

const defaultAccess: AccessPolicy = (user) => (user === undefined ? ['pull'] : ['pull', 'push']);

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** Parses `type:name:actions` scopes; repository names never contain `:` but registry hosts might, so the name is the middle. */
export function parseScope(scope: string): TokenAccess | undefined {
  const parts = scope.split(':');
  if (parts.length < 3) return undefined;
  const type = parts[0]!;
  const actions = parts[parts.length - 1]!.split(',').filter(Boolean);
  const name = parts.slice(1, -1).join(':');
  return { type, name, actions };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function basicUser(req: IncomingMessage): { user: string; pass: string } | undefined {
  const h = req.headers.authorization;
  if (!h || !/^basic /i.test(h)) return undefined;
  const raw = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const i = raw.indexOf(':');
  if (i < 0) return { user: raw, pass: '' };
  return { user: raw.slice(0, i), pass: raw.slice(i + 1) };
}

/** Starts a token server on 127.0.0.1. */
export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const service = opts.service ?? 'test-registry';
  const issuer = opts.issuer ?? 'test-token-issuer';
  let expiresIn = opts.expiresIn ?? 300;
  let access = opts.access ?? defaultAccess;
  const users = opts.users ?? {};
  const admins = opts.admins ?? {};
  let key: KeyObject = createPrivateKey(await readFile(opts.signer.keyFile));
  let x5c = [pemToX5c(opts.signer.certPem)];
  const records: TokenRequestRecord[] = [];
  const refreshTokens = new Map<string, string>();

  const issue = (user: string | undefined, grant: TokenAccess[], lifetime = expiresIn): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c };
    // distribution 2.8 reads `aud` as a single string, not a list.
    const claims = { iss: issuer, sub: user ?? '', aud: service, exp: now + lifetime, nbf: now - 10, iat: now, jti: randomBytes(12).toString('hex'), access: grant };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`;
  };

  const checkUser = (user: string, pass: string): boolean => (users[user] !== undefined && users[user] === pass) || (admins[user] !== undefined && admins[user] === pass);

  const grantFor = (user: string | undefined, scopes: string[]): TokenAccess[] => {
    const out: TokenAccess[] = [];
    for (const s of scopes) {
      const want = parseScope(s);
      if (!want) continue;
      if (user !== undefined && admins[user] !== undefined) {
        out.push(want);
        continue;
      }
      if (want.type !== 'repository') continue;
      const allowed = access(user, want.name);
      const actions = want.actions.filter((a) => allowed.includes(a) || allowed.includes('*'));
      // Docker Hub answers with an empty grant rather than an error: the registry then says 401/403.
      if (actions.length) out.push({ type: want.type, name: want.name, actions });
    }
    return out;
  };

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const send = (status: number, body: unknown, rec: Omit<TokenRequestRecord, 'status' | 'time' | 'method'>): void => {
      records.push({ ...rec, status, time: Date.now(), method: req.method ?? '' });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    const now = new Date().toISOString();
    if (req.method === 'GET') {
      const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      const svc = url.searchParams.get('service') ?? undefined;
      const base = { grantType: 'get' as const, scopes, service: svc, account: url.searchParams.get('account') ?? undefined, clientId: url.searchParams.get('client_id') ?? undefined };
      const creds = basicUser(req);
      if (creds && !checkUser(creds.user, creds.pass)) {
        send(401, { details: 'incorrect username or password' }, { ...base, user: creds.user, authOk: false, granted: [] });
        return;
      }
      const user = creds?.user;
      const granted = grantFor(user, scopes);
      const token = issue(user, granted);
      const body: Record<string, unknown> = { token, access_token: token, expires_in: expiresIn, issued_at: now };
      if (user !== undefined && url.searchParams.get('offline_token') === 'true') {
        const rt = randomBytes(16).toString('hex');
        refreshTokens.set(rt, user);
        body.refresh_token = rt;
      }
      send(200, body, { ...base, user, authOk: true, granted });
      return;
    }
    if (req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const grantType = form.get('grant_type');
      const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      const base = { scopes, service: form.get('service') ?? undefined, account: undefined, clientId: form.get('client_id') ?? undefined };
      if (grantType === 'password') {
        const user = form.get('username') ?? '';
        if (!checkUser(user, form.get('password') ?? '')) {
          send(401, { error: 'invalid_grant', details: 'incorrect username or password' }, { ...base, grantType: 'password', user, authOk: false, granted: [] });
          return;
        }
        const granted = grantFor(user, scopes);
        const token = issue(user, granted);
        const body: Record<string, unknown> = { access_token: token, expires_in: expiresIn, issued_at: now, scope: scopes.join(' ') };
        if (form.get('access_type') === 'offline') {
          const rt = randomBytes(16).toString('hex');
          refreshTokens.set(rt, user);
          body.refresh_token = rt;
        }
        send(200, body, { ...base, grantType: 'password', user, authOk: true, granted });
        return;
      }
      if (grantType === 'refresh_token') {
        const user = refreshTokens.get(form.get('refresh_token') ?? '');
        if (user === undefined) {
          send(401, { error: 'invalid_grant' }, { ...base, grantType: 'refresh_token', user: undefined, authOk: false, granted: [] });
          return;
        }
        const granted = grantFor(user, scopes);
        const token = issue(user, granted);
        send(200, { access_token: token, expires_in: expiresIn, issued_at: now, scope: scopes.join(' ') }, { ...base, grantType: 'refresh_token', user, authOk: true, granted });
        return;
      }
      send(400, { error: 'unsupported_grant_type' }, { ...base, grantType: 'other', user: undefined, authOk: false, granted: [] });
      return;
    }
    res.writeHead(405).end();
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handler(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(e));
    });
  };
  let server: Server;
  if (opts.tls) {
    server = createHttpsServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, listener);
  } else {
    server = createHttpServer(listener);
  }
  const port = opts.port ?? (await freePort());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  // Keep-alive sockets would hold stop() open until clients hang up.
  server.keepAliveTimeout = 1000;
  return {
    realm: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/token`,
    port,
    service,
    issuer,
    rootCertFile: opts.signer.certFile,
    requests: () => records.slice(),
    reset: () => {
      records.length = 0;
    },
    setExpiresIn: (s) => {
      expiresIn = s;
    },
    setAccess: (a) => {
      access = a;
    },
    setSigner: async (signer) => {
      key = createPrivateKey(await readFile(signer.keyFile));
      x5c = [pemToX5c(signer.certPem)];
    },
    issue,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
