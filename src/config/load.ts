import { readFileSync, accessSync, constants } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config, type RegistryConfig, type UpstreamEntryConfig } from './schema.js';
import { BUILTIN_REGISTRIES } from './builtin-registries.js';
import { applyRpardiniEnv } from './rpardini-env.js';
import { ConfigError } from './errors.js';
import { ruleProblems } from '../auth/rules.js';

type Raw = Record<string, unknown>;
type Env = Readonly<Record<string, string | undefined>>;

/** PULLTHROUGH_* variables → config key paths. Values are strings; "off"/"" disables a listener. */
const ENV_KEYS: ReadonlyArray<[string, string[], 'string' | 'list' | 'bool' | 'path']> = [
  ['PULLTHROUGH_DATA_DIR', ['dataDir'], 'path'],
  ['PULLTHROUGH_WORKERS', ['workers'], 'string'],
  ['PULLTHROUGH_LISTEN_MIRROR', ['listen', 'mirror'], 'string'],
  ['PULLTHROUGH_LISTEN_TLS', ['listen', 'tls'], 'string'],
  ['PULLTHROUGH_LISTEN_PROXY', ['listen', 'proxy'], 'string'],
  ['PULLTHROUGH_LISTEN_DNS', ['listen', 'dns'], 'string'],
  ['PULLTHROUGH_PUBLIC_URL', ['publicUrl'], 'string'],
  ['PULLTHROUGH_DEFAULT_REGISTRY', ['defaultRegistry'], 'string'],
  ['PULLTHROUGH_DNS_ANSWER', ['dns', 'answer'], 'list'],
  ['PULLTHROUGH_DNS_FORWARDERS', ['dns', 'forwarders'], 'list'],
  ['PULLTHROUGH_DNS_FAST_PATH', ['dns', 'fastPath'], 'string'],
  ['PULLTHROUGH_CACHE_MAX_SIZE', ['cache', 'maxSize'], 'string'],
  ['PULLTHROUGH_LOG_LEVEL', ['log', 'level'], 'string'],
  ['PULLTHROUGH_AUTH_TOKEN_SECRET', ['auth', 'tokenSecret'], 'string'],
  ['PULLTHROUGH_LISTEN_ADMIN', ['listen', 'admin'], 'string'],
  ['PULLTHROUGH_ADMIN_TOKEN', ['admin', 'token'], 'string'],
  ['PULLTHROUGH_REDIS_URL', ['metadata', 'url'], 'string'],
  ['PULLTHROUGH_S3_BUCKET', ['storage', 'bucket'], 'string'],
  ['PULLTHROUGH_S3_ENDPOINT', ['storage', 'endpoint'], 'string'],
  ['PULLTHROUGH_S3_REGION', ['storage', 'region'], 'string'],
  ['PULLTHROUGH_S3_PREFIX', ['storage', 'prefix'], 'string'],
  ['PULLTHROUGH_S3_FORCE_PATH_STYLE', ['storage', 'forcePathStyle'], 'bool'],
];

function setPath(obj: Raw, path: string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    const next = cur[k];
    cur = (typeof next === 'object' && next !== null ? next : (cur[k] = {})) as Raw;
  }
  cur[path[path.length - 1]!] = value;
}

function applyPullthroughEnv(raw: Raw, env: Env, problems: string[], origin: Map<string, string>): void {
  for (const [name, path, kind] of ENV_KEYS) {
    const v = env[name];
    if (v === undefined) continue;
    let value: unknown = v;
    if (kind === 'list') value = v.split(',').map((s) => s.trim()).filter(Boolean);
    if (kind === 'path') value = resolve(v);
    if (kind === 'bool') {
      if (!/^(true|false|1|0)$/i.test(v)) {
        problems.push(`${name}: must be true or false (got ${JSON.stringify(v)})`);
        continue;
      }
      value = /^(true|1)$/i.test(v);
    }
    // Choosing S3 or Redis by environment alone switches the driver too.
    if (name === 'PULLTHROUGH_REDIS_URL') setPath(raw, ['metadata', 'driver'], 'redis');
    if (name === 'PULLTHROUGH_S3_BUCKET') setPath(raw, ['storage', 'driver'], 's3');
    setPath(raw, path, value);
    origin.set(path.join('.'), name);
  }
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(String(p)) ? (i ? '.' : '') + String(p) : `${i ? '.' : ''}"${String(p)}"`)).join('') || '(top level)';
}

function describeIssue(issue: z.core.$ZodIssue, origin: Map<string, string>): string[] {
  // A union none of whose branches fit (e.g. a registry entry or null) says only "Invalid input";
  // when all branches but one fail at the top on the type, that one's issues are the real ones.
  if (issue.code === 'invalid_union' && !('discriminator' in issue) && issue.errors.length > 1) {
    const real = issue.errors.filter((branch) => !(branch.length === 1 && branch[0]!.code === 'invalid_type' && branch[0]!.path.length === 0));
    if (real.length === 1) return real[0]!.flatMap((i) => describeIssue({ ...i, path: [...issue.path, ...i.path] } as z.core.$ZodIssue, origin));
  }
  const key = formatPath(issue.path);
  const from = origin.get(issue.path.join('.'));
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown key(s): ${issue.keys.join(', ')}`;
  if (issue.code === 'invalid_union' && 'discriminator' in issue) message = `unknown driver (choose one of the documented drivers)`;
  return [`${key}${from ? ` (from ${from})` : ''}: ${message}`];
}

/** Where the configuration comes from. */
export interface LoadOptions {
  /** A YAML file; defaults to $PULLTHROUGH_CONFIG; none means embedded defaults. */
  file?: string;
  env?: Env;
}

/**
 * Loads, validates and freezes the configuration: embedded defaults < YAML file < rpardini's
 * variables < PULLTHROUGH_* variables. Relative paths in the file resolve against its directory.
 * @throws ConfigError naming every bad key, and why.
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.PULLTHROUGH_CONFIG;
  const problems: string[] = [];
  let raw: Raw = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`config file ${file}: ${(err as Error).message}`]);
    }
    try {
      const doc: unknown = parseYaml(text) ?? {};
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError([`config file ${file}: the top level must be a mapping of keys`]);
      raw = doc as Raw;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const where = err instanceof YAMLParseError && err.linePos ? ` (line ${err.linePos[0].line})` : '';
      throw new ConfigError([`config file ${file}${where}: not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
    }
  }
  const baseDir = file ? dirname(resolve(file)) : process.cwd();
  const origin = new Map<string, string>();

  const registryNames = (): Set<string> => {
    const names = new Set(Object.keys(BUILTIN_REGISTRIES));
    for (const [k, v] of Object.entries((raw.registries as Raw | undefined) ?? {})) {
      if (v === null) names.delete(k);
      else names.add(k);
    }
    return names;
  };
  problems.push(...applyRpardiniEnv(raw, env, registryNames, origin));
  applyPullthroughEnv(raw, env, problems, origin);

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError([...problems, ...parsed.error.issues.flatMap((i) => describeIssue(i, origin))]);
  const c = parsed.data;
  const abs = (p: string): string => (isAbsolute(p) ? p : join(baseDir, p));

  // Merge the file's registries over the built-in ones.
  const registries: Record<string, RegistryConfig> = {};
  for (const [name, r] of Object.entries(BUILTIN_REGISTRIES)) {
    registries[name] = { name, aliases: r.aliases ?? [], upstream: r.upstream, credentials: [], allowPrivateRedirects: false, offline: false, upstreams: [{ url: r.upstream, tags: true, credentials: [], allowPrivateRedirects: false }] };
  }
  for (const [name, r] of Object.entries(c.registries)) {
    if (r === null) delete registries[name];
    else {
      // An entry that names no aliases of its own keeps the built-in ones (a `docker.io` entry
      // pointing at a private upstream still answers for `registry-1.docker.io`), except those
      // the file configures as registries of their own.
      const aliases = r.aliases ?? (BUILTIN_REGISTRIES[name]?.aliases ?? []).filter((a) => !Object.hasOwn(c.registries, a));
      const { upstreams: list, upstream: url, ...rest } = r;
      // `upstream: URL` is the one-entry chain; the schema made sure exactly one of the two is given.
      const chain: UpstreamEntryConfig[] = (list ?? [{ url: url!, username: r.username, password: r.password, ca: r.ca, credentials: r.credentials, allowPrivateRedirects: r.allowPrivateRedirects }]).map((e, i) => ({
        ...e,
        tags: e.tags ?? i === 0,
        ca: e.ca === undefined ? undefined : abs(e.ca),
      }));
      // The first entry's settings stand at the top too: writes, the token relay and setup scripts use them.
      const first = chain[0]!;
      registries[name] = {
        ...rest,
        name,
        aliases,
        upstream: first.url,
        username: first.username,
        password: first.password,
        ca: first.ca,
        credentials: first.credentials,
        allowPrivateRedirects: first.allowPrivateRedirects,
        upstreams: chain,
      };
    }
  }

  const seen = new Map<string, string>();
  for (const r of Object.values(registries)) {
    for (const host of [r.name, ...r.aliases]) {
      const other = seen.get(host);
      if (other && other !== r.name) problems.push(`registries."${r.name}".aliases: ${host} is already a name or alias of registries."${other}"`);
      seen.set(host, r.name);
    }
    const listed = Object.hasOwn(c.registries, r.name) && c.registries[r.name]?.upstreams !== undefined;
    for (const [i, e] of r.upstreams.entries()) {
      if (e.ca === undefined) continue;
      try {
        accessSync(e.ca, constants.R_OK);
      } catch {
        problems.push(`registries."${r.name}".${listed ? `upstreams[${i}].ca` : 'ca'}: cannot read ${e.ca}`);
      }
    }
  }
  if (!registries[c.defaultRegistry]) problems.push(`defaultRegistry: ${c.defaultRegistry} is not a configured registry`);
  if (c.listen.dns && c.dns.answer.length === 0) problems.push('dns.answer: required when listen.dns is set (the address clients should reach pullthrough at)');
  if ((c.tls.caCert === undefined) !== (c.tls.caKey === undefined)) problems.push('tls.caKey: tls.caCert and tls.caKey go together');
  if (c.storage.driver === 's3' && (c.storage.accessKeyId === undefined) !== (c.storage.secretAccessKey === undefined)) {
    problems.push('storage.secretAccessKey: accessKeyId and secretAccessKey go together');
  }
  for (const [i, rule] of c.cache.tags.entries()) {
    if (rule.match.length > 1000) problems.push(`cache.tags[${i}].match: longer than 1000 characters`);
  }
  const htpasswd = c.auth.htpasswd === undefined ? undefined : abs(c.auth.htpasswd);
  if (c.auth.enabled && htpasswd === undefined) problems.push('auth.htpasswd: required when auth.enabled is true (an htpasswd file of bcrypt entries: htpasswd -B)');
  if (htpasswd !== undefined) {
    try {
      accessSync(htpasswd, constants.R_OK);
    } catch {
      problems.push(`auth.htpasswd: cannot read ${htpasswd}`);
    }
  }
  if (c.auth.tokenTtl < 10_000 || c.auth.tokenTtl > 86_400_000) problems.push('auth.tokenTtl: must be between 10s and 24h');
  if (c.auth.refreshTokenTtl < c.auth.tokenTtl) problems.push('auth.refreshTokenTtl: must not be shorter than auth.tokenTtl');
  problems.push(...ruleProblems(c.rules, c.auth, new Set(Object.keys(registries))));
  if (problems.length) throw new ConfigError(problems);

  const dataDir = abs(c.dataDir);
  const blobsRoot = c.storage.driver === 'fs' ? abs(c.storage.root ?? join(dataDir, 'blobs')) : join(dataDir, 'blobs');
  const config: Config = {
    ...c,
    dataDir,
    registries,
    storage: c.storage.driver === 'fs' ? { ...c.storage, root: abs(c.storage.root ?? join(dataDir, 'blobs')) } : c.storage,
    metadata: c.metadata.driver === 'file' ? { ...c.metadata, dir: abs(c.metadata.dir ?? join(dataDir, 'metadata')) } : c.metadata,
    tls: { ...c.tls, caCert: c.tls.caCert && abs(c.tls.caCert), caKey: c.tls.caKey && abs(c.tls.caKey) },
    auth: { ...c.auth, htpasswd },
    paths: {
      dataDir,
      blobs: blobsRoot,
      blobsTmp: join(blobsRoot, '_tmp'),
      metadata: join(dataDir, 'metadata'),
      spool: join(dataDir, 'spool'),
      ca: join(dataDir, 'ca'),
      tokenSecret: join(dataDir, 'auth', 'token-secret'),
    },
  };
  return deepFreeze(config);
}

/** Freezes a config and everything in it (a config that crossed a process boundary, say). */
export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
