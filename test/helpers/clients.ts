/**
 * Real container clients as tests drive them: skopeo, podman, containerd's ctr and dockerd with
 * the docker CLI. Each runs with its own temp storage and config, so nothing a test does touches
 * the machine's /var/lib/containers, /etc/containers or /etc/docker, and each cleans up after
 * itself (daemons stopped by PID, temp dirs removed; also at process exit if a test forgets).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { killOnExit, ownedTempDir, run, startProcess, type Proc } from './process.js';
import type { Credentials, DigestSize } from './images.js';

/** What a client command did. */
export interface ClientResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function credsArg(c: string | Credentials): string {
  return typeof c === 'string' ? c : `${c.username}:${c.password}`;
}

async function runClient(cmd: string, args: string[], env: NodeJS.ProcessEnv | undefined, timeoutMs = 180_000): Promise<ClientResult> {
  const r = await run(cmd, args, { env: { ...process.env, ...(env ?? {}) }, allowFail: true, timeoutMs });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** Source-side options shared by the skopeo wrappers. */
export interface SkopeoOptions {
  /** Folder with `ca.crt` (`--src-cert-dir`). */
  certDir?: string;
  /** `user:pass` or credentials (`--src-creds`). */
  creds?: string | Credentials;
  /** `--src-tls-verify=<v>`; false is needed for plain-HTTP registries. Unset: skopeo's default. */
  tlsVerify?: boolean;
  /** `--registries-conf FILE` (skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF). */
  registriesConf?: string;
  /** Extra environment, e.g. HTTPS_PROXY or SSL_CERT_FILE. */
  env?: Record<string, string>;
  /** Copy every platform of an index (`--all`). */
  all?: boolean;
  /** `--override-arch` / `--override-os` / `--override-variant`, to pick a platform. */
  arch?: string;
  os?: string;
  variant?: string;
  /** Any further arguments, placed before the image references. */
  extraArgs?: string[];
  timeoutMs?: number;
}

/** Result of {@link skopeoCopy}. */
export interface SkopeoCopyResult extends ClientResult {
  /** The destination folder (for `dir`/`oci` temp destinations). */
  path: string;
  /** The destination reference skopeo was given (`dir:/tmp/…`). */
  dest: string;
  /** Removes the temp destination. */
  cleanup(): Promise<void>;
}

function dockerRef(ref: string): string {
  return /^[a-z-]+:/.test(ref) && !/^[^/]+:\d+\//.test(ref) && !ref.startsWith('localhost:') ? ref : `docker://${ref}`;
}

// containers/image needs a policy; the machine's /etc/containers/policy.json may not exist or may be strict.
const POLICY = JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] });

async function skopeoCommon(work: string, opts: SkopeoOptions): Promise<{ global: string[]; src: string[]; env: NodeJS.ProcessEnv }> {
  const policy = join(work, 'policy.json');
  await writeFile(policy, POLICY);
  await writeFile(join(work, 'auth.json'), '{"auths":{}}');
  const global = ['--policy', policy];
  if (opts.registriesConf) global.push('--registries-conf', opts.registriesConf);
  if (opts.arch) global.push('--override-arch', opts.arch);
  if (opts.os) global.push('--override-os', opts.os);
  if (opts.variant) global.push('--override-variant', opts.variant);
  const src: string[] = [];
  if (opts.certDir) src.push('--src-cert-dir', opts.certDir);
  if (opts.creds !== undefined) src.push('--src-creds', credsArg(opts.creds));
  if (opts.tlsVerify !== undefined) src.push(`--src-tls-verify=${opts.tlsVerify}`);
  // A stray auth.json in the runtime dir must not supply credentials a test did not give.
  const env = { REGISTRY_AUTH_FILE: join(work, 'auth.json'), ...(opts.env ?? {}) };
  return { global, src, env };
}

/**
 * `skopeo copy SRC DEST`. `src` is `docker://host/repo:tag` (the `docker://` may be left out).
 * `dest` is `'dir'` or `'oci'` for a fresh temp folder, or any skopeo destination.
 */
export async function skopeoCopy(src: string, dest: 'dir' | 'oci' | string = 'dir', opts: SkopeoOptions = {}): Promise<SkopeoCopyResult> {
  const work = await ownedTempDir('pullthrough-skopeo-');
  let path = '';
  let destRef = dest;
  if (dest === 'dir' || dest === 'oci') {
    path = join(work.path, 'image');
    destRef = dest === 'dir' ? `dir:${path}` : `oci:${path}:latest`;
  }
  const { global, src: srcArgs, env } = await skopeoCommon(work.path, opts);
  const args = [...global, 'copy', ...srcArgs, ...(opts.all ? ['--all'] : []), ...(opts.extraArgs ?? []), dockerRef(src), destRef];
  const r = await runClient('skopeo', args, env, opts.timeoutMs);
  return { ...r, path, dest: destRef, cleanup: work.cleanup };
}

/**
 * The HTTP requests a skopeo run made, from its `--debug` stderr (`msg="GET http://…"`), in
 * order. skopeo with `--src-tls-verify=false` first tries `https://` for `/v2/` and falls back to
 * `http://`; that failed TLS attempt is listed too but never reaches a plain-HTTP registry's log.
 */
export function skopeoDebugRequests(stderr: string): Array<{ method: string; url: string }> {
  const out: Array<{ method: string; url: string }> = [];
  for (const m of stderr.matchAll(/msg="(GET|HEAD|POST|PUT|PATCH|DELETE) (https?:\/\/[^"\s]+)"/g)) out.push({ method: m[1]!, url: m[2]! });
  return out;
}

/** Result of {@link skopeoInspectRaw}. */
export interface InspectRawResult extends ClientResult {
  /** sha256 of stdout (the manifest bytes exactly as served) when the command succeeded. */
  digest?: string;
}

/** `skopeo inspect --raw REF`: the manifest bytes as the registry served them. */
export async function skopeoInspectRaw(ref: string, opts: SkopeoOptions = {}): Promise<InspectRawResult> {
  const work = await ownedTempDir('pullthrough-skopeo-');
  try {
    const { global, src, env } = await skopeoCommon(work.path, opts);
    // inspect takes the source flags without the --src- prefix.
    const flags = src.map((a) => a.replace(/^--src-/, '--'));
    const r = await runClient('skopeo', [...global, 'inspect', '--raw', ...flags, ...(opts.extraArgs ?? []), dockerRef(ref)], env, opts.timeoutMs);
    return { ...r, ...(r.code === 0 ? { digest: `sha256:${createHash('sha256').update(r.stdout, 'utf8').digest('hex')}` } : {}) };
  } finally {
    await work.cleanup();
  }
}

/** What a skopeo `dir:` layout holds. */
export interface DirLayout {
  /** sha256 of `manifest.json` exactly as written. */
  manifestDigest: string;
  /** `mediaType` of the manifest (from its JSON). */
  mediaType: string | undefined;
  /** The parsed top manifest. */
  manifest: unknown;
  /** Every blob file, named by its digest; each file's content was checked against its name. */
  blobs: DigestSize[];
  /** With `--all`: digests of the per-platform manifests (`<hex>.manifest.json`). */
  instanceManifests: string[];
}

/** Reads a `dir:` layout written by skopeo and checks every blob against its file name. */
export async function readDirLayout(path: string): Promise<DirLayout> {
  const manifestBytes = await readFile(join(path, 'manifest.json'));
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as { mediaType?: string };
  const blobs: DigestSize[] = [];
  const instanceManifests: string[] = [];
  for (const name of (await readdir(path)).sort()) {
    let m = /^([0-9a-f]{64})\.manifest\.json$/.exec(name);
    if (m) {
      const data = await readFile(join(path, name));
      const d = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      if (d !== `sha256:${m[1]}`) throw new Error(`${name} has digest ${d}`);
      instanceManifests.push(d);
      continue;
    }
    m = /^([0-9a-f]{64})$/.exec(name);
    if (!m) continue;
    const data = await readFile(join(path, name));
    const d = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    if (d !== `sha256:${m[1]}`) throw new Error(`blob file ${name} has digest ${d}`);
    blobs.push({ digest: d, size: (await stat(join(path, name))).size });
  }
  return {
    manifestDigest: `sha256:${createHash('sha256').update(manifestBytes).digest('hex')}`,
    mediaType: manifest.mediaType,
    manifest,
    blobs,
    instanceManifests,
  };
}

/** Options for {@link podmanPull}. */
export interface PodmanOptions {
  /** `--tls-verify=<v>`; false for plain-HTTP registries. */
  tlsVerify?: boolean;
  creds?: string | Credentials;
  /** Folder with `ca.crt` (`--cert-dir`). */
  certDir?: string;
  /** Sets CONTAINERS_REGISTRIES_CONF (podman honours it). */
  registriesConf?: string;
  /** `--platform os/arch[/variant]`. */
  platform?: string;
  env?: Record<string, string>;
  /** Storage to reuse across pulls (from {@link podmanStorage}); default a fresh one removed afterwards. */
  storage?: PodmanStorage;
  timeoutMs?: number;
}

/** A podman storage (vfs) in a temp dir. */
export interface PodmanStorage {
  readonly dir: string;
  /** The global flags that point podman at this storage. */
  readonly flags: string[];
  cleanup(): Promise<void>;
}

/** Creates a podman storage usable by several {@link podmanPull} calls. */
export async function podmanStorage(): Promise<PodmanStorage> {
  const t = await ownedTempDir('pullthrough-podman-');
  const flags = [
    '--storage-driver', 'vfs',
    '--root', join(t.path, 'root'),
    '--runroot', join(t.path, 'run'),
    '--tmpdir', join(t.path, 'tmp'),
    // No journald/systemd here; events would otherwise go to /run/libpod.
    '--events-backend', 'none',
    '--cgroup-manager', 'cgroupfs',
  ];
  await writeFile(join(t.path, 'policy.json'), POLICY);
  // podman 4.3 fails when REGISTRY_AUTH_FILE names a missing file (skopeo does not).
  await writeFile(join(t.path, 'auth.json'), '{"auths":{}}');
  return { dir: t.path, flags, cleanup: t.cleanup };
}

/** Result of {@link podmanPull}. */
export interface PodmanPullResult extends ClientResult {
  /** The image ID podman printed (last stdout line) on success. */
  imageId?: string;
  /** The manifest digest podman recorded for the image (`podman image inspect {{.Digest}}`). */
  digest?: string;
}

/** `podman pull REF` as root on vfs with temp root/runroot. */
export async function podmanPull(ref: string, opts: PodmanOptions = {}): Promise<PodmanPullResult> {
  const storage = opts.storage ?? (await podmanStorage());
  try {
    const args = [...storage.flags, 'pull', '--signature-policy', join(storage.dir, 'policy.json')];
    if (opts.tlsVerify !== undefined) args.push(`--tls-verify=${opts.tlsVerify}`);
    if (opts.creds !== undefined) args.push('--creds', credsArg(opts.creds));
    if (opts.certDir) args.push('--cert-dir', opts.certDir);
    if (opts.platform) args.push('--platform', opts.platform);
    args.push(ref);
    const env: Record<string, string> = { REGISTRY_AUTH_FILE: join(storage.dir, 'auth.json'), ...(opts.env ?? {}) };
    if (opts.registriesConf) env.CONTAINERS_REGISTRIES_CONF = opts.registriesConf;
    const r = await runClient('podman', args, env, opts.timeoutMs);
    const last = r.stdout.trim().split('\n').pop()?.trim();
    if (r.code !== 0 || !last || !/^[0-9a-f]{64}$/.test(last)) return r;
    const inspect = await runClient('podman', [...storage.flags, 'image', 'inspect', '--format', '{{.Digest}}', last], env);
    const digest = inspect.code === 0 ? inspect.stdout.trim() : undefined;
    return { ...r, imageId: last, ...(digest ? { digest } : {}) };
  } finally {
    if (!opts.storage) await storage.cleanup();
  }
}

/** Options for a containerd pull. */
export interface CtrPullOptions {
  /** `--hosts-dir DIR` (see {@link writeHostsToml}). */
  hostsDir?: string;
  /** `--user user:pass`. */
  user?: string | Credentials;
  /** `--platform`. */
  platform?: string;
  /** `--all-platforms`. */
  allPlatforms?: boolean;
  /** `--plain-http`. */
  plainHttp?: boolean;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** An image as `ctr images ls` lists it. */
export interface CtrImage {
  ref: string;
  mediaType: string;
  digest: string;
}

/** A private containerd daemon. */
export interface Containerd {
  /** The gRPC unix socket (`ctr -a`). */
  readonly socket: string;
  readonly dir: string;
  readonly proc: Proc;
  /** `ctr images pull --snapshotter native …` in namespace `pullthrough`. */
  pull(ref: string, opts?: CtrPullOptions): Promise<ClientResult>;
  /** `ctr images ls`, parsed. */
  images(): Promise<CtrImage[]>;
  /** Digests of everything in the content store. */
  contentDigests(): Promise<string[]>;
  /** Removes an image reference (its content is garbage-collected). */
  removeImage(ref: string): Promise<ClientResult>;
  /** Runs any `ctr` subcommand against this daemon. */
  ctr(args: string[], env?: Record<string, string>): Promise<ClientResult>;
  stop(): Promise<void>;
}

// Everything but content, images, leases, snapshots (native) and diff: no CRI, no runtimes, no
// other snapshotters, so it starts in well under a second and needs no kernel features.
const CONTAINERD_DISABLED = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.internal.v1.opt',
  'io.containerd.internal.v1.tracing',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.overlayfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.runtime.v1.linux',
  'io.containerd.runtime.v2.task',
  'io.containerd.monitor.v1.cgroups',
  'io.containerd.grpc.v1.tasks',
  'io.containerd.service.v1.tasks-service',
  'io.containerd.internal.v1.restart',
];

/** Starts containerd with its own root, state and socket in a temp dir. */
export async function startContainerd(): Promise<Containerd> {
  // Unix socket paths are limited to ~108 bytes, so keep the dir short.
  const t = await ownedTempDir('ptc-');
  const socket = join(t.path, 'c.sock');
  const config = [
    'version = 2',
    `root = ${JSON.stringify(join(t.path, 'root'))}`,
    `state = ${JSON.stringify(join(t.path, 'state'))}`,
    `disabled_plugins = ${JSON.stringify(CONTAINERD_DISABLED)}`,
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '  level = "info"',
    '[metrics]',
    '  address = ""',
    '',
  ].join('\n');
  const configFile = join(t.path, 'config.toml');
  await writeFile(configFile, config);
  // TMPDIR: where containerd writes a goroutine dump (containerd.<pid>.stacks.log) when it gets
  // SIGUSR1, which would otherwise stay in /tmp after the test.
  const proc = startProcess('containerd', ['--config', configFile], { cwd: t.path, env: { ...process.env, TMPDIR: t.path } });
  const ctr = (args: string[], env?: Record<string, string>, timeoutMs?: number): Promise<ClientResult> =>
    runClient('ctr', ['-a', socket, '-n', 'pullthrough', ...args], env, timeoutMs);
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.child.exitCode !== null) throw new Error(`containerd exited:\n${proc.output().slice(-3000)}`);
      if ((await ctr(['version'])).code === 0) break;
      if (Date.now() > deadline) throw new Error(`containerd did not answer on ${socket}:\n${proc.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await proc.stop();
    await t.cleanup();
    throw e;
  }
  return {
    socket,
    dir: t.path,
    proc,
    ctr: (args, env) => ctr(args, env),
    pull: (ref, o = {}) => {
      const args = ['images', 'pull', '--snapshotter', 'native'];
      if (o.hostsDir) args.push('--hosts-dir', o.hostsDir);
      if (o.user !== undefined) args.push('--user', credsArg(o.user));
      if (o.platform) args.push('--platform', o.platform);
      if (o.allPlatforms) args.push('--all-platforms');
      if (o.plainHttp) args.push('--plain-http');
      args.push(ref);
      return ctr(args, o.env, o.timeoutMs);
    },
    images: async () => {
      const r = await ctr(['images', 'ls']);
      if (r.code !== 0) throw new Error(`ctr images ls: ${r.stderr}`);
      return r.stdout
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/))
        .filter((c) => c.length >= 3 && c[0])
        .map((c) => ({ ref: c[0]!, mediaType: c[1]!, digest: c[2]! }));
    },
    contentDigests: async () => {
      const r = await ctr(['content', 'ls', '-q']);
      if (r.code !== 0) throw new Error(`ctr content ls: ${r.stderr}`);
      return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    },
    removeImage: (ref) => ctr(['images', 'rm', '--sync', ref]),
    stop: async () => {
      await proc.stop(10_000);
      await t.cleanup();
    },
  };
}

/** Options for {@link writeHostsToml}. */
export interface HostsTomlOptions {
  /** PEM CA file for an HTTPS mirror (`ca = …`). */
  ca?: string;
  /** `skip_verify = true`. */
  skipVerify?: boolean;
  /** Default `["pull", "resolve"]`. */
  capabilities?: string[];
  /**
   * The registry's own `server = …` (the fallback after the mirror). Unset means containerd's
   * default (`https://<registryHost>`, `https://registry-1.docker.io` for docker.io).
   */
  server?: string;
  /** `override_path = true`: the mirror URL already contains the API root path. */
  overridePath?: boolean;
  /** Extra headers containerd sends to the mirror. */
  headers?: Record<string, string>;
}

/**
 * Writes `DIR/<registryHost>/hosts.toml` sending pulls of `registryHost` (e.g. `docker.io`,
 * `ghcr.io`, `127.0.0.1:5000`, or `_default`) to `mirrorUrl`. containerd adds
 * `?ns=<registryHost>` to every request it sends to a mirror (not when the mirror is the
 * `server` itself); there is no switch to turn that off. Returns the file's path.
 */
export async function writeHostsToml(dir: string, registryHost: string, mirrorUrl: string, opts: HostsTomlOptions = {}): Promise<string> {
  const hostDir = join(dir, registryHost);
  await mkdir(hostDir, { recursive: true });
  const lines: string[] = [];
  if (opts.server) lines.push(`server = ${JSON.stringify(opts.server)}`, '');
  lines.push(`[host.${JSON.stringify(mirrorUrl)}]`);
  lines.push(`  capabilities = ${JSON.stringify(opts.capabilities ?? ['pull', 'resolve'])}`);
  if (opts.ca) lines.push(`  ca = ${JSON.stringify(opts.ca)}`);
  if (opts.skipVerify) lines.push('  skip_verify = true');
  if (opts.overridePath) lines.push('  override_path = true');
  if (opts.headers && Object.keys(opts.headers).length) {
    lines.push(`  [host.${JSON.stringify(mirrorUrl)}.header]`);
    for (const [k, v] of Object.entries(opts.headers)) lines.push(`    ${JSON.stringify(k)} = ${JSON.stringify(v)}`);
  }
  const file = join(hostDir, 'hosts.toml');
  await writeFile(file, lines.join('\n') + '\n');
  return file;
}

/** True while `pid` is alive and its command line mentions `dir` (so a reused PID is never killed). */
function isOurs(pid: number, dir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
  } catch {
    return false;
  }
}

/** Options for {@link startDockerd}. */
export interface DockerdOptions {
  /** `registry-mirrors` (dockerd uses them for docker.io images only). */
  registryMirrors?: string[];
  /** `insecure-registries` (host:port or CIDR): plain HTTP or unverified TLS allowed. */
  insecureRegistries?: string[];
  /** HTTPS_PROXY / HTTP_PROXY / NO_PROXY of the daemon (Go ignores proxies for loopback targets). */
  httpsProxy?: string;
  httpProxy?: string;
  noProxy?: string;
  /** PEM CA bundle the daemon trusts instead of the system roots (its SSL_CERT_FILE). */
  caFile?: string;
  /** More daemon.json keys. */
  daemonJson?: Record<string, unknown>;
  env?: Record<string, string>;
  /**
   * A data-root that outlives the daemon (default: one in its temp dir), so that images and the
   * legacy builder's layer cache are there for the next run. One daemon at a time may use it.
   */
  dataRoot?: string;
}

/** A private dockerd. */
export interface Dockerd {
  /** `unix:///…/sock`, for `docker -H`. */
  readonly host: string;
  readonly dir: string;
  readonly proc: Proc;
  /** `docker pull REF`. */
  pull(ref: string, opts?: { platform?: string; timeoutMs?: number }): Promise<ClientResult>;
  /** `docker login` (credentials are stored in this daemon's private DOCKER_CONFIG). */
  login(server: string, creds: Credentials): Promise<ClientResult>;
  /** `RepoDigests` of a local image (`repo@sha256:…`). */
  repoDigests(ref: string): Promise<string[]>;
  /** Runs any docker CLI command against this daemon. */
  docker(args: string[], opts?: { timeoutMs?: number; stdin?: string }): Promise<ClientResult>;
  stop(): Promise<void>;
}

/** Starts dockerd 20.10 with its own data-root, exec-root and socket (no networking, vfs). */
export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  // Short path: containerd's sockets live under exec-root and must fit 108 bytes.
  const t = await ownedTempDir('ptd-');
  const d = t.path;
  const sock = join(d, 'd.sock');
  const host = `unix://${sock}`;
  const daemonJson = {
    // Without it dockerd 20.10 writes a key to /etc/docker/key.json.
    'deprecated-key-path': join(d, 'key.json'),
    ...(opts.registryMirrors ? { 'registry-mirrors': opts.registryMirrors } : {}),
    ...(opts.insecureRegistries ? { 'insecure-registries': opts.insecureRegistries } : {}),
    ...(opts.daemonJson ?? {}),
  };
  await writeFile(join(d, 'daemon.json'), JSON.stringify(daemonJson, null, 2));
  const cliConfig = join(d, 'cli');
  await mkdir(cliConfig, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, ...(opts.env ?? {}) };
  for (const k of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']) delete env[k];
  if (opts.httpsProxy) env.HTTPS_PROXY = opts.httpsProxy;
  if (opts.httpProxy) env.HTTP_PROXY = opts.httpProxy;
  if (opts.noProxy) env.NO_PROXY = opts.noProxy;
  if (opts.caFile) env.SSL_CERT_FILE = opts.caFile;
  // dockerd's own containerd inherits it: a goroutine dump it writes (containerd.<pid>.stacks.log,
  // on SIGUSR1) lands in this temp dir, not in /tmp.
  env.TMPDIR = d;
  const proc = startProcess(
    'dockerd',
    [
      '--data-root', opts.dataRoot ?? join(d, 'data'),
      '--exec-root', join(d, 'x'),
      '--pidfile', join(d, 'pid'),
      '-H', host,
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      '--storage-driver=vfs',
      '--config-file', join(d, 'daemon.json'),
    ],
    { env, cwd: d },
  );
  const docker = async (args: string[], o: { timeoutMs?: number; stdin?: string } = {}): Promise<ClientResult> => {
    // The legacy builder: BuildKit needs the buildx plugin, which Debian does not ship.
    const cliEnv = { ...process.env, DOCKER_CONFIG: cliConfig, DOCKER_HOST: host, DOCKER_BUILDKIT: '0' };
    if (o.stdin === undefined) return runClient('docker', args, cliEnv, o.timeoutMs);
    const r = await run('bash', ['-c', 'printf %s "$DOCKER_STDIN" | docker "$@"', 'docker', ...args], {
      env: { ...cliEnv, DOCKER_STDIN: o.stdin },
      allowFail: true,
      timeoutMs: o.timeoutMs ?? 180_000,
    });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  // dockerd runs its own containerd in a separate process group; track it so that neither a
  // SIGKILLed dockerd nor a crashed test leaves it running.
  let containerdPid: number | undefined;
  let forget: (() => void) | undefined;
  const trackContainerd = (): void => {
    if (containerdPid !== undefined) return;
    try {
      const pid = Number(readFileSync(join(d, 'x', 'containerd', 'containerd.pid'), 'utf8').trim());
      if (pid > 0) {
        containerdPid = pid;
        forget = killOnExit(pid);
      }
    } catch {
      /* not written yet */
    }
  };
  const stop = async (): Promise<void> => {
    trackContainerd();
    // dockerd stops the containerd it started before exiting; give it time to.
    await proc.stop(20_000);
    if (containerdPid !== undefined && isOurs(containerdPid, d)) {
      try {
        process.kill(containerdPid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    forget?.();
    await t.cleanup();
  };
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      trackContainerd();
      if (proc.child.exitCode !== null) throw new Error(`dockerd exited:\n${proc.output().slice(-4000)}`);
      if ((await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 })).code === 0) break;
      if (Date.now() > deadline) throw new Error(`dockerd did not answer on ${host}:\n${proc.output().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    trackContainerd();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    host,
    dir: d,
    proc,
    docker,
    pull: (ref, o = {}) => docker(['pull', ...(o.platform ? ['--platform', o.platform] : []), ref], { timeoutMs: o.timeoutMs }),
    login: (server, creds) => docker(['login', '-u', creds.username, '--password-stdin', server], { stdin: creds.password }),
    repoDigests: async (ref) => {
      const r = await docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref]);
      if (r.code !== 0) throw new Error(`docker image inspect ${ref}: ${r.stderr}`);
      return JSON.parse(r.stdout.trim()) as string[];
    },
    stop,
  };
}
