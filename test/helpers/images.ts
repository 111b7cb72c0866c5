/**
 * Deterministic, offline test images and a minimal registry push client.
 *
 * Every byte of an image follows from its spec: layer contents come from a seeded keystream
 * (AES-256-CTR keyed by a hash of the seed), tars are written here with fixed headers (mtime 0,
 * uid/gid 0, sorted entries) and gzipped by node's zlib (header mtime 0), so the same spec gives
 * the same digests in every run and on every machine with the same zlib.
 *
 * Pushing talks to the registry HTTP API directly (no skopeo/podman), so tests know exactly which
 * bytes went up and the push path cannot hide a client's conversions.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { Agent, fetch, type Dispatcher } from 'undici';

const gzip = promisify(gzipCb);

/** Manifest media types test images use. */
export const MT = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** `oci` / `docker`: single-arch manifest; `oci-index` / `docker-list`: two platforms. */
export type ImageFormat = 'oci' | 'docker' | 'oci-index' | 'docker-list';

/** An OCI platform. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Describes a test image; equal specs give byte-identical images. */
export interface ImageSpec {
  format: ImageFormat;
  /**
   * Distinguishes unrelated images; default `pullthrough-<format>`, so images of different
   * formats never share a layer unless a test gives them the same seed.
   */
  seed?: string;
  /**
   * Version of the image under the same seed (default 1). Versions share the base layer and
   * differ in every other layer and in the config, which is how a moved tag looks upstream.
   */
  version?: number;
  /** Layers per platform (default 2). */
  layers?: number;
  /** Random payload bytes per layer: one size for all or one per layer (default 2048). */
  layerSize?: number | number[];
  /** For index/list formats; default linux/amd64 and linux/arm64 (v8). */
  platforms?: Platform[];
}

/** A content-addressed blob with its bytes. */
export interface Blob {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  readonly data: Buffer;
}

/** A `{digest, size}` pair, what tests compare. */
export interface DigestSize {
  readonly digest: string;
  readonly size: number;
}

/** One single-platform manifest of an image. */
export interface PlatformManifest {
  readonly platform: Platform;
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly data: Buffer;
  readonly config: Blob;
  readonly layers: Blob[];
}

/** A complete test image in memory. */
export interface TestImage {
  readonly spec: ImageSpec;
  /** The top-level manifest (index/list for multi-arch). */
  readonly mediaType: string;
  readonly manifest: Buffer;
  readonly manifestDigest: string;
  /** The single-platform manifests (one for single-arch images). */
  readonly platforms: PlatformManifest[];
  /** Every distinct blob (configs and layers) over all platforms. */
  readonly blobs: Blob[];
}

/** `sha256:<hex>` of bytes. */
export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** `n` pseudo-random bytes determined by `seed`. */
export function seededBytes(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(`key:${seed}`).digest();
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-256-ctr', key, iv).update(Buffer.alloc(n));
}

/** One tar member: a file with `data`, or a directory. */
export interface TarEntry {
  /** Path inside the archive (directories end with `/`); at most 100 bytes. */
  name: string;
  data?: Buffer;
  dir?: boolean;
}

function tarHeader(e: TarEntry): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number): void => {
    h.write(s, off, Math.min(len, Buffer.byteLength(s)), 'utf8');
  };
  const oct = (n: number, off: number, len: number): void => put(n.toString(8).padStart(len - 1, '0') + '\0', off, len);
  put(e.name, 0, 100);
  oct(e.dir ? 0o755 : 0o644, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(e.data?.length ?? 0, 124, 12);
  oct(0, 136, 12);
  h.fill(0x20, 148, 156);
  put(e.dir ? '5' : '0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** A deterministic ustar archive of `entries` (sorted by name, mtime 0, root-owned). */
export function makeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    parts.push(tarHeader(e));
    if (e.data && e.data.length) {
      parts.push(e.data);
      const pad = (512 - (e.data.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const DEFAULT_PLATFORMS: Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
];

function platformKey(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function blob(mediaType: string, data: Buffer): Blob {
  return { digest: sha256(data), size: data.length, mediaType, data };
}

async function makePlatform(spec: Required<Omit<ImageSpec, 'platforms'>>, platform: Platform, docker: boolean): Promise<PlatformManifest> {
  const sizes = Array.isArray(spec.layerSize) ? spec.layerSize : Array.from({ length: spec.layers }, () => spec.layerSize as number);
  const layerType = docker ? MT.DockerLayerGzip : MT.OciLayerGzip;
  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < spec.layers; i++) {
    // The base layer stays the same across versions (when there is more than one layer) so a
    // moved tag shares a blob with its previous image, as real rebuilt images do.
    const shared = i === 0 && spec.layers > 1;
    const id = `${spec.seed}/${platformKey(platform)}/${shared ? 'base' : `v${spec.version}/layer${i}`}`;
    const tar = makeTar([
      { name: 'pullthrough/', dir: true },
      { name: `pullthrough/layer-${i}.bin`, data: seededBytes(id, sizes[i] ?? 2048) },
      { name: `pullthrough/layer-${i}.txt`, data: Buffer.from(`${id}\n`) },
    ]);
    diffIds.push(sha256(tar));
    // Level 1: the payload is random, so harder work buys nothing and 50 MB layers stay quick.
    layers.push(blob(layerType, await gzip(tar, { level: 1 })));
  }
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created: '1970-01-01T00:00:00Z',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      Labels: { 'org.pullthrough.test.seed': spec.seed, 'org.pullthrough.test.version': String(spec.version) },
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: '1970-01-01T00:00:00Z', created_by: `pullthrough test layer ${i}` })),
  };
  const cfg = blob(docker ? MT.DockerConfig : MT.OciConfig, Buffer.from(JSON.stringify(config)));
  const mediaType = docker ? MT.DockerManifest : MT.OciManifest;
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: cfg.mediaType, digest: cfg.digest, size: cfg.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const data = Buffer.from(JSON.stringify(manifest, null, 2));
  return { platform, mediaType, digest: sha256(data), size: data.length, data, config: cfg, layers };
}

const cache = new Map<string, Promise<TestImage>>();

/** Builds (or returns the cached) image for `spec`. */
export function makeImage(spec: ImageSpec): Promise<TestImage> {
  const full = {
    format: spec.format,
    seed: spec.seed ?? `pullthrough-${spec.format}`,
    version: spec.version ?? 1,
    layers: spec.layers ?? (Array.isArray(spec.layerSize) ? spec.layerSize.length : 2),
    layerSize: spec.layerSize ?? 2048,
  };
  const multi = spec.format === 'oci-index' || spec.format === 'docker-list';
  const platforms = multi ? (spec.platforms ?? DEFAULT_PLATFORMS) : [spec.platforms?.[0] ?? DEFAULT_PLATFORMS[0]!];
  const key = JSON.stringify({ ...full, platforms });
  let p = cache.get(key);
  if (!p) {
    p = build(spec, full, platforms, multi);
    cache.set(key, p);
    // A failed build must not poison later calls.
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function build(spec: ImageSpec, full: Required<Omit<ImageSpec, 'platforms'>>, platforms: Platform[], multi: boolean): Promise<TestImage> {
  const docker = full.format === 'docker' || full.format === 'docker-list';
  const pms: PlatformManifest[] = [];
  for (const p of platforms) pms.push(await makePlatform(full, p, docker));
  const seen = new Map<string, Blob>();
  for (const pm of pms) for (const b of [pm.config, ...pm.layers]) seen.set(b.digest, b);
  if (!multi) {
    const only = pms[0]!;
    return { spec, mediaType: only.mediaType, manifest: only.data, manifestDigest: only.digest, platforms: pms, blobs: [...seen.values()] };
  }
  const mediaType = docker ? MT.DockerList : MT.OciIndex;
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: pms.map((pm) => ({ mediaType: pm.mediaType, digest: pm.digest, size: pm.size, platform: pm.platform })),
  };
  const data = Buffer.from(JSON.stringify(index, null, 2));
  return { spec, mediaType, manifest: data, manifestDigest: sha256(data), platforms: pms, blobs: [...seen.values()] };
}

/** Forgets cached images, so the next {@link makeImage} builds from scratch (for memory, or to prove determinism). */
export function clearImageCache(): void {
  cache.clear();
}

/** The next version of the same image (same seed, `version + 1`): what a moved tag points to. */
export function makeNextVersion(image: TestImage | ImageSpec): Promise<TestImage> {
  const spec = 'spec' in image ? image.spec : image;
  return makeImage({ ...spec, version: (spec.version ?? 1) + 1 });
}

/** Where to push: an {@link Upstream} fits, as does any `{ url }`. */
export interface RegistryTarget {
  /** `http(s)://host:port` */
  readonly url: string;
  /** PEM CA to trust for HTTPS. */
  readonly caFile?: string;
  /** Used when `pushImage` is given no credentials. */
  readonly pushCreds?: Credentials;
}

/** Username and password. */
export interface Credentials {
  username: string;
  password: string;
}

/** What {@link pushImage} pushed. */
export interface PushResult {
  readonly manifestDigest: string;
  readonly mediaType: string;
  /** Per-platform manifests (for index/list images; also set, with one entry, for single-arch). */
  readonly manifests: Array<{ platform: Platform; digest: string; mediaType: string; size: number; configDigest: string; layers: DigestSize[] }>;
  /** Every distinct blob, configs and layers. */
  readonly blobs: DigestSize[];
  /** The config of the single-arch image; for an index, that of the first platform (linux/amd64). */
  readonly configDigest: string;
}

/**
 * A registry HTTP client that answers Basic and Bearer challenges the way docker clients do.
 * Exported so tests can make raw API calls with auth handled.
 */
export class RegistryClient {
  /** Base URL, `http(s)://host:port`. */
  readonly url: string;
  private readonly dispatcher?: Dispatcher;
  private readonly creds?: Credentials;
  private challenge?: { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service?: string };
  private readonly tokens = new Map<string, string>();

  constructor(target: { url: string; caPem?: string }, creds?: Credentials) {
    this.url = target.url.replace(/\/+$/, '');
    this.creds = creds;
    if (target.caPem) this.dispatcher = new Agent({ connect: { ca: target.caPem } });
  }

  /** Builds a client for `target`, reading its CA file. */
  static async for(target: RegistryTarget, creds?: Credentials): Promise<RegistryClient> {
    const caPem = target.caFile ? await readFile(target.caFile, 'utf8') : undefined;
    return new RegistryClient({ url: target.url, caPem }, creds ?? target.pushCreds);
  }

  /** Closes the TLS agent, if any. */
  async close(): Promise<void> {
    if (this.dispatcher) await (this.dispatcher as Agent).close();
  }

  private async authHeader(scope: string): Promise<string | undefined> {
    const c = this.challenge;
    if (!c) return undefined;
    const basic = this.creds ? `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}` : undefined;
    if (c.scheme === 'basic') return basic;
    let tok = this.tokens.get(scope);
    if (!tok) {
      const u = new URL(c.realm);
      if (c.service) u.searchParams.set('service', c.service);
      u.searchParams.set('scope', scope);
      const r = await fetch(u, { headers: basic ? { authorization: basic } : {}, dispatcher: this.dispatcher });
      const body = (await r.json().catch(() => ({}))) as { token?: string; access_token?: string };
      if (!r.ok) throw new Error(`token request ${u} failed: ${r.status} ${JSON.stringify(body)}`);
      tok = body.token ?? body.access_token;
      if (!tok) throw new Error(`token response without token from ${u}`);
      this.tokens.set(scope, tok);
    }
    return `Bearer ${tok}`;
  }

  private learn(header: string | null): boolean {
    if (!header) return false;
    if (/^basic/i.test(header)) {
      this.challenge = { scheme: 'basic' };
      return true;
    }
    if (/^bearer/i.test(header)) {
      const params = Object.fromEntries([...header.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
      if (!params.realm) return false;
      this.challenge = { scheme: 'bearer', realm: params.realm, service: params.service };
      this.tokens.clear();
      return true;
    }
    return false;
  }

  /**
   * Sends a request to `path` (or an absolute URL) with auth for `scope`; on a 401 it learns the
   * challenge and retries once. The body must be a Buffer so a retry can resend it.
   * `auth: false` sends the request exactly as given (own Authorization header, no retry).
   */
  async request(method: string, path: string, opts: { scope?: string; headers?: Record<string, string>; body?: Buffer; auth?: boolean } = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const url = /^https?:/.test(path) ? path : `${this.url}${path}`;
    const scope = opts.scope ?? 'registry:catalog:*';
    const handleAuth = opts.auth ?? true;
    for (let attempt = 0; ; attempt++) {
      const auth = handleAuth ? await this.authHeader(scope) : undefined;
      const r = await fetch(url, {
        method,
        headers: { ...(opts.headers ?? {}), ...(auth ? { authorization: auth } : {}) },
        body: opts.body,
        dispatcher: this.dispatcher,
        redirect: 'follow',
      });
      const body = Buffer.from(await r.arrayBuffer());
      if (r.status === 401 && handleAuth && attempt === 0 && this.learn(r.headers.get('www-authenticate'))) continue;
      return { status: r.status, headers: r.headers as unknown as Headers, body };
    }
  }
}

async function pushBlob(c: RegistryClient, repo: string, b: Blob, scope: string): Promise<void> {
  const head = await c.request('HEAD', `/v2/${repo}/blobs/${b.digest}`, { scope });
  if (head.status === 200) return;
  const start = await c.request('POST', `/v2/${repo}/blobs/uploads/`, { scope, body: Buffer.alloc(0) });
  if (start.status !== 202) throw new Error(`upload start for ${b.digest} in ${repo}: ${start.status} ${start.body.toString()}`);
  const loc = start.headers.get('location');
  if (!loc) throw new Error('upload start without Location');
  const u = new URL(loc, `${c.url}/`);
  u.searchParams.set('digest', b.digest);
  const put = await c.request('PUT', u.toString(), { scope, headers: { 'content-type': 'application/octet-stream' }, body: b.data });
  if (put.status !== 201) throw new Error(`upload of ${b.digest} to ${repo}: ${put.status} ${put.body.toString()}`);
}

async function pushManifest(c: RegistryClient, repo: string, ref: string, mediaType: string, data: Buffer, scope: string): Promise<void> {
  const r = await c.request('PUT', `/v2/${repo}/manifests/${ref}`, { scope, headers: { 'content-type': mediaType }, body: data });
  if (r.status !== 201) throw new Error(`manifest PUT ${repo}:${ref}: ${r.status} ${r.body.toString()}`);
  const got = r.headers.get('docker-content-digest');
  if (got && got !== sha256(data)) throw new Error(`registry computed ${got} for a manifest whose digest is ${sha256(data)}`);
}

/**
 * Pushes `image` to `repo:tag` through the registry API (blobs first, then platform manifests by
 * digest, then the top manifest by tag). Blobs already present are skipped, so pushing twice is
 * harmless. `creds` default to `registry.pushCreds`.
 */
export async function pushImage(registry: RegistryTarget, repo: string, tag: string, image: TestImage, creds?: Credentials): Promise<PushResult> {
  const c = await RegistryClient.for(registry, creds);
  const scope = `repository:${repo}:pull,push`;
  try {
    for (const b of image.blobs) await pushBlob(c, repo, b, scope);
    const multi = image.mediaType === MT.OciIndex || image.mediaType === MT.DockerList;
    if (multi) for (const pm of image.platforms) await pushManifest(c, repo, pm.digest, pm.mediaType, pm.data, scope);
    await pushManifest(c, repo, tag, image.mediaType, image.manifest, scope);
  } finally {
    await c.close();
  }
  return {
    manifestDigest: image.manifestDigest,
    mediaType: image.mediaType,
    manifests: image.platforms.map((pm) => ({
      platform: pm.platform,
      digest: pm.digest,
      mediaType: pm.mediaType,
      size: pm.size,
      configDigest: pm.config.digest,
      layers: pm.layers.map((l) => ({ digest: l.digest, size: l.size })),
    })),
    blobs: image.blobs.map((b) => ({ digest: b.digest, size: b.size })),
    configDigest: image.platforms[0]!.config.digest,
  };
}

/** Deletes a manifest by digest (which untags every tag pointing at it). */
export async function deleteManifest(registry: RegistryTarget, repo: string, digest: string, creds?: Credentials): Promise<void> {
  const c = await RegistryClient.for(registry, creds);
  try {
    const r = await c.request('DELETE', `/v2/${repo}/manifests/${digest}`, { scope: `repository:${repo}:pull,push,delete` });
    if (r.status !== 202) throw new Error(`DELETE ${repo}@${digest}: ${r.status} ${r.body.toString()}`);
  } finally {
    await c.close();
  }
}
