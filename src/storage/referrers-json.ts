/** ReferrersRecord as the metadata stores keep it: JSON, the body base64, with the filter it answers. */
import type { ReferrersRecord } from './metadata-store.js';

/** A ReferrersRecord as JSON (the body base64), with the filter it answers. */
export interface StoredReferrers {
  readonly artifactType: string | null;
  readonly supported: boolean;
  readonly body?: string;
  readonly mediaType?: string;
  readonly filtersApplied?: string;
  readonly upstreamCode?: string;
  readonly upstreamMessage?: string;
  readonly fetchedAt: number;
}

/** The JSON form both stores keep. */
export function referrersToJson(r: ReferrersRecord, artifactType: string | undefined): StoredReferrers {
  const base = { artifactType: artifactType ?? null, fetchedAt: r.fetchedAt };
  if (!r.supported) {
    return {
      ...base,
      supported: false,
      ...(r.upstreamCode !== undefined ? { upstreamCode: r.upstreamCode } : {}),
      ...(r.upstreamMessage !== undefined ? { upstreamMessage: r.upstreamMessage } : {}),
    };
  }
  return { ...base, supported: true, body: r.body.toString('base64'), mediaType: r.mediaType, ...(r.filtersApplied !== undefined ? { filtersApplied: r.filtersApplied } : {}) };
}

/** Back from JSON; null for a torn or foreign value, or one kept for another filter. */
export function referrersFromJson(j: StoredReferrers, artifactType: string | undefined): ReferrersRecord | null {
  if (typeof j !== 'object' || j === null || typeof j.fetchedAt !== 'number' || j.artifactType !== (artifactType ?? null)) return null;
  if (j.supported === false) {
    return {
      supported: false,
      ...(typeof j.upstreamCode === 'string' ? { upstreamCode: j.upstreamCode } : {}),
      ...(typeof j.upstreamMessage === 'string' ? { upstreamMessage: j.upstreamMessage } : {}),
      fetchedAt: j.fetchedAt,
    };
  }
  if (j.supported !== true || typeof j.body !== 'string' || typeof j.mediaType !== 'string') return null;
  return {
    supported: true,
    body: Buffer.from(j.body, 'base64'),
    mediaType: j.mediaType,
    ...(typeof j.filtersApplied === 'string' ? { filtersApplied: j.filtersApplied } : {}),
    fetchedAt: j.fetchedAt,
  };
}

