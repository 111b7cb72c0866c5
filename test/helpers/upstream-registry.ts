/**
 * A real upstream registry for integration tests: CNCF distribution 2.8.2 (`docker-registry`),
 * on 127.0.0.1, in a temp dir, optionally with TLS, htpasswd Basic auth or Docker-Hub-like
 * token auth, or as a pull-through proxy of another registry.
 *
 * Request counting reads the registry's own access log. distribution writes two logs: JSON
 * lines (logrus, stderr) and an Apache "combined" access log (stdout). Only the access log has
 * exactly one line per request: the JSON "response completed" line is missing for requests the
 * auth layer rejects with 401 and for paths outside the /v2 routes. So the JSON log is kept for
 * diagnosis and the combined log is what `requests()` parses.
 *
 * Both logs go straight to files (not through a pipe to this process), so a line the registry
 * has written is visible to a synchronous read at once; the registry writes the access line
 * before net/http flushes the end of the response, so once a client has its answer the line
 * is there.
 */
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { freePort, ownedTempDir, run, startProcess, waitForPort, type Proc } from './process.js';
import { createCA, createSigningCert, issueServerCert, type CertFiles, type TestCA } from './pki.js';
import { startTokenServer, type AccessPolicy, type TokenServer } from './token-server.js';

/** Options for {@link startUpstreamRegistry}. */
export interface UpstreamOptions {
  /** Serve HTTPS with a certificate from a fresh test CA (or from `ca`). */
  tls?: boolean;
  /** Use this CA for the server certificate instead of a fresh one (so several servers share one trust root). */
  ca?: TestCA;
  /** Default `none`. */
  auth?: 'none' | 'htpasswd' | 'token';
  /** Users and passwords for htpasswd or the token server. */
  users?: Record<string, string>;
  /**
   * Token auth only: actions `user` (undefined = anonymous) gets on `repo`. Default: anonymous
   * may pull everything; named users may pull and push everything. Return `[]` to make a repo
   * private for that caller.
   */
  tokenAccess?: AccessPolicy;
  /** Token auth only: token lifetime in seconds (default 300). */
  tokenExpiresIn?: number;
  /** Run as a pull-through cache of this registry (read-only then: pushes fail). */
  proxyRemoteUrl?: string;
  /** Credentials the proxy uses towards `proxyRemoteUrl`. */
  proxyUsername?: string;
  proxyPassword?: string;
  /** PEM CA the proxy must trust to reach an HTTPS `proxyRemoteUrl` (becomes its SSL_CERT_FILE). */
  proxyCaFile?: string;
}

/** Kinds of registry API request, for counting. */
export type RequestKind = 'base' | 'blob' | 'upload' | 'manifest' | 'tags' | 'catalog' | 'token' | 'other';

/** One request the upstream answered (one access-log line, or one token-server request). */
export interface UpstreamRequest {
  readonly method: string;
  /** The request URI as sent: path plus query (e.g. `/v2/library/alpine/manifests/3?ns=docker.io`). */
  readonly path: string;
  /** `path` without the query string. */
  readonly pathname: string;
  readonly status: number;
  /** Response size as the access log gives it (for HEAD: the Content-Length announced). */
  readonly bytes: number;
  /** Milliseconds since the epoch. The registry logs whole seconds; token requests are exact. */
  readonly time: number;
  readonly kind: RequestKind;
  /** Repository name for blob/manifest/tags/upload requests. */
  readonly repo?: string;
  /** Digest or tag for blob/manifest requests. */
  readonly reference?: string;
  readonly userAgent: string;
}

/** Filter for {@link Upstream.count}; every given field must match. */
export interface RequestFilter {
  method?: string;
  kind?: RequestKind;
  /** Substring of the full request URI (path and query). */
  pathIncludes?: string;
  repo?: string;
  status?: number;
}

/** A running upstream registry. */
export interface Upstream {
  /** `http(s)://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT`, for image references. */
  readonly hostPort: string;
  readonly port: number;
  /** PEM of the CA that signed the TLS certificate (TLS only). */
  readonly caFile?: string;
  /** Folder holding only `ca.crt` (TLS only), for skopeo `--src-cert-dir` and friends. */
  readonly caDir?: string;
  /** The CA itself (TLS only), to issue more certificates under the same root. */
  readonly ca?: TestCA;
  /** Credentials with every right (push included) on this registry, or undefined without auth. */
  readonly pushCreds?: { username: string; password: string };
  /** The registry's storage root (filesystem driver). */
  readonly storageDir: string;
  /** Registry JSON log (stderr) and access log (stdout) files. */
  readonly logFile: string;
  readonly accessLogFile: string;
  readonly tokenServer?: TokenServer;
  /** Registry requests (access-log order) since start or the last `resetLog()`, then token-server requests. */
  requests(): UpstreamRequest[];
  count(filter?: RequestFilter): number;
  /** Forgets requests so far (registry and token server). */
  resetLog(): void;
  /** Stops the registry (by PID) and starts it again on the same port with the same storage. */
  restart(): Promise<void>;
  /** Stops only the registry process (same port and storage come back with `up()`), to test upstream-down. */
  down(): Promise<void>;
  /** Starts the registry again after `down()`. */
  up(): Promise<void>;
  /**
   * Token auth only: signs with a new key and restarts the registry trusting only that key, so
   * every token issued before is rejected (401). distribution accepts a token up to 60 s past its
   * `exp` (clock-skew leeway), so short `expires_in` alone cannot make it refuse a cached token
   * quickly; this can.
   */
  rotateTokenKey(): Promise<void>;
  /** Stops everything it started and removes its temp dir. */
  stop(): Promise<void>;
}

const ACCESS_LINE = /^(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"/;
const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };

function parseAccessTime(s: string): number {
  // 23/Nov/2026:18:16:42 +0000
  const m = /^(\d+)\/(\w+)\/(\d+):(\d+):(\d+):(\d+) ([+-])(\d\d)(\d\d)$/.exec(s);
  if (!m) return NaN;
  const utc = Date.UTC(Number(m[3]), MONTHS[m[2]!] ?? 0, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  const off = (Number(m[8]) * 60 + Number(m[9])) * 60_000 * (m[7] === '-' ? -1 : 1);
  return utc - off;
}

/** Classifies a registry API path. */
export function classifyPath(pathname: string): { kind: RequestKind; repo?: string; reference?: string } {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' };
  if (pathname === '/v2/_catalog') return { kind: 'catalog' };
  let m = /^\/v2\/(.+)\/blobs\/uploads(?:\/(.*))?$/.exec(pathname);
  if (m) return { kind: 'upload', repo: m[1]!, reference: m[2] || undefined };
  m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(pathname);
  if (m) return { kind: 'blob', repo: m[1]!, reference: decodeURIComponent(m[2]!) };
  m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(pathname);
  if (m) return { kind: 'manifest', repo: m[1]!, reference: decodeURIComponent(m[2]!) };
  m = /^\/v2\/(.+)\/tags\/list$/.exec(pathname);
  if (m) return { kind: 'tags', repo: m[1]! };
  return { kind: 'other' };
}

/** Parses one line of distribution's combined access log; undefined for any other line. */
export function parseAccessLine(line: string): UpstreamRequest | undefined {
  const m = ACCESS_LINE.exec(line);
  if (!m) return undefined;
  const path = m[5]!;
  const q = path.indexOf('?');
  const pathname = q < 0 ? path : path.slice(0, q);
  return {
    method: m[4]!,
    path,
    pathname,
    status: Number(m[6]),
    bytes: m[7] === '-' ? 0 : Number(m[7]),
    time: parseAccessTime(m[3]!),
    userAgent: m[8]!,
    ...classifyPath(pathname),
  };
}

/** Starts a docker-registry on a free loopback port; see {@link UpstreamOptions}. */
export async function startUpstreamRegistry(opts: UpstreamOptions = {}): Promise<Upstream> {
  const tmp = await ownedTempDir('pullthrough-upstream-');
  const dir = tmp.path;
  const started: Array<() => Promise<void>> = [];
  try {
    const port = await freePort();
    const storageDir = join(dir, 'storage');
    await mkdir(storageDir, { recursive: true });
    const auth = opts.auth ?? 'none';
    const scheme = opts.tls ? 'https' : 'http';

    let ca: TestCA | undefined;
    let tlsFiles: { certFile: string; keyFile: string; certPem: string; keyPem: string } | undefined;
    if (opts.tls) {
      ca = opts.ca ?? (await createCA({ dir: join(dir, 'pki') }));
      tlsFiles = await issueServerCert(ca, { name: `registry-${port}` });
    }

    const pushCreds = auth === 'none' ? undefined : { username: 'harness-pusher', password: randomBytes(12).toString('hex') };
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'info', formatter: 'json', accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: storageDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: {
        addr: `127.0.0.1:${port}`,
        // A fixed secret keeps upload state valid across restart().
        secret: randomBytes(16).toString('hex'),
        ...(tlsFiles ? { tls: { certificate: tlsFiles.certFile, key: tlsFiles.keyFile } } : {}),
      },
      health: { storagedriver: { enabled: false } },
    };

    let tokenServer: TokenServer | undefined;
    let signer: CertFiles | undefined;
    if (auth === 'htpasswd') {
      const lines: string[] = [];
      for (const [u, p] of Object.entries({ ...(opts.users ?? {}), [pushCreds!.username]: pushCreds!.password })) {
        lines.push((await run('htpasswd', ['-Bbn', u, p])).stdout.trim());
      }
      const file = join(dir, 'htpasswd');
      await writeFile(file, lines.join('\n') + '\n');
      config.auth = { htpasswd: { realm: 'pullthrough-test', path: file } };
    } else if (auth === 'token') {
      signer = await createSigningCert(join(dir, 'token'));
      tokenServer = await startTokenServer({
        signer: signer,
        users: opts.users,
        admins: { [pushCreds!.username]: pushCreds!.password },
        access: opts.tokenAccess,
        expiresIn: opts.tokenExpiresIn,
        tls: tlsFiles,
      });
      started.push(() => tokenServer!.stop());
      config.auth = { token: { realm: tokenServer.realm, service: tokenServer.service, issuer: tokenServer.issuer, rootcertbundle: signer.certFile } };
    }
    if (opts.proxyRemoteUrl) {
      config.proxy = {
        remoteurl: opts.proxyRemoteUrl,
        ...(opts.proxyUsername !== undefined ? { username: opts.proxyUsername, password: opts.proxyPassword ?? '' } : {}),
      };
    }

    const configFile = join(dir, 'config.yml');
    await writeFile(configFile, stringify(config));
    const logFile = join(dir, 'registry.log');
    const accessLogFile = join(dir, 'access.log');
    const env: NodeJS.ProcessEnv = { ...process.env };
    // REGISTRY_* variables override the config file; never inherit them.
    for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_')) delete env[k];
    if (opts.proxyCaFile) env.SSL_CERT_FILE = opts.proxyCaFile;

    let proc: Proc | undefined;
    const startRegistry = async (): Promise<void> => {
      const out = openSync(accessLogFile, 'a');
      const err = openSync(logFile, 'a');
      try {
        proc = startProcess('docker-registry', ['serve', configFile], { stdio: ['ignore', out, err], env, cwd: dir });
      } finally {
        closeSync(out);
        closeSync(err);
      }
      try {
        await waitForPort(port, '127.0.0.1', 20_000, proc);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${readTail(logFile)}`);
      }
    };
    const stopRegistry = async (): Promise<void> => {
      await proc?.stop();
      proc = undefined;
    };
    started.push(stopRegistry);
    await startRegistry();

    let offset = 0;
    const registryRequests = (): UpstreamRequest[] => {
      let text: string;
      try {
        const size = statSync(accessLogFile).size;
        if (size <= offset) return [];
        text = readFileSync(accessLogFile).subarray(offset).toString('utf8');
      } catch {
        return [];
      }
      const out: UpstreamRequest[] = [];
      // A line still being written has no newline yet; it will be seen by the next call.
      const complete = text.slice(0, text.lastIndexOf('\n') + 1);
      for (const line of complete.split('\n')) {
        const r = parseAccessLine(line);
        if (r) out.push(r);
      }
      return out;
    };
    const requests = (): UpstreamRequest[] => {
      const toks: UpstreamRequest[] = (tokenServer?.requests() ?? []).map((t) => ({
        method: t.method,
        path: '/token',
        pathname: '/token',
        status: t.status,
        bytes: 0,
        time: t.time,
        kind: 'token' as const,
        userAgent: '',
      }));
      return [...registryRequests(), ...toks];
    };

    return {
      url: `${scheme}://127.0.0.1:${port}`,
      hostPort: `127.0.0.1:${port}`,
      port,
      caFile: ca?.certFile,
      caDir: ca?.certDir,
      ca,
      pushCreds,
      storageDir,
      logFile,
      accessLogFile,
      tokenServer,
      requests,
      count: (f = {}) =>
        requests().filter(
          (r) =>
            (f.method === undefined || r.method === f.method.toUpperCase()) &&
            (f.kind === undefined || r.kind === f.kind) &&
            (f.pathIncludes === undefined || r.path.includes(f.pathIncludes)) &&
            (f.repo === undefined || r.repo === f.repo) &&
            (f.status === undefined || r.status === f.status),
        ).length,
      resetLog: () => {
        try {
          offset = statSync(accessLogFile).size;
        } catch {
          offset = 0;
        }
        tokenServer?.reset();
      },
      restart: async () => {
        await stopRegistry();
        await startRegistry();
      },
      rotateTokenKey: async () => {
        if (!tokenServer || !signer) throw new Error('rotateTokenKey needs auth: token');
        const next = await createSigningCert(join(dir, 'token'), `token-signer-${Date.now()}`);
        // The registry reads rootcertbundle only at start, so it gets the new cert in the same file.
        await writeFile(signer.certFile, next.certPem);
        await tokenServer.setSigner(next);
        await stopRegistry();
        await startRegistry();
      },
      down: stopRegistry,
      up: async () => {
        if (!proc) await startRegistry();
      },
      stop: async () => {
        for (const s of started.reverse()) await s();
        started.length = 0;
        await tmp.cleanup();
      },
    };
  } catch (e) {
    for (const s of started.reverse()) await s().catch(() => undefined);
    await tmp.cleanup();
    throw e;
  }
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-4000);
  } catch {
    return '';
  }
}
