import { z } from 'zod';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { parseDuration, parseSize } from './units.js';
import { compileGlob } from '../util/glob.js';
import { acceptsCiphers } from '../net/tls-ciphers.js';

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `not a duration (use e.g. 30s, 10m, 1h, 60d): ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return ms;
});

const size = z.union([z.string(), z.number(), z.null()]).transform((v, ctx) => {
  if (v === null) return null;
  const b = parseSize(v);
  if (b === null) {
    ctx.addIssue({ code: 'custom', message: `not a size (use e.g. 512m, 32g): ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return b;
});

/** `host:port`, `[v6]:port` or a bare port; null disables the listener. */
/** True for an address only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

const listenAddress = z
  .union([z.string(), z.number(), z.null()])
  .transform((v, ctx) => {
    if (v === null || v === 'off' || v === '') return null;
    const s = String(v);
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s) ?? /^()()(\d+)$/.exec(s);
    const port = m ? Number(m[3]) : NaN;
    const host = m ? (m[1] ?? m[2] ?? '') : '';
    if (!m || !(port >= 0 && port <= 65535) || (host !== '' && host !== 'localhost' && !isIP(host))) {
      ctx.addIssue({ code: 'custom', message: `not a listen address (use host:port, e.g. 127.0.0.1:5000, or null): ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return { host: host || '0.0.0.0', port };
  });

const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.pathname.replace(/\/+$/, '') === '' && !u.search;
  } catch {
    return false;
  }
}, 'must be an http(s) URL with no path, e.g. https://registry-1.docker.io');

const hostname = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?$/, 'must be a lowercase host name, optionally with :port');

const cidr = z.string().refine((s) => {
  const [addr, bits, ...rest] = s.split('/');
  if (rest.length || !addr) return false;
  const v = isIP(addr);
  if (!v) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return Number.isInteger(n) && n >= 0 && n <= (v === 4 ? 32 : 128);
}, 'must be an IP address or CIDR range, e.g. 10.0.0.0/8');

/** Most worker processes `workers` may ask for: a typo must not fork thousands of processes. */
export const MAX_WORKERS = 256;

/** `auto` (one per core: os.availableParallelism()) or a whole number; YAML numbers and env strings alike. */
const workerCount = z.unknown().transform((v, ctx) => {
  if (v === 'auto') return availableParallelism();
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    ctx.addIssue({ code: 'custom', message: `must be a whole number from 1 to ${MAX_WORKERS}, or auto (one per core): ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

const redisUrl = z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL');

/** `host:port`, `[v6]:port`. */
const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port');

const credentials = {
  username: z.string().min(1).optional(),
  password: z.string().optional(),
};

/** A repository glob (`*` within a segment, `**` across); the message says why one is refused. */
const repoGlob = z.string().superRefine((s, ctx) => {
  try {
    compileGlob(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a repository pattern: ${(err as Error).message}` });
  }
});

/** Upstream credentials for the repositories matching `match` (first match wins). */
const namespaceCredentials = z.strictObject({
  match: repoGlob,
  username: z.string().min(1),
  password: z.string(),
});

/** htpasswd user names: anything but `:` and white space (`group:` and the principal keywords are reserved). */
export const USER_NAME = /^[^:\s]{1,128}$/;
const GROUP_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Who a rule lets do something: `anonymous` (everyone, signed in or not), `authenticated` (any
 * signed-in user), `group:<name>` (members of auth.groups.<name>), or a user name.
 */
const principal = z
  .string()
  .refine((s) => /^group:[A-Za-z0-9._-]{1,64}$/.test(s) || (!s.startsWith('group:') && USER_NAME.test(s)), 'must be anonymous, authenticated, group:<name> or a user name');

/**
 * One access rule. `match` is `<registry>/<repository glob>` (the registry part may be a glob
 * too, e.g. `*`), or `**` for everything; the first rule whose `match` fits a request decides it.
 */
const accessRule = z.strictObject({
  match: z.string().min(1).max(600),
  pull: z.array(principal).default([]),
  push: z.array(principal).default([]),
});

/** Keys of a registry entry that belong to one upstream: with `upstreams`, each entry has its own. */
const UPSTREAM_KEYS = ['username', 'password', 'ca', 'credentials', 'allowPrivateRedirects'] as const;

/**
 * One entry of `registries.<name>.upstreams`: where to fetch from, with its own credentials and
 * CA (docs/upstream-chains.md). `tags` is left undefined here and filled in by load.ts (true for
 * the first entry, false for the others), since a default depends on the entry's position.
 */
const upstreamEntry = z
  .strictObject({
    url: httpUrl,
    /** Whether this entry may resolve tags (and list tags and referrers): a mirror could answer a tag with other content. */
    tags: z.boolean().optional(),
    ca: z.string().min(1).optional(),
    ...credentials,
    credentials: z.array(namespaceCredentials).default([]),
    allowPrivateRedirects: z.boolean().default(false),
  })
  .refine((e) => (e.username === undefined) === (e.password === undefined), {
    message: 'username and password go together',
    path: ['password'],
  });

/** Most entries one chain may have: each is a client with its own connections and health. */
export const MAX_CHAIN = 8;

export const registrySchema = z
  .strictObject({
    /** The upstream registry; the one-element form of `upstreams` (exactly one of the two). */
    upstream: httpUrl.optional(),
    /**
     * Ordered upstreams, each with its own credentials and CA: content by digest from any of them,
     * tags only from those with `tags: true`; failover and health in docs/upstream-chains.md.
     */
    upstreams: z.array(upstreamEntry).min(1).max(MAX_CHAIN).optional(),
    /** Serve only from the cache, never opening a connection upstream (switchable at run time). */
    offline: z.boolean().default(false),
    /**
     * Other host names clients use for this registry. Left out on an entry for a built-in
     * registry, the built-in aliases stay (load.ts merges them); `[]` removes them.
     */
    aliases: z.array(hostname).optional(),
    /** PEM file of extra CAs trusted for this upstream (private registries, tests). */
    ca: z.string().min(1).optional(),
    ...credentials,
    /** Per-namespace upstream credentials; the first whose `match` fits the repository is used. */
    credentials: z.array(namespaceCredentials).default([]),
    /**
     * Lets URLs the upstream names (redirects, token realm, upload Locations) reach loopback,
     * private, link-local and cloud metadata addresses. Off: only when the configured upstream
     * itself is in private space, and never metadata (docs/upstream-policy.md).
     */
    allowPrivateRedirects: z.boolean().default(false),
  })
  .superRefine((r, ctx) => {
    if (r.username !== undefined && r.password === undefined) ctx.addIssue({ code: 'custom', path: ['password'], message: 'username and password go together' });
    if (r.username === undefined && r.password !== undefined) ctx.addIssue({ code: 'custom', path: ['password'], message: 'username and password go together' });
    if (r.upstream !== undefined && r.upstreams !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['upstreams'], message: 'upstream and upstreams exclude each other: give upstreams alone (its first entry is what upstream was)' });
    }
    if (r.upstream === undefined && r.upstreams === undefined) ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'required (a URL), or upstreams (an ordered list of { url, … })' });
    if (r.upstreams !== undefined) {
      // Credentials and a CA belong to one upstream: next to a list they would say nothing about which.
      for (const key of UPSTREAM_KEYS) {
        const v = r[key];
        if (v === undefined || v === false || (Array.isArray(v) && v.length === 0)) continue;
        ctx.addIssue({ code: 'custom', path: [key], message: `with upstreams, set ${key} on the entry it belongs to (e.g. upstreams[0].${key})` });
      }
      if (r.upstreams.every((e, i) => (e.tags ?? i === 0) === false)) {
        ctx.addIssue({ code: 'custom', path: ['upstreams'], message: 'no entry has tags: true, so no tag could be resolved (the first entry is trusted for tags unless it says tags: false)' });
      }
    }
  });

const tagRule = z.strictObject({
  /** A regular expression matched against the whole tag. */
  match: z.string().refine((s) => {
    try {
      new RegExp(s);
      return true;
    } catch {
      return false;
    }
  }, 'must be a valid regular expression'),
  /** How long a tag is served without asking upstream; 0 = HEAD upstream on every pull. */
  revalidate: duration.default(0),
  /** How long past its revalidation a tag may still be served when upstream fails. */
  staleIfError: duration.default(30 * 86_400_000),
});

export const configSchema = z.strictObject({
  dataDir: z.string().min(1).default('./data'),
  /**
   * Processes serving on this host (node:cluster), sharing the listeners; 1 = one process, no
   * cluster. More need the Redis metadata store: the file store belongs to one process.
   */
  workers: workerCount.default(1),
  /**
   * Sent upstream in the Via header; a request arriving with this name in its Via is a loop and is
   * refused. Give chained pullthrough tiers different names.
   */
  instanceName: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (at most 64)').default('pullthrough'),
  listen: z
    .strictObject({
      mirror: listenAddress.prefault('127.0.0.1:5000'),
      tls: listenAddress.default(null),
      proxy: listenAddress.default(null),
      dns: listenAddress.default(null),
      /**
       * The admin API, CLI subcommands and status page. Loopback by default: off loopback it asks
       * for credentials (see docs/admin.md); null switches it off.
       */
      admin: listenAddress.prefault('127.0.0.1:5001'),
    })
    .prefault({}),
  /** Address clients use to reach this instance, for setup scripts (defaults from listen.mirror). */
  publicUrl: httpUrl.optional(),
  dns: z
    .strictObject({
      /** Addresses returned for hijacked registry names (A and AAAA by family). */
      answer: z.array(z.string().refine((s) => isIP(s) !== 0, 'must be an IP address')).default([]),
      /** Resolvers for every other name, and for pullthrough's own upstream lookups; default: the system's. */
      forwarders: z.array(z.string().min(1)).default([]),
      /** Source networks allowed to use the forwarding (not an open resolver). */
      allow: z.array(cidr).default(['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7', 'fe80::/10']),
      ttl: z.number().int().min(0).max(86400).default(60),
      /**
       * UDP answers for served names from a native thread (src/native), built when a C compiler
       * was there: auto = when built; on = required (start fails without it); off = Node's dgram.
       */
      fastPath: z.enum(['auto', 'on', 'off']).default('auto'),
    })
    .prefault({}),
  tls: z
    .strictObject({
      /** The user's own CA (PEM files); default: a CA created under dataDir/ca. */
      caCert: z.string().optional(),
      caKey: z.string().optional(),
      leafValidityDays: z.number().int().min(1).max(397).default(397),
      /**
       * TLS session resumption by ticket on the TLS door. Off by default: the registry clients
       * (dockerd, containerd, podman, skopeo, CRI-O: Go without a ClientSessionCache) never
       * resume, so a ticket costs CPU on every new connection (~7 % of it) for nothing, and the
       * ticket keys are not rotated while the process runs. On: tickets resume on any worker.
       */
      sessionTickets: z.boolean().default(false),
      /**
       * The TLS door's cipher suites in order of preference, as Node's `ciphers` option (OpenSSL's
       * format; TLS 1.3 suites by their TLS_ names). The server's order wins. Default: Node's own
       * list with TLS_AES_128_GCM_SHA256 first (see tls-ciphers.ts).
       */
      ciphers: z
        .string()
        .min(1)
        .refine((s) => acceptsCiphers(s), 'is not a cipher list OpenSSL accepts (e.g. TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256)')
        .optional(),
      /**
       * More names (or IPs) the TLS door holds certificates for and the DNS door answers, beyond the
       * registries and their aliases: the names clients use to reach pullthrough itself. The host
       * of publicUrl is added automatically.
       */
      extraNames: z
        .array(z.string().refine((s) => isIP(s) !== 0 || /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(s), 'must be a lowercase host name or an IP address'))
        .default([]),
    })
    .prefault({}),
  proxy: z
    .strictObject({
      /** Host globs CONNECT may tunnel to without interception (default: none → 403). */
      tunnel: z.array(z.string().min(1)).default([]),
      /** Allow tunnels to loopback, link-local and private addresses (off: SSRF guard). */
      allowPrivate: z.boolean().default(false),
    })
    .prefault({}),
  storage: z
    .discriminatedUnion('driver', [
      z.strictObject({
        driver: z.literal('fs'),
        root: z.string().min(1).optional(),
        /**
         * Cached blobs go to plain-HTTP clients by sendfile (src/native/send-file.c, built when a C
         * compiler was there): the kernel sends the file's pages, pullthrough copies no byte. TLS
         * clients are always streamed. false: stream every body (a filesystem whose sendfile
         * misbehaves; one that refuses it is streamed anyway).
         */
        sendfile: z.boolean().default(true),
      }),
      z.strictObject({
        driver: z.literal('s3'),
        bucket: z.string().min(1),
        endpoint: httpUrl.optional(),
        region: z.string().min(1).default('us-east-1'),
        prefix: z.string().default(''),
        forcePathStyle: z.boolean().default(false),
        accessKeyId: z.string().optional(),
        secretAccessKey: z.string().optional(),
        /** Redirect blob GETs to presigned S3 URLs instead of streaming them through. */
        redirect: z.boolean().default(false),
      }),
    ])
    .prefault({ driver: 'fs' }),
  metadata: z
    .discriminatedUnion('driver', [
      z.strictObject({ driver: z.literal('file'), dir: z.string().min(1).optional() }),
      z
        .strictObject({
          driver: z.literal('redis'),
          /**
           * One Redis: `redis://[user:password@]host:port[/db]`, `rediss://` for TLS. With
           * `sentinels`, only its credentials, db and scheme are used (the host is ignored).
           */
          url: redisUrl.optional(),
          keyPrefix: z.string().default('pullthrough:'),
          /** Redis Sentinel: `host:port` of each sentinel; the master group is `name`. */
          sentinels: z.array(hostPort).min(1).optional(),
          /** Sentinel master group name (required with `sentinels`). */
          name: z.string().min(1).optional(),
          /** Password of the sentinels themselves, when they require one. */
          sentinelPassword: z.string().optional(),
          /** Redis Cluster: redis:// or rediss:// URLs of some nodes (the rest are discovered). */
          cluster: z.array(redisUrl).min(1).optional(),
          /** Longest wait for one reply; past it the call fails with StorageUnavailableError. */
          commandTimeout: duration.prefault('2s'),
        })
        .superRefine((m, ctx) => {
          if (m.cluster && (m.url !== undefined || m.sentinels)) {
            ctx.addIssue({ code: 'custom', path: ['cluster'], message: 'cluster goes alone: no url or sentinels with it' });
          }
          if (m.sentinels && m.name === undefined) ctx.addIssue({ code: 'custom', path: ['name'], message: 'required with sentinels (the master group name)' });
          if (!m.sentinels && m.name !== undefined) ctx.addIssue({ code: 'custom', path: ['name'], message: 'only used with sentinels' });
          if (!m.cluster && !m.sentinels && m.url === undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: 'required (or sentinels, or cluster)' });
        }),
    ])
    .default({ driver: 'file' }),
  cache: z
    .strictObject({
      /** Upper bound for cached blob bytes; null = unbounded. */
      maxSize: size.default(null),
      /** First matching rule wins; tags matching none are revalidated on every pull. */
      tags: z.array(tagRule).default([]),
      /**
       * Lease a replica holds (in the metadata store) while it downloads a blob, so replicas
       * sharing Redis fetch it once. Renewed every third of it; when the downloading replica
       * dies, another takes over after at most this long.
       */
      fillLease: duration.prefault('30s').refine((ms) => ms >= 1000, 'must be at least 1s'),
      /**
       * A blob read on any replica within this long is never evicted; replicas streaming a blob
       * refresh its last access every third of it.
       */
      evictionGrace: duration.prefault('1m').refine((ms) => ms >= 3000, 'must be at least 3s'),
      /**
       * Longest a request for which the cache holds an answer (a tag within its stale window, a
       * tag list, referrers) waits for revalidation upstream; past it the cached answer is served
       * stale while the revalidation finishes in the background (docs/cache-semantics.md).
       */
      revalidateDeadline: duration.prefault('1s').refine((ms) => ms >= 10 && ms <= 600_000, 'must be between 10ms and 10m'),
    })
    .prefault({}),
  upstream: z
    .strictObject({
      connectTimeout: duration.prefault('10s'),
      /** Time to the response headers. */
      headersTimeout: duration.prefault('30s'),
      /** Longest pause between body bytes. */
      bodyTimeout: duration.prefault('60s'),
      /** Upper bound on one blob fill; the fill goes on after its client leaves, up to this. */
      fillTimeout: duration.prefault('1h'),
      /**
       * Time to the upstream's response headers on a relayed write (a push): the upstream answers
       * only after the whole upload, which is as slow as the client sending it. Its own key so
       * tuning fillTimeout does not cut pushes short; 1h, the bound pushes had before.
       */
      relayTimeout: duration.prefault('1h'),
      /**
       * Upper bound on an upstream's tag list, summed over all its Link pages: pullthrough collects
       * the whole list to sort and page it as the spec says; a longer list is an error, not memory.
       */
      tagListMaxSize: size
        .prefault('8m')
        .refine((b): b is number => b !== null && b >= 1024, 'must be a size of at least 1k'),
      /**
       * Health of each entry of a chain of two or more upstreams (docs/upstream-chains.md): after
       * `failures` consecutive failures (connect error, timeout, 5xx) an entry is skipped for
       * `coolDown`, then probed (`GET /v2/`) every `probeInterval` until it answers; a 429 skips
       * it for its Retry-After, at most `maxRetryAfter`.
       */
      health: z
        .strictObject({
          failures: z.number().int().min(1).max(1000).default(3),
          coolDown: duration.prefault('30s').refine((ms) => ms >= 1000 && ms <= 86_400_000, 'must be between 1s and 24h'),
          probeInterval: duration.prefault('10s').refine((ms) => ms >= 1000 && ms <= 86_400_000, 'must be between 1s and 24h'),
          /** Longest wait for a probe's answer; a probe that takes longer failed. */
          probeTimeout: duration.prefault('5s').refine((ms) => ms >= 100 && ms <= 600_000, 'must be between 100ms and 10m'),
          maxRetryAfter: duration.prefault('10m').refine((ms) => ms >= 1000 && ms <= 86_400_000, 'must be between 1s and 24h'),
        })
        .prefault({}),
    })
    .prefault({}),
  defaultRegistry: hostname.default('docker.io'),
  registries: z.record(hostname, z.union([registrySchema, z.null()])).default({}),
  /** Credentials for auth hosts that are not registries themselves (auth.docker.io, a GitLab host). */
  authHosts: z.record(hostname, z.strictObject({ username: z.string().min(1), password: z.string() })).default({}),
  log: z
    .strictObject({
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
      /**
       * Lines are written in batches at least this often (ms), instead of one write each (cheaper
       * per request; docs/performance.md); 0 writes every line as it is logged.
       */
      flushMs: z.number().int().min(0).max(10_000).default(200),
    })
    .prefault({}),
  /** Client authentication: pullthrough runs the Docker token flow for its own clients. */
  auth: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** htpasswd file of users (bcrypt entries only: `htpasswd -B`). */
      htpasswd: z.string().min(1).optional(),
      /** Group name → user names, for rules (`group:<name>`). */
      groups: z
        .record(z.string(), z.array(z.string().regex(USER_NAME, 'not a user name')))
        .superRefine((groups, ctx) => {
          // Checked here rather than as the record's key schema, whose error would not name the key.
          for (const name of Object.keys(groups)) {
            if (!GROUP_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: 'group names are letters, digits, . _ - (at most 64)' });
          }
        })
        .default({}),
      /**
       * Members of this group (auth.groups) may use the admin API when listen.admin is off
       * loopback (docs/admin.md); without it, only admin.token opens it there.
       */
      adminGroup: z.string().regex(GROUP_NAME, 'group names are letters, digits, . _ - (at most 64)').optional(),
      /** HMAC secret for tokens (at least 32 characters); default: a generated file under dataDir. */
      tokenSecret: z.string().min(32, 'must be at least 32 characters').optional(),
      /** Lifetime of access tokens. */
      tokenTtl: duration.prefault('5m'),
      /** Lifetime of refresh tokens (what `docker login` stores). */
      refreshTokenTtl: duration.prefault('30d'),
      /** The token realm URL to announce instead of `<scheme>://<Host>/token` (behind a TLS proxy). */
      realm: z
        .string()
        .refine((s) => {
          try {
            const u = new URL(s);
            return u.protocol === 'http:' || u.protocol === 'https:';
          } catch {
            return false;
          }
        }, 'must be an http(s) URL, e.g. https://mirror.example.com/token')
        .optional(),
    })
    .prefault({}),
  /** The admin API on listen.admin (docs/admin.md). */
  admin: z
    .strictObject({
      /**
       * Bearer token for the admin API (also PULLTHROUGH_ADMIN_TOKEN). Required when listen.admin
       * is off loopback and auth.adminGroup is not set.
       */
      token: z.string().min(16, 'must be at least 16 characters').optional(),
      /** Ask for credentials on loopback too (a host shared with users who must not steer the cache). */
      requireCredentials: z.boolean().default(false),
    })
    .prefault({}),
  /** Ordered access rules; the first whose match fits a request decides who may pull or push. */
  rules: z.array(accessRule).default([]),
  /** Per-client request rate limit (token bucket per client address); null = off. */
  rateLimit: z
    .strictObject({
      requestsPerSecond: z.number().positive().max(1_000_000).nullable().default(null),
      burst: z.number().int().min(1).max(1_000_000).default(100),
    })
    .prefault({}),
}).superRefine((c, ctx) => {
  // Never an admin API open to the network: off loopback it needs a way to check who asks.
  const admin = c.listen.admin;
  if (admin && (!isLoopbackHost(admin.host) || c.admin.requireCredentials) && c.admin.token === undefined) {
    const group = c.auth.enabled && c.auth.adminGroup !== undefined;
    if (!group) {
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'token'],
        message: `required: listen.admin (${admin.host}:${admin.port}) ${c.admin.requireCredentials ? 'asks for credentials (admin.requireCredentials)' : 'is not on loopback'}; set admin.token (or PULLTHROUGH_ADMIN_TOKEN), or auth.enabled with auth.adminGroup`,
      });
    }
  }
  if (c.auth.adminGroup !== undefined && c.auth.enabled && !(c.auth.adminGroup in c.auth.groups)) {
    ctx.addIssue({ code: 'custom', path: ['auth', 'adminGroup'], message: `group ${c.auth.adminGroup} is not defined in auth.groups` });
  }
  // The one place this is checked: serve forks workers only from a config that passed here.
  if (c.workers > 1 && c.metadata.driver !== 'redis') {
    ctx.addIssue({
      code: 'custom',
      path: ['workers'],
      message: `${c.workers} worker processes need metadata.driver: redis (the file metadata store belongs to one process: it keeps its locks and the blob LRU index in memory); use workers: 1 or Redis`,
    });
  }
});

export type ConfigInput = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;
type ParsedRegistry = NonNullable<z.output<typeof registrySchema>>;

/** One upstream of a registry's chain, as load.ts completes it (its CA path absolute, `tags` decided). */
export type UpstreamEntryConfig = Omit<z.output<typeof upstreamEntry>, 'tags'> & { tags: boolean };

/**
 * A configured registry. `upstreams` is always there, with at least one entry; the top-level
 * `upstream`, `username`, `password`, `ca`, `credentials` and `allowPrivateRedirects` are those of
 * its first entry, where writes (pushes, the token relay) and setup scripts go.
 */
export type RegistryConfig = Omit<ParsedRegistry, 'aliases' | 'upstream' | 'upstreams'> & {
  name: string;
  aliases: string[];
  upstream: string;
  upstreams: readonly UpstreamEntryConfig[];
};
export type ListenAddress = { host: string; port: number };

/** The validated, frozen configuration every module receives. */
export type Config = Omit<Parsed, 'registries'> & {
  registries: Readonly<Record<string, RegistryConfig>>;
  /** Absolute paths derived from dataDir. */
  paths: {
    dataDir: string;
    blobs: string;
    /** Temp files of the fs blob store (copies across filesystems); wiped at start by whoever owns it. */
    blobsTmp: string;
    metadata: string;
    /** Downloads in progress; wiped at start by whoever owns it. */
    spool: string;
    ca: string;
    tokenSecret: string;
  };
};
