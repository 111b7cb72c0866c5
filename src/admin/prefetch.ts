/**
 * Prefetch jobs: pull images into the cache through the normal pull path (PullThroughCache's
 * manifest() and blob(): single-flight with clients pulling the same content, digest verification,
 * the configured upstream credentials), with progress a caller polls. Jobs live in this process's
 * memory (the last {@link KEEP_JOBS}); the content they fetch is shared like any other.
 */
import { randomUUID } from 'node:crypto';
import type { PullThroughCache } from '../cache/pull-through.js';
import type { Target } from '../cache/results.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { Logger } from '../observability/logger.js';
import { manifestShape, platformMatches, type BlobRef } from './manifest-tree.js';
import type { ImageRef } from './image-ref.js';
import { pin } from './pins.js';

/** Finished jobs kept for GET /api/v1/jobs. */
const KEEP_JOBS = 100;
/** Longest wait, after the last byte, for a download to be committed to storage. */
const COMMIT_WAIT_MS = 5 * 60_000;

export type JobState = 'queued' | 'running' | 'done' | 'failed';

/** Progress of one image of a job. */
export interface ImageProgress {
  ref: string;
  state: JobState;
  /** The top manifest's digest, once known. */
  digest: string | null;
  platforms: string[];
  bytesDone: number;
  bytesTotal: number;
  layersDone: number;
  layersTotal: number;
  error: string | null;
}

/** A prefetch job as GET /api/v1/jobs/ID answers it. */
export interface PrefetchJob {
  id: string;
  kind: 'prefetch';
  state: JobState;
  createdAt: string;
  finishedAt: string | null;
  /** Platforms asked for; null: all. */
  platforms: string[] | null;
  pin: boolean;
  bytesDone: number;
  bytesTotal: number;
  layersDone: number;
  layersTotal: number;
  images: ImageProgress[];
  error: string | null;
}

export interface PrefetchDeps {
  readonly cache: PullThroughCache;
  readonly meta: MetadataStore;
  readonly log: Logger;
}

export class PrefetchJobs {
  private readonly jobs = new Map<string, PrefetchJob>();

  constructor(private readonly d: PrefetchDeps) {}

  /** Starts a job (it runs in the background); returns it as first seen. */
  start(refs: readonly ImageRef[], platforms: string[] | null, pinAfter: boolean): PrefetchJob {
    const job: PrefetchJob = {
      id: randomUUID(),
      kind: 'prefetch',
      state: 'queued',
      createdAt: new Date().toISOString(),
      finishedAt: null,
      platforms,
      pin: pinAfter,
      bytesDone: 0,
      bytesTotal: 0,
      layersDone: 0,
      layersTotal: 0,
      images: refs.map((r) => ({ ref: r.canonical, state: 'queued', digest: null, platforms: [], bytesDone: 0, bytesTotal: 0, layersDone: 0, layersTotal: 0, error: null })),
      error: null,
    };
    this.jobs.set(job.id, job);
    for (const [id, j] of this.jobs) {
      if (this.jobs.size <= KEEP_JOBS) break;
      if (j.state === 'done' || j.state === 'failed') this.jobs.delete(id);
    }
    void this.run(job, refs);
    return structuredClone(job);
  }

  /** A job by id (a copy), or undefined. */
  get(id: string): PrefetchJob | undefined {
    const j = this.jobs.get(id);
    return j && structuredClone(j);
  }

  /** Every job kept, newest first (copies). */
  list(): PrefetchJob[] {
    return [...this.jobs.values()].reverse().map((j) => structuredClone(j));
  }

  private async run(job: PrefetchJob, refs: readonly ImageRef[]): Promise<void> {
    job.state = 'running';
    for (const [i, ref] of refs.entries()) {
      const img = job.images[i]!;
      img.state = 'running';
      try {
        await this.fetchImage(job, img, ref);
        if (job.pin) await pin(this.d.meta, ref, job.platforms);
        img.state = 'done';
      } catch (err) {
        img.state = 'failed';
        img.error = (err as Error).message;
        this.d.log.warn('prefetch failed', { ref: ref.canonical, error: img.error });
      }
    }
    const failed = job.images.filter((x) => x.state === 'failed');
    job.state = failed.length ? 'failed' : 'done';
    if (failed.length) job.error = `${failed.length} of ${job.images.length} image(s) failed: ${failed.map((f) => `${f.ref}: ${f.error}`).join('; ')}`;
    job.finishedAt = new Date().toISOString();
    this.d.log.info('prefetch finished', { job: job.id, state: job.state, images: job.images.length, bytes: job.bytesDone });
  }

  /** Waits until the blob's record exists (its bytes are stored). @throws Error past COMMIT_WAIT_MS */
  private async landed(digest: string): Promise<void> {
    const deadline = Date.now() + COMMIT_WAIT_MS;
    let delay = 20;
    while (!(await this.d.meta.getBlob(digest))) {
      if (Date.now() > deadline) throw new Error(`${digest} was downloaded but not stored within ${COMMIT_WAIT_MS / 1000} s (see the log)`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 500);
    }
  }

  private async fetchImage(job: PrefetchJob, img: ImageProgress, ref: ImageRef): Promise<void> {
    const t: Target = { registry: ref.registry, repo: ref.repo };
    const top = await this.d.cache.manifest(t, ref.reference, null, false);
    img.digest = top.digest;
    if (!top.body) throw new Error('upstream sent no manifest body');
    const shape = manifestShape(top.body);
    const blobs: BlobRef[] = [];
    if (shape.kind === 'index') {
      img.platforms = shape.children.map((c) => c.platform);
      const chosen = job.platforms ? shape.children.filter((c) => job.platforms!.some((p) => platformMatches(c.platform, p))) : shape.children;
      if (chosen.length === 0) throw new Error(`no platform ${job.platforms!.join(', ')} in ${ref.canonical} (it has: ${img.platforms.join(', ')})`);
      for (const c of chosen) {
        const m = await this.d.cache.manifest(t, { kind: 'digest', digest: c.digest }, null, false);
        const s = m.body ? manifestShape(m.body) : ({ kind: 'other' } as const);
        if (s.kind === 'image') for (const b of s.blobs) if (!blobs.some((x) => x.digest === b.digest)) blobs.push(b);
      }
    } else if (shape.kind === 'image') {
      blobs.push(...shape.blobs);
    } else {
      throw new Error(`${ref.canonical} is no image manifest or index (${top.mediaType})`);
    }
    img.layersTotal = blobs.length;
    img.bytesTotal = blobs.reduce((n, b) => n + b.size, 0);
    job.layersTotal += img.layersTotal;
    job.bytesTotal += img.bytesTotal;
    for (const b of blobs) {
      const h = await this.d.cache.blob(t, b.digest, false);
      if (h.cache === 'hit') {
        img.bytesDone += b.size;
        job.bytesDone += b.size;
      } else {
        // Read through: the shared download verifies the digest and stores the blob.
        const stream = await h.open();
        for await (const chunk of stream) {
          const n = (chunk as Buffer).length;
          img.bytesDone += n;
          job.bytesDone += n;
        }
        // A reader gets the last byte before the download is committed: done means stored.
        if (h.cache === 'miss') await this.landed(b.digest);
      }
      img.layersDone++;
      job.layersDone++;
    }
  }
}
