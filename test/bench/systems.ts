/**
 * The systems the bench compares, each startable with an empty cache in front of the bench
 * upstream: pullthrough (embedded fs + file, or S3 + Redis), nginx as an rpardini-style caching
 * proxy, and distribution (docker-registry) in proxy mode. Every process is ours, started on a
 * free loopback port and stopped by PID.
 */
import { closeSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { freePort, ownedTempDir, startProcess, waitForPort, type Proc } from '../helpers/process.js';
import { LAUNCH_ENV, MAIN, NODE_FLAGS } from '../helpers/pullthrough.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3-server.js';
import { startRedis, type RedisHandle } from '../helpers/redis-server.js';
import type { ServerCert } from './cert.js';
import { startNginxProxy } from './nginx.js';
import type { Target } from './measure.js';

/** The upstream's name as pullthrough knows it (and the SNI its TLS door is asked for). */
export const UPSTREAM_NAME = 'upstream.bench';
/** Aliases never used before the first-certificate measurement, one per try. */
export const FRESH_NAMES = Array.from({ length: 5 }, (_, i) => `fresh${i + 1}.${UPSTREAM_NAME}`);

/** A TLS endpoint of a running system. */
export interface TlsEndpoint {
  readonly target: Target;
  readonly port: number;
  readonly servername: string;
  /** Who terminates TLS, for the table. */
  readonly via: string;
  /** Server processes while this endpoint is measured. */
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * The endpoint of a system's TLS listener on 127.0.0.1:`port`, reached as UPSTREAM_NAME (`path`:
 * where throughput downloads go, when not the registry's own blob URL); `stop` stops a listener
 * started for it alone.
 */
export function tlsEndpoint(port: number, via: string, pid: number, opts: { path?: string; stop?: () => Promise<void> } = {}): TlsEndpoint {
  return {
    // Port 443 in the URL, as clients reach a registry: the TLS door answers a registry's name only
    // on the port it serves it on (src/http/target.ts DoorHosts), not on the bench's ephemeral one.
    target: { url: `https://${UPSTREAM_NAME}${opts.path ?? ''}`, connectTo: `${UPSTREAM_NAME}:443:127.0.0.1:${port}` },
    port,
    servername: UPSTREAM_NAME,
    via,
    pids: () => [pid],
    stop: opts.stop ?? (async () => {}),
  };
}

/** A system started with an empty cache. */
export interface Running {
  /** `127.0.0.1:PORT` of its plain-HTTP registry endpoint. */
  readonly host: string;
  pids(): number[];
  /** Side servers (s3rver, redis), reported apart from the system's own RSS. */
  sidePids(): number[];
  /** Its TLS endpoint, or why there is none. */
  tls(): Promise<TlsEndpoint | { na: string }>;
  /** The DNS door's port, when started with `dns` and the door came up. */
  readonly dnsPort?: number;
  stop(): Promise<void>;
}

/** What a system is started with besides its registry endpoint. */
export interface StartOptions {
  /** pullthrough's DNS door too, answering the registry names with 127.0.0.1, with or without its
   * native UDP fast path (dns.fastPath; default on, so a build without it fails loudly). */
  readonly dns?: boolean;
  readonly dnsFastPath?: 'on' | 'off';
}

export interface System {
  readonly key: string;
  readonly label: string;
  startCold(opts?: StartOptions): Promise<Running>;
  /** Stops what outlives single runs (s3rver, redis). */
  close(): Promise<void>;
}

// ------------------------------------------------------------------ pullthrough

export interface PtProcess {
  readonly proc: Proc;
  readonly ports: Record<string, number>;
  readonly output: () => string;
  stop(): Promise<void>;
}

/** How a build is started: the Node.js flags and environment it ships with. */
export interface Launch {
  readonly flags: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/** This checkout's. */
const SHIPPED: Launch = { flags: NODE_FLAGS, env: LAUNCH_ENV };

/**
 * Starts dist/src/main.js with `config`. Waits for the mirror door, then up to `graceMs` for the
 * other doors in `listen`: a door that does not come up is simply absent from `ports` (that is how
 * the bench learns whether this build has it).
 */
export async function startPt(config: Record<string, unknown>, graceMs = 4000, main = MAIN, launch: Launch = SHIPPED): Promise<PtProcess> {
  const dir = await ownedTempDir('pullthrough-bench-pt-');
  const doc: Record<string, unknown> = { dataDir: join(dir.path, 'data'), ...config };
  // The admin door's default port (5001) would collide between the systems the bench keeps running.
  const full: Record<string, unknown> = { ...doc, listen: { admin: null, ...((doc.listen ?? {}) as Record<string, unknown>) } };
  const configFile = join(dir.path, 'config.yml');
  await writeFile(configFile, stringify(full));
  const proc = startProcess(process.execPath, [...launch.flags, main, 'serve', '--config', configFile], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir.path, ...launch.env },
  });
  const listen = (full.listen ?? {}) as Record<string, unknown>;
  const wanted = Object.entries(listen).filter(([, v]) => v !== null).map(([k]) => k);
  const ports: Record<string, number> = {};
  const scan = (): void => {
    for (const l of proc.output().split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        const j = JSON.parse(l) as { msg?: string; door?: string; port?: number };
        if (j.msg === 'listening' && j.door && typeof j.port === 'number') ports[j.door] = j.port;
      } catch {
        /* not ours */
      }
    }
  };
  const stop = async (): Promise<void> => {
    await proc.stop(10_000);
    await dir.cleanup();
  };
  const start = Date.now();
  let mirrorAt = 0;
  for (;;) {
    scan();
    if (proc.child.exitCode !== null) {
      await dir.cleanup();
      throw new Error(`pullthrough exited ${proc.child.exitCode}: ${proc.output().slice(-3000)}`);
    }
    if (ports.mirror !== undefined && !mirrorAt) mirrorAt = Date.now();
    if (mirrorAt && (wanted.every((w) => ports[w] !== undefined) || Date.now() - mirrorAt > graceMs)) break;
    if (Date.now() - start > 30_000) {
      await stop();
      throw new Error(`pullthrough did not listen: ${proc.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { proc, ports, output: () => proc.output(), stop };
}

/**
 * How another checkout's build ships: its test harness's NODE_FLAGS and LAUNCH_ENV (none for a
 * build from before they existed). A baseline column runs as that build shipped, not with this
 * checkout's settings, so a before/after comparison includes what the launch settings change.
 */
export async function launchOf(checkout: string): Promise<Launch> {
  const helper = join(resolve(checkout), 'dist/test/helpers/pullthrough.js');
  const mod = (await import(pathToFileURL(helper).href).catch(() => ({}))) as { NODE_FLAGS?: string[]; LAUNCH_ENV?: Record<string, string> };
  return { flags: mod.NODE_FLAGS ?? [], env: mod.LAUNCH_ENV ?? {} };
}

/** Registries section every pullthrough of the bench uses. */
export function ptRegistries(upstreamUrl: string): Record<string, unknown> {
  return {
    defaultRegistry: UPSTREAM_NAME,
    registries: { [UPSTREAM_NAME]: { upstream: upstreamUrl, aliases: FRESH_NAMES } },
  };
}

/**
 * Which of pullthrough's optional doors this build has: starts it once with `listen.tls` and
 * `listen.dns` and sees which come up. A build without them either refuses the keys or ignores
 * them; both read as "not available".
 */
export async function probeDoors(upstreamUrl: string): Promise<{ tls: boolean; dns: boolean; detail: string }> {
  try {
    const pt = await startPt(
      {
        ...ptRegistries(upstreamUrl),
        listen: { mirror: '127.0.0.1:0', tls: '127.0.0.1:0', dns: '127.0.0.1:0' },
        dns: { answer: ['127.0.0.1'] },
      },
      5000,
    );
    const r = { tls: pt.ports.tls !== undefined, dns: pt.ports.dns !== undefined, detail: `listening: ${Object.keys(pt.ports).join(', ')}` };
    await pt.stop();
    return r;
  } catch (err) {
    return { tls: false, dns: false, detail: (err as Error).message.split('\n')[0]! };
  }
}

export class PullthroughSystem implements System {
  private s3?: S3rverHandle;
  private redis?: RedisHandle;
  private runs = 0;

  constructor(
    readonly key: string,
    readonly label: string,
    /** Blob storage; metadata is Redis with s3 or with more than one worker, the file store otherwise. */
    private readonly storage: 'fs' | 's3',
    private readonly upstreamUrl: string,
    private readonly tlsDoor: boolean,
    private readonly workers = 1,
    /** dist/src/main.js of the build to run (another checkout's, for a before/after column). */
    private readonly main = MAIN,
    /** The flags and environment that build ships with (see {@link launchOf}). */
    private readonly launch: Launch = SHIPPED,
  ) {}

  async startCold(opts: StartOptions = {}): Promise<Running> {
    const n = ++this.runs;
    const stores: Record<string, unknown> = {};
    if (this.storage === 's3' || this.workers > 1) {
      this.redis ??= await startRedis();
      // A fresh key prefix (and S3 prefix) per run: an empty cache without restarting the servers.
      stores.metadata = { driver: 'redis', url: this.redis.url, keyPrefix: `run${n}:` };
    }
    if (this.storage === 's3') {
      this.s3 ??= await startS3rver('bench');
      stores.storage = { driver: 's3', bucket: 'bench', endpoint: this.s3.endpoint, forcePathStyle: true, accessKeyId: this.s3.accessKeyId, secretAccessKey: this.s3.secretAccessKey, prefix: `run${n}/` };
    }
    if (this.workers > 1) stores.workers = this.workers;
    const pt = await startPt({
      ...ptRegistries(this.upstreamUrl),
      ...stores,
      listen: { mirror: '127.0.0.1:0', ...(this.tlsDoor ? { tls: '127.0.0.1:0' } : {}), ...(opts.dns ? { dns: '127.0.0.1:0' } : {}) },
      ...(opts.dns ? { dns: { answer: ['127.0.0.1'], fastPath: opts.dnsFastPath ?? 'on' } } : {}),
    }, undefined, this.main, this.launch);
    const side = (): number[] => [this.s3?.pid(), this.redis?.pid()].filter((p): p is number => p !== undefined);
    return {
      host: `127.0.0.1:${pt.ports.mirror}`,
      dnsPort: pt.ports.dns,
      pids: () => [pt.proc.pid],
      sidePids: side,
      tls: async () => {
        if (pt.ports.tls === undefined) return { na: 'n/a (door not available)' };
        return tlsEndpoint(pt.ports.tls, 'own (TLS door)', pt.proc.pid);
      },
      stop: () => pt.stop(),
    };
  }

  async close(): Promise<void> {
    await this.s3?.stop();
    await this.redis?.stop();
  }
}

// ------------------------------------------------------------------ nginx (rpardini-style)

export class NginxProxySystem implements System {
  readonly key = 'nginx';
  readonly label = 'nginx (rpardini-style)';

  constructor(
    private readonly upstreamUrl: string,
    private readonly cert: ServerCert,
  ) {}

  async startCold(): Promise<Running> {
    const dir = await ownedTempDir('pullthrough-bench-nginx-');
    const ng = await startNginxProxy(dir.path, this.upstreamUrl, this.cert);
    return {
      host: `127.0.0.1:${ng.httpPort}`,
      pids: () => [ng.proc.pid],
      sidePids: () => [],
      tls: async () => tlsEndpoint(ng.tlsPort, 'own (nginx ssl)', ng.proc.pid),
      stop: async () => {
        await ng.stop();
        await dir.cleanup();
      },
    };
  }

  async close(): Promise<void> {}
}

// ------------------------------------------------------------------ distribution proxy mode

async function startRegistry(dir: string, storage: string, remote: string, cert?: ServerCert): Promise<{ proc: Proc; port: number }> {
  const port = await freePort();
  const config = {
    version: 0.1,
    log: { level: 'warn', formatter: 'json', accesslog: { disabled: false } },
    storage: { filesystem: { rootdirectory: storage }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
    http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex'), ...(cert ? { tls: { certificate: cert.certFile, key: cert.keyFile } } : {}) },
    health: { storagedriver: { enabled: false } },
    proxy: { remoteurl: remote },
  };
  const name = cert ? 'tls' : 'http';
  const file = join(dir, `config-${name}.yml`);
  await writeFile(file, stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_')) delete env[k];
  const out = openSync(join(dir, `access-${name}.log`), 'a');
  const err = openSync(join(dir, `registry-${name}.log`), 'a');
  let proc: Proc;
  try {
    proc = startProcess('docker-registry', ['serve', file], { stdio: ['ignore', out, err], env, cwd: dir });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  await waitForPort(port, '127.0.0.1', 20_000, proc);
  return { proc, port };
}

export class RegistryProxySystem implements System {
  readonly key = 'registry';
  readonly label = 'distribution proxy';

  constructor(
    private readonly upstreamUrl: string,
    private readonly cert: ServerCert,
  ) {}

  async startCold(): Promise<Running> {
    const dir = await ownedTempDir('pullthrough-bench-registry-');
    const storage = join(dir.path, 'storage');
    await mkdir(storage, { recursive: true });
    const http = await startRegistry(dir.path, storage, this.upstreamUrl);
    return {
      host: `127.0.0.1:${http.port}`,
      pids: () => [http.proc.pid],
      sidePids: () => [],
      // One registry process serves either HTTP or HTTPS: a second one on the same (warm)
      // storage serves TLS with distribution's own TLS.
      tls: async () => {
        const t = await startRegistry(dir.path, storage, this.upstreamUrl, this.cert);
        return tlsEndpoint(t.port, 'own (Go crypto/tls)', t.proc.pid, { stop: () => t.proc.stop() });
      },
      stop: async () => {
        await http.proc.stop();
        await dir.cleanup();
      },
    };
  }

  async close(): Promise<void> {}
}
