import type { MetadataStore } from '../storage/metadata-store.js';
import type { Metrics } from '../observability/metrics.js';

/** How long a replica waits between looks at a manifest another replica is fetching. */
const FIRST_POLL_MS = 10;
const MAX_POLL_MS = 200;
/** Longest a replica waits for another's fetch before fetching itself, lease or not. */
const MAX_WAIT_MS = 5_000;

/**
 * The cross-replica lease on one manifest fetch (`manifest:<digest>`), so that replicas (and
 * workers) that miss the same manifest at the same instant make one upstream `GET` between
 * them: Docker Hub counts every manifest `GET` as a pull against its limit.
 *
 * The holder fetches; the others look in the store until it lands (every 10 ms at first, backing
 * off to 200 ms). A manifest is a few KB, so the wait is the holder's one round trip. The lease
 * only saves upstream requests; correctness never depends on it:
 * - whoever takes the lease looks in the store once more first, since the manifest may have
 *   landed between its first look and the lease;
 * - a holder whose fetch fails releases it, and the next waiter to look takes it and fetches for
 *   itself, so its client gets its own upstream's answer (a 404, a 429), not a neighbour's;
 * - it expires after `ttlMs` and is never renewed, and nobody waits more than 5 s for it: a
 *   holder that is slow, hung or dead costs its neighbours at most that wait and one more `GET`.
 */
export class ManifestLease {
  constructor(
    private readonly meta: MetadataStore,
    private readonly ttlMs: number,
    private readonly metrics: Metrics,
  ) {}

  /**
   * `landed()` when the store has the manifest (now, or once another replica fetched it), else
   * `fetch()`, under the lease when this replica could take it.
   * @throws what `fetch` throws; StorageUnavailableError when the metadata store cannot be reached.
   */
  async once<T>(digest: string, landed: () => Promise<T | null>, fetch: () => Promise<T>): Promise<T> {
    const name = `manifest:${digest}`;
    const deadline = Date.now() + MAX_WAIT_MS;
    let delay = FIRST_POLL_MS;
    let waited = false;
    const waitEnded = (outcome: 'landed' | 'fetched'): void => {
      if (waited) this.metrics.manifestWaits.inc({ outcome });
    };
    for (;;) {
      const lock = await this.meta.tryLock(name, this.ttlMs);
      if (lock) {
        try {
          const got = await landed();
          waitEnded(got ? 'landed' : 'fetched');
          return got ?? (await fetch());
        } finally {
          await lock.release().catch(() => {});
        }
      }
      waited = true;
      if (Date.now() >= deadline) {
        waitEnded('fetched');
        return fetch();
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, MAX_POLL_MS);
      const got = await landed();
      if (got) {
        waitEnded('landed');
        return got;
      }
    }
  }
}
