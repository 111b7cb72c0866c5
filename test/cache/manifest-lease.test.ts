/**
 * The cross-replica lease on one manifest fetch (src/cache/manifest-lease.ts), over a real file
 * metadata store: two leases on one store stand for two replicas sharing Redis. What is asserted
 * is how many fetches ran and what each caller got; the lease across real processes and Redis is
 * in test/scale/one-fetch.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManifestLease } from '../../src/cache/manifest-lease.js';
import type { MetadataStore } from '../../src/storage/metadata-store.js';
import { openMetadataStore } from '../../src/storage/factory.js';
import { testConfig } from '../helpers/config.js';
import { inTempDir } from '../helpers/process.js';
import { Metrics } from '../../src/observability/metrics.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** A metadata store on a temp dir, and a "store" of landed manifests that the callers look in. */
async function withStore(fn: (meta: MetadataStore, landed: Map<string, string>) => Promise<void>): Promise<void> {
  await inTempDir(async (dir) => {
    const meta = await openMetadataStore(testConfig(dir.path));
    try {
      await fn(meta, new Map());
    } finally {
      await meta.close();
    }
  });
}

/** A fetch that waits for `gate`, then lands its value (or throws `error`); counts its runs. */
function fetcher(landed: Map<string, string>, value: string, gate: Promise<void> = Promise.resolve(), error?: Error) {
  const f = {
    runs: 0,
    fn: async (): Promise<string> => {
      f.runs++;
      await gate;
      if (error) throw error;
      landed.set(DIGEST, value);
      return `fetched ${value}`;
    },
  };
  return f;
}

/** pullthrough_manifest_fetch_waits_total by outcome, e.g. `{ landed: 1 }`. */
async function waits(metrics: Metrics): Promise<Record<string, number>> {
  const { values } = await metrics.manifestWaits.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.outcome), v.value]));
}

const lookIn = (landed: Map<string, string>) => async (): Promise<string | null> => {
  const v = landed.get(DIGEST);
  return v === undefined ? null : `landed ${v}`;
};

describe('ManifestLease', () => {
  it('two replicas miss one manifest at once: one fetches, the other gets it from the store once it landed', async () => {
    await withStore(async (meta, landed) => {
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const a = fetcher(landed, 'm', gate);
      const b = fetcher(landed, 'm');
      const [ma, mb] = [new Metrics(), new Metrics()];
      const first = new ManifestLease(meta, 30_000, ma).once(DIGEST, lookIn(landed), a.fn);
      await new Promise((r) => setTimeout(r, 20));
      const second = new ManifestLease(meta, 30_000, mb).once(DIGEST, lookIn(landed), b.fn);
      await new Promise((r) => setTimeout(r, 50));
      open();
      assert.deepEqual(await Promise.all([first, second]), ['fetched m', 'landed m']);
      assert.equal(a.runs + b.runs, 1);
      assert.deepEqual([await waits(ma), await waits(mb)], [{}, { landed: 1 }], 'the holder did not wait; the other did, and was served what landed');
      assert.equal(await meta.tryLock(`manifest:${DIGEST}`, 1000).then((l) => l !== null), true, 'the lease was released');
    });
  });

  it('the holder\'s fetch fails: it gets its error, the waiter then fetches for itself', async () => {
    await withStore(async (meta, landed) => {
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const a = fetcher(landed, 'm', gate, new Error('upstream said 429'));
      const b = fetcher(landed, 'm');
      const mb = new Metrics();
      const first = new ManifestLease(meta, 30_000, new Metrics()).once(DIGEST, lookIn(landed), a.fn);
      await new Promise((r) => setTimeout(r, 20));
      const second = new ManifestLease(meta, 30_000, mb).once(DIGEST, lookIn(landed), b.fn);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(b.runs, 0, 'the waiter does not fetch while the holder is fetching');
      open();
      await assert.rejects(first, /upstream said 429/);
      assert.equal(await second, 'fetched m');
      assert.deepEqual([a.runs, b.runs], [1, 1]);
      assert.deepEqual(await waits(mb), { fetched: 1 });
    });
  });

  it('a holder that died keeps the lease only until it expires: the waiter then fetches', async () => {
    await withStore(async (meta, landed) => {
      const dead = await meta.tryLock(`manifest:${DIGEST}`, 300);
      assert.ok(dead);
      const b = fetcher(landed, 'm');
      const mb = new Metrics();
      assert.equal(await new ManifestLease(meta, 30_000, mb).once(DIGEST, lookIn(landed), b.fn), 'fetched m');
      assert.equal(b.runs, 1);
      assert.deepEqual(await waits(mb), { fetched: 1 });
    });
  });

  it('the manifest landed between the first look and the lease: no fetch', async () => {
    await withStore(async (meta, landed) => {
      const b = fetcher(landed, 'm');
      let looks = 0;
      const look = async (): Promise<string | null> => {
        looks++;
        // Another replica stores it right after this replica's first look (made by its caller).
        landed.set(DIGEST, 'theirs');
        return lookIn(landed)();
      };
      const mb = new Metrics();
      assert.equal(await new ManifestLease(meta, 30_000, mb).once(DIGEST, look, b.fn), 'landed theirs');
      assert.equal(b.runs, 0);
      assert.equal(looks, 1);
      assert.deepEqual(await waits(mb), {}, 'no wait: the lease was free');
    });
  });
});
