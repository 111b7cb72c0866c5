/**
 * A scripted, in-process {@link RemoteRegistry} for fast tests of what sits on top of the remote
 * (the cache policies): repositories with blobs, manifests, tags and referrers, faults scripted
 * per method, and a count of every call. It passes the same contract suite as RegistryRemote in
 * front of a real docker-registry (test/upstream/remote.suite.ts), so what a policy test learns
 * against it holds for the real client; end-to-end tests stay on real parts.
 *
 * Manifest negotiation follows distribution 2.8, which the suite checks against the real one: an
 * OCI manifest or index whose type the Accept list lacks is MANIFEST_UNKNOWN (404); a Docker
 * manifest list fetched by tag by a client that takes no list answers with its linux/amd64 entry.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Credentials } from '../../src/upstream/registry-upstream.js';
import { UpstreamIntegrityError, UpstreamStatusError, UpstreamTooLargeError, UpstreamUnavailableError } from '../../src/upstream/errors.js';
import {
  MAX_TAGS,
  type BlobStat,
  type CallOptions,
  type ListReferrersOptions,
  type ListTagsOptions,
  type ManifestStat,
  type OpenBlobOptions,
  type ReferrersAnswer,
  type RemoteBlob,
  type RemoteManifest,
  type RemoteRegistry,
  type RemoteRepository,
} from '../../src/upstream/remote.js';
import type { TestImage } from './images.js';

/** The methods of a RemoteRepository, as faults and counts name them. */
export type RemoteMethod = 'statBlob' | 'openBlob' | 'headManifest' | 'getManifest' | 'listTags' | 'listReferrers';

/** What a scripted call does instead of answering. */
export type Fault =
  /** Rejects with UpstreamUnavailableError (refused, DNS, timeout…). */
  | { kind: 'unavailable'; message?: string }
  /** Rejects with UpstreamStatusError: a 429, a 503, a 401… with the upstream's own code and message. */
  | { kind: 'status'; status: number; code?: string; message?: string; retryAfter?: string }
  /** Never answers; rejects with the call's `signal.reason` once it aborts. */
  | { kind: 'hang' }
  /** openBlob only: answers, sends `after` bytes, then the body fails with UpstreamUnavailableError. */
  | { kind: 'midstream'; after: number }
  /** openBlob: the bytes differ from the digest (same length); getManifest: UpstreamIntegrityError, as the real client's check throws. */
  | { kind: 'corrupt' };

/** When a fault applies: every field given must match; `times` counts down (default: until cleared). */
export interface FaultMatch {
  repo?: string;
  /** Digest or tag the call is about. */
  ref?: string;
  times?: number;
}

/** One call the fake answered (or failed). */
export interface FakeCall {
  readonly method: RemoteMethod;
  readonly repo: string;
  readonly ref: string | undefined;
  readonly account: string;
}

/** Who may read a repository: `allow`, or the status the upstream answers (401, 403, 404). */
export type FakeAccess = (repo: string, credentials: Credentials | null | undefined) => 'allow' | 401 | 403 | 404;

interface StoredManifest {
  readonly body: Buffer;
  readonly mediaType: string;
}

interface FakeRepo {
  readonly blobs: Map<string, Buffer>;
  readonly manifests: Map<string, StoredManifest>;
  readonly tags: Map<string, string>;
  /** subject digest → referrer descriptors. */
  readonly referrers: Map<string, Array<Record<string, unknown>>>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const KNOWN_TYPES = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json'];
const DIGEST = /^sha256:[a-f0-9]{64}$/;

const sha256 = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** See the file comment. */
export class FakeRemote implements RemoteRegistry {
  private readonly repos = new Map<string, FakeRepo>();
  private readonly faults: Array<{ method: RemoteMethod; fault: Fault; match: FaultMatch }> = [];
  /** Every call, in order. */
  readonly calls: FakeCall[] = [];
  /** Whether the referrers API exists (a registry without it answers 404 there). */
  referrersApi = true;
  /** Who may read what; default everyone everything. */
  access: FakeAccess = () => 'allow';

  constructor(readonly name = 'fake.test') {}

  repository(name: string, credentials?: Credentials | null): RemoteRepository {
    return new FakeRemoteRepository(this, name, credentials);
  }

  /** @internal the repository's contents, created empty on first use. */
  repo(name: string): FakeRepo {
    let r = this.repos.get(name);
    if (!r) {
      r = { blobs: new Map(), manifests: new Map(), tags: new Map(), referrers: new Map() };
      this.repos.set(name, r);
    }
    return r;
  }

  /** Adds a blob to `repo`; returns its digest. */
  addBlob(repo: string, data: Buffer): string {
    const d = sha256(data);
    this.repo(repo).blobs.set(d, data);
    return d;
  }

  /** Adds a manifest to `repo` under its digest and the given tags; returns its digest. */
  addManifest(repo: string, body: Buffer, mediaType: string, tags: string[] = []): string {
    const d = sha256(body);
    const r = this.repo(repo);
    r.manifests.set(d, { body, mediaType });
    for (const t of tags) r.tags.set(t, d);
    return d;
  }

  /** Adds a whole test image (blobs, platform manifests, top manifest tagged `tag`), as pushImage does upstream. */
  addImage(repo: string, tag: string, image: TestImage): void {
    for (const b of image.blobs) this.addBlob(repo, b.data);
    for (const pm of image.platforms) this.addManifest(repo, pm.data, pm.mediaType);
    this.addManifest(repo, image.manifest, image.mediaType, [tag]);
  }

  /** Points `tag` at `digest` (which must be in `repo`), or removes it with undefined. */
  tag(repo: string, tag: string, digest: string | undefined): void {
    if (digest === undefined) this.repo(repo).tags.delete(tag);
    else this.repo(repo).tags.set(tag, digest);
  }

  /** Adds a referrer descriptor (`artifactType`, `digest`, …) for `subject` in `repo`. */
  addReferrer(repo: string, subject: string, descriptor: Record<string, unknown>): void {
    const r = this.repo(repo);
    r.referrers.set(subject, [...(r.referrers.get(subject) ?? []), descriptor]);
  }

  /** Makes calls of `method` (matching `match`) fail with `fault`, ahead of faults scripted earlier. */
  script(method: RemoteMethod, fault: Fault, match: FaultMatch = {}): void {
    this.faults.unshift({ method, fault, match: { ...match } });
  }

  /** Forgets every scripted fault. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Calls of `method` so far (optionally only those about `repo` / `ref`). */
  count(method?: RemoteMethod, filter: { repo?: string; ref?: string } = {}): number {
    return this.calls.filter((c) => (method === undefined || c.method === method) && (filter.repo === undefined || c.repo === filter.repo) && (filter.ref === undefined || c.ref === filter.ref)).length;
  }

  /** Forgets the calls counted so far. */
  resetCalls(): void {
    this.calls.length = 0;
  }

  /** @internal records a call and returns the fault that applies to it, if any. */
  enter(method: RemoteMethod, repo: string, ref: string | undefined, account: string): Fault | undefined {
    this.calls.push({ method, repo, ref, account });
    const i = this.faults.findIndex((f) => f.method === method && (f.match.repo === undefined || f.match.repo === repo) && (f.match.ref === undefined || f.match.ref === ref));
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    if (f.match.times !== undefined && --f.match.times <= 0) this.faults.splice(i, 1);
    return f.fault;
  }
}

/** `credentials` as an account id, as RegistryUpstream.identityFor shapes them. */
function accountOf(credentials: Credentials | null | undefined): string {
  if (credentials === undefined) return '';
  if (credentials === null) return 'anonymous';
  return 'u' + createHash('sha256').update(credentials.username).digest('hex').slice(0, 12);
}

class FakeRemoteRepository implements RemoteRepository {
  readonly registry: string;
  readonly account: string;

  constructor(
    private readonly fake: FakeRemote,
    readonly name: string,
    private readonly credentials: Credentials | null | undefined,
  ) {
    this.registry = fake.name;
    this.account = accountOf(credentials);
  }

  private status(status: number, code: string, message: string, retryAfter?: string): UpstreamStatusError {
    return new UpstreamStatusError(this.registry, status, code, message, retryAfter);
  }

  /**
   * Counts the call, applies a scripted fault and the access rule. Returns the fault for the
   * kinds the method itself carries out (midstream, corrupt).
   */
  private async enter(method: RemoteMethod, ref: string | undefined, opts: CallOptions): Promise<Fault | undefined> {
    const fault = this.fake.enter(method, this.name, ref, this.account);
    opts.signal?.throwIfAborted();
    switch (fault?.kind) {
      case 'unavailable':
        throw new UpstreamUnavailableError(this.registry, fault.message ?? 'connect ECONNREFUSED (scripted)');
      case 'status':
        throw this.status(fault.status, fault.code ?? 'UNAVAILABLE', fault.message ?? `scripted ${fault.status}`, fault.retryAfter);
      case 'hang':
        return new Promise<never>((_, reject) => {
          opts.signal?.addEventListener('abort', () => reject(opts.signal!.reason), { once: true });
        });
    }
    const access = this.fake.access(this.name, this.credentials);
    if (access === 401) throw this.status(401, 'UNAUTHORIZED', 'authentication required');
    if (access === 403) throw this.status(403, 'DENIED', 'requested access to the resource is denied');
    if (access === 404) throw this.status(404, 'NAME_UNKNOWN', 'repository name not known to registry');
    return fault;
  }

  private get repo(): FakeRepo {
    return this.fake.repo(this.name);
  }

  async statBlob(digest: string, opts: CallOptions = {}): Promise<BlobStat | null> {
    try {
      await this.enter('statBlob', digest, opts);
    } catch (err) {
      // A HEAD has no body: a 404 is an answer, as with the real client.
      if (err instanceof UpstreamStatusError && err.status === 404) return null;
      throw err;
    }
    const b = this.repo.blobs.get(digest);
    return b ? { digest, size: b.length } : null;
  }

  async openBlob(digest: string, opts: OpenBlobOptions = {}): Promise<RemoteBlob> {
    const fault = await this.enter('openBlob', digest, opts);
    const data = this.repo.blobs.get(digest);
    if (!data) throw this.status(404, 'BLOB_UNKNOWN', 'blob unknown to registry');
    let bytes = data;
    if (fault?.kind === 'corrupt') {
      bytes = Buffer.from(data);
      bytes[bytes.length - 1]! ^= 0xff;
    }
    const range = opts.range ? { start: opts.range.start, end: Math.min(opts.range.end, data.length - 1) } : null;
    if (range && range.start >= data.length) throw this.status(416, 'RANGE_INVALID', 'requested range not satisfiable');
    const part = range ? bytes.subarray(range.start, range.end + 1) : bytes;
    const signal = opts.signal;
    const registry = this.registry;
    let sent = false;
    const body =
      fault?.kind === 'midstream'
        ? new Readable({
            read() {
              if (sent) return;
              sent = true;
              this.push(part.subarray(0, fault.after));
              setImmediate(() => this.destroy(new UpstreamUnavailableError(registry, `blob download broke off after ${fault.after} bytes (scripted)`)));
            },
          })
        : Readable.from([part]);
    signal?.addEventListener('abort', () => body.destroy(signal.reason as Error), { once: true });
    return { digest, size: data.length, range, body };
  }

  /** The manifest `reference` resolves to under `accept`, as distribution 2.8 negotiates; undefined: 404. */
  private resolve(reference: string, accept: readonly string[]): { digest: string; m: StoredManifest } | undefined {
    const byTag = !DIGEST.test(reference);
    const digest = byTag ? this.repo.tags.get(reference) : reference;
    const m = digest === undefined ? undefined : this.repo.manifests.get(digest);
    if (!m || digest === undefined) return undefined;
    const takes = new Set(accept.length ? accept : KNOWN_TYPES);
    if ((m.mediaType === OCI_INDEX || m.mediaType === OCI_MANIFEST) && !takes.has(m.mediaType)) return undefined;
    if (byTag && m.mediaType === DOCKER_LIST && !takes.has(DOCKER_LIST)) {
      const list = JSON.parse(m.body.toString('utf8')) as { manifests: Array<{ digest: string; platform?: { os?: string; architecture?: string } }> };
      const amd64 = list.manifests.find((e) => e.platform?.os === 'linux' && e.platform.architecture === 'amd64');
      const child = amd64 && this.repo.manifests.get(amd64.digest);
      return child ? { digest: amd64.digest, m: child } : undefined;
    }
    return { digest, m };
  }

  async headManifest(reference: string, accept: readonly string[], opts: CallOptions = {}): Promise<ManifestStat | null> {
    try {
      await this.enter('headManifest', reference, opts);
    } catch (err) {
      if (err instanceof UpstreamStatusError && err.status === 404) return null;
      throw err;
    }
    const r = this.resolve(reference, accept);
    return r ? { digest: r.digest, mediaType: r.m.mediaType, size: r.m.body.length } : null;
  }

  async getManifest(reference: string, accept: readonly string[], opts: CallOptions = {}): Promise<RemoteManifest> {
    const fault = await this.enter('getManifest', reference, opts);
    const r = this.resolve(reference, accept);
    if (!r) throw this.status(404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    if (fault?.kind === 'corrupt') throw new UpstreamIntegrityError(this.registry, `manifest ${reference} hashes to something else (scripted)`);
    return { digest: r.digest, claimedDigest: r.digest, mediaType: r.m.mediaType, body: r.m.body };
  }

  async listTags(opts: ListTagsOptions = {}): Promise<string[]> {
    await this.enter('listTags', undefined, opts);
    if (this.repo.manifests.size === 0) throw this.status(404, 'NAME_UNKNOWN', 'repository name not known to registry');
    const tags = [...this.repo.tags.keys()];
    const max = opts.maxTags ?? MAX_TAGS;
    if (tags.length > max) throw new UpstreamTooLargeError(this.registry, `tag list of ${this.name}`, max, `tag list of ${this.name} longer than ${max} tags`);
    return tags;
  }

  async listReferrers(digest: string, opts: ListReferrersOptions = {}): Promise<ReferrersAnswer> {
    try {
      await this.enter('listReferrers', digest, opts);
    } catch (err) {
      if (err instanceof UpstreamStatusError && err.status === 404) return { supported: false };
      throw err;
    }
    if (!this.fake.referrersApi) return { supported: false };
    let manifests = this.repo.referrers.get(digest) ?? [];
    if (opts.artifactType !== undefined) manifests = manifests.filter((d) => d.artifactType === opts.artifactType);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
    return { supported: true, body, mediaType: OCI_INDEX, filtersApplied: opts.artifactType !== undefined ? 'artifactType' : undefined };
  }
}
