import { OciError } from '../oci/errors.js';
import type { ByteRange } from '../storage/blob-store.js';

/**
 * Parses a single `Range: bytes=…` against a blob of `size` bytes. Returns undefined when there
 * is no usable single range (no header, multiple ranges, other units): the whole blob is sent.
 * @throws OciError RANGE_INVALID (416) for a syntactically valid range outside the blob.
 */
export function parseRange(header: string | undefined, size: number | undefined): ByteRange | undefined {
  if (!header || size === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined; // invalid spec: ignore, per RFC 9110
  }
  if (start >= size) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): OciError {
  return new OciError('RANGE_INVALID', 'requested range not satisfiable', { size }, { 'content-range': `bytes */${size}` });
}
