/**
 * The bench's upstream: Debian's docker-registry serving generated images from a storage dir that
 * is kept between runs (BENCH_CACHE_DIR), because generating and pushing 1 GiB costs more than a
 * minute and the bytes are the same every time (seeded). Its access log is what the "upstream
 * requests" figures count.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { freePort, ownedTempDir, startProcess, waitForPort, type Proc } from '../helpers/process.js';
import { parseAccessLine, type UpstreamRequest } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, RegistryClient, sha256 } from '../helpers/images.js';

/** What the bench pulls. */
export interface BenchContent {
  /** A small image pulled through each freshly started system before anything is timed. */
  readonly warmup: { repo: string; tag: string };
  readonly app: { repo: string; tag: string; manifestDigest: string; blobs: Array<{ digest: string; size: number }> };
  readonly big: { repo: string; digest: string; size: number };
}

export interface BenchUpstream {
  readonly url: string;
  readonly hostPort: string;
  readonly port: number;
  readonly content: BenchContent;
  /** The registry's own file holding the big blob (what the static-file limit serves). */
  readonly bigFile: string;
  readonly pid: number;
  requests(): UpstreamRequest[];
  resetLog(): void;
  stop(): Promise<void>;
}

const MARKER_VERSION = 1;
/** ~120 MB in 4 blobs: a config and three 40 MiB layers of incompressible bytes. */
const APP_LAYERS = [40 << 20, 40 << 20, 40 << 20];

export function cacheDir(): string {
  // Outside the repository and outside /tmp, so it survives between runs (and reboots).
  return process.env.BENCH_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pullthrough-bench');
}

function blobDataPath(storage: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

/** Starts the upstream on a free port; generates and pushes the content unless the cache has it. */
export async function startBenchUpstream(bigSize: number, log: (s: string) => void): Promise<BenchUpstream> {
  const root = cacheDir();
  const storage = join(root, 'registry');
  await mkdir(storage, { recursive: true });
  const work = await ownedTempDir('pullthrough-bench-up-');
  const port = await freePort();
  const config = {
    version: 0.1,
    log: { level: 'warn', formatter: 'json', accesslog: { disabled: false } },
    storage: { filesystem: { rootdirectory: storage }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
    http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex') },
    health: { storagedriver: { enabled: false } },
  };
  const configFile = join(work.path, 'config.yml');
  await writeFile(configFile, stringify(config));
  const accessLog = join(work.path, 'access.log');
  const appLog = join(work.path, 'registry.log');
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_')) delete env[k];
  const out = openSync(accessLog, 'a');
  const err = openSync(appLog, 'a');
  let proc: Proc;
  try {
    proc = startProcess('docker-registry', ['serve', configFile], { stdio: ['ignore', out, err], env, cwd: work.path });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  await waitForPort(port, '127.0.0.1', 20_000, proc);
  const url = `http://127.0.0.1:${port}`;

  const content = await ensureContent(url, storage, root, bigSize, log);

  let offset = statSync(accessLog).size;
  return {
    url,
    hostPort: `127.0.0.1:${port}`,
    port,
    content,
    bigFile: blobDataPath(storage, content.big.digest),
    pid: proc.pid,
    requests() {
      const size = statSync(accessLog).size;
      if (size <= offset) return [];
      const text = readFileSync(accessLog).subarray(offset).toString('utf8');
      const complete = text.slice(0, text.lastIndexOf('\n') + 1);
      return complete.split('\n').map(parseAccessLine).filter((r): r is UpstreamRequest => r !== undefined);
    },
    resetLog() {
      offset = statSync(accessLog).size;
    },
    async stop() {
      await proc.stop();
      await work.cleanup();
    },
  };
}

async function ensureContent(url: string, storage: string, root: string, bigSize: number, log: (s: string) => void): Promise<BenchContent> {
  const markerFile = join(root, 'content.json');
  let marker: { version: number; app?: BenchContent['app']; warmup?: BenchContent['app']; big?: Record<string, BenchContent['big']> } = { version: MARKER_VERSION };
  try {
    const m = JSON.parse(await readFile(markerFile, 'utf8')) as typeof marker;
    if (m.version === MARKER_VERSION) marker = m;
  } catch {
    /* first run */
  }
  const present = (digest: string, size: number): boolean => {
    try {
      return statSync(blobDataPath(storage, digest)).size === size;
    } catch {
      return false;
    }
  };

  let app = marker.app;
  if (!app || !app.blobs.every((b) => present(b.digest, b.size))) {
    log('generating the ~120 MB image (once; kept in the bench cache)');
    const img = await makeImage({ format: 'oci', seed: 'pullthrough-bench-app', layers: APP_LAYERS.length, layerSize: APP_LAYERS });
    const pushed = await pushImage({ url }, 'bench/app', 'v1', img);
    app = { repo: 'bench/app', tag: 'v1', manifestDigest: pushed.manifestDigest, blobs: pushed.blobs };
    marker.app = app;
    await writeFile(markerFile, JSON.stringify(marker, null, 2));
  }

  let warmup = marker.warmup;
  if (!warmup || !warmup.blobs.every((b) => present(b.digest, b.size))) {
    const img = await makeImage({ format: 'oci', seed: 'pullthrough-bench-warmup', layers: 2, layerSize: [4 << 20, 4 << 20] });
    const pushed = await pushImage({ url }, 'bench/warmup', 'v1', img);
    warmup = { repo: 'bench/warmup', tag: 'v1', manifestDigest: pushed.manifestDigest, blobs: pushed.blobs };
    marker.warmup = warmup;
    await writeFile(markerFile, JSON.stringify(marker, null, 2));
  }

  let big = marker.big?.[String(bigSize)];
  if (!big || !present(big.digest, big.size)) {
    log(`generating the ${bigSize >> 20} MiB blob (once; kept in the bench cache)`);
    big = await pushBigBlob(url, root, 'bench/big', bigSize);
    marker.big = { ...(marker.big ?? {}), [String(bigSize)]: big };
    await writeFile(markerFile, JSON.stringify(marker, null, 2));
  }
  return { warmup: { repo: warmup.repo, tag: warmup.tag }, app, big };
}

/**
 * Writes `size` seeded bytes to a file (AES-CTR keystream, so streaming gives the same bytes as
 * one call) and pushes them as one blob with a streamed monolithic upload.
 */
async function pushBigBlob(url: string, root: string, repo: string, size: number): Promise<BenchContent['big']> {
  const file = join(root, `big-${size}.tmp`);
  const key = createHash('sha256').update(`key:pullthrough-bench-big-${size}`).digest();
  const iv = createHash('sha256').update(`iv:pullthrough-bench-big-${size}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const hash = createHash('sha256');
  const fh = await open(file, 'w');
  try {
    const zeros = Buffer.alloc(4 << 20);
    for (let done = 0; done < size; ) {
      const n = Math.min(zeros.length, size - done);
      const chunk = cipher.update(zeros.subarray(0, n));
      hash.update(chunk);
      await fh.write(chunk);
      done += n;
    }
  } finally {
    await fh.close();
  }
  const digest = `sha256:${hash.digest('hex')}`;
  try {
    const c = new RegistryClient({ url });
    const start = await c.request('POST', `/v2/${repo}/blobs/uploads/`, { body: Buffer.alloc(0) });
    if (start.status !== 202) throw new Error(`upload start: ${start.status} ${start.body.toString()}`);
    const u = new URL(start.headers.get('location')!, `${url}/`);
    u.searchParams.set('digest', digest);
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(u, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`big blob PUT: ${res.statusCode}`))));
      });
      req.on('error', reject);
      createReadStream(file, { highWaterMark: 1 << 20 }).pipe(req);
    });
    // A tiny manifest so the big blob is a real image too (not needed for blob GETs).
    const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const cfgDigest = sha256(cfg);
    const s = await c.request('POST', `/v2/${repo}/blobs/uploads/`, { body: Buffer.alloc(0) });
    const cu = new URL(s.headers.get('location')!, `${url}/`);
    cu.searchParams.set('digest', cfgDigest);
    await c.request('PUT', cu.toString(), { body: cfg, headers: { 'content-type': 'application/octet-stream' } });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: cfg.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size }],
      }),
    );
    const m = await c.request('PUT', `/v2/${repo}/manifests/s${size}`, { body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    if (m.status !== 201) throw new Error(`big manifest PUT: ${m.status} ${m.body.toString()}`);
    await c.close();
  } finally {
    await rm(file, { force: true });
  }
  if (!existsSync(blobDataPath(join(root, 'registry'), digest))) throw new Error('big blob not in registry storage after push');
  return { repo, digest, size };
}
