/**
 * ChainRemote (src/upstream/chain-remote.ts) on real sockets: the RemoteRepository contract over
 * a chain of one and of two real docker-registries, then failover, tag trust, health and offline
 * mode, with fault upstreams (test/helpers/fault-upstream.ts) only for what a real registry cannot
 * do: hang, answer 429 with a Retry-After, answer 5xx, send bytes that contradict their digest.
 * Chains are built from a loaded config, as server.ts builds them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../src/observability/metrics.js';
import type { Logger } from '../../src/observability/logger.js';
import { UpstreamPool } from '../../src/upstream/registry-upstream.js';
import { ChainRemotes, type ChainRemote } from '../../src/upstream/chain-remote.js';
import { OfflineSwitch } from '../../src/upstream/offline-switch.js';
import { RegistryRemote } from '../../src/upstream/registry-remote.js';
import { UpstreamOfflineError, UpstreamStatusError, UpstreamUnavailableError } from '../../src/upstream/errors.js';
import { testConfig } from '../helpers/config.js';
import { freePort, tempDir } from '../helpers/process.js';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, MT, sha256, type TestImage } from '../helpers/images.js';
import { ALICE, startTokenRegistryFixture } from './token-registry-fixture.js';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { metricValue } from '../helpers/pullthrough.js';
import { readAll, remoteSuite } from './remote.suite.js';

const REGISTRY = 'chain.test';

interface Chain {
  readonly remote: ChainRemote;
  readonly metrics: Metrics;
  readonly offline: OfflineSwitch;
  /** Warn-level log lines, with their fields. */
  readonly warnings: Array<Record<string, unknown>>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

/** A chain of `upstreams` (the config's entries) for REGISTRY, built as server.ts builds it. */
async function chainOf(upstreams: Array<Record<string, unknown>>, upstream: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Chain> {
  const dir = await tempDir('pullthrough-chain-');
  const config = testConfig(dir.path, {
    registries: { [REGISTRY]: { upstreams, ...extra } },
    upstream: { connectTimeout: '2s', headersTimeout: '5s', ...upstream, health: { coolDown: '1s', probeInterval: '1s', probeTimeout: '1s', ...((upstream.health as object | undefined) ?? {}) } },
  });
  const metrics = new Metrics();
  const warnings: Array<Record<string, unknown>> = [];
  const log: Logger = { debug() {}, info() {}, warn: (msg, f) => void warnings.push({ msg, ...f }), error() {} };
  const pool = new UpstreamPool(config, metrics, log);
  const offline = new OfflineSwitch(Object.values(config.registries).filter((r) => r.offline).map((r) => r.name));
  const remotes = new ChainRemotes({ pool, settings: config, metrics, log, offline });
  return {
    remote: remotes.for(config.registries[REGISTRY]!),
    metrics,
    offline,
    warnings,
    metric: async (name, labels = {}) => metricValue(await metrics.registry.metrics(), name, labels),
    close: async () => {
      await remotes.close();
      await pool.close();
      await dir.cleanup();
    },
  };
}

/** Resolves once `check` holds (polled), or fails naming `what`. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------------------------------------
// The contract, over chains.

remoteSuite('ChainRemote of one: docker-registry 2.8.2 with token auth', {
  referrersApi: false,
  pagedTags: true,
  start: () => startTokenRegistryFixture((url) => chainOf([{ url }])),
});

{
  let first: Upstream;
  let second: Upstream;
  let chain: Chain;
  remoteSuite('ChainRemote of two: docker-registry 2.8.2 (tags) and a mirror holding the same content', {
    referrersApi: false,
    pagedTags: false,
    async start() {
      [first, second] = await Promise.all([startUpstreamRegistry(), startUpstreamRegistry()]);
      chain = await chainOf([{ url: first.url }, { url: second.url }]);
      return {
        remote: chain.remote,
        credentials: ALICE,
        push: async (repo, tag, image) => {
          await pushImage(first, repo, tag, image);
          await pushImage(second, repo, tag, image);
        },
        stop: async () => {
          await chain.close();
          await Promise.all([first.stop(), second.stop()]);
        },
      };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Failover, tag trust and health.

describe('ChainRemote: failover to the second entry', () => {
  let mirror: Upstream;
  let image: TestImage;
  before(async () => {
    mirror = await startUpstreamRegistry();
    image = await makeImage({ format: 'oci', seed: 'chain-failover', layerSize: [200_000] });
    await pushImage(mirror, 'team/app', 'v1', image);
  });
  after(() => mirror?.stop());

  /** A cold pull's calls: the tag, the manifest by digest, every blob, each checked against `image`. */
  async function pull(chain: Chain): Promise<void> {
    const repo = chain.remote.repository('team/app');
    const head = await repo.headManifest('v1', []);
    assert.equal(head?.digest, image.manifestDigest);
    const m = await repo.getManifest(image.manifestDigest, []);
    assert.deepEqual(m.body, image.manifest);
    for (const b of image.blobs) {
      assert.deepEqual(await repo.statBlob(b.digest), { digest: b.digest, size: b.size });
      const got = await repo.openBlob(b.digest);
      assert.equal(sha256(await readAll(got.body)), b.digest);
    }
  }

  it('the first entry refuses connections: a cold pull completes from the second (trusted for tags), with the right digests', async () => {
    const chain = await chainOf([{ url: `http://127.0.0.1:${await freePort()}` }, { url: mirror.url, tags: true }]);
    try {
      mirror.resetLog();
      await pull(chain);
      assert.equal(mirror.count({ kind: 'blob', method: 'GET', status: 200 }), image.blobs.length, 'one GET per blob, from the second entry');
      assert.ok((await chain.metric('pullthrough_upstream_failovers_total', { registry: REGISTRY, reason: 'unavailable' })) >= 1);
    } finally {
      await chain.close();
    }
  });

  it('the first entry answers 429 with Retry-After: the second serves, the first is skipped for the Retry-After, then asked again', async () => {
    const limited = await startFaultUpstream();
    limited.respond = (_m, path) => (path === '/v2/' ? undefined : { status: 429, headers: { 'retry-after': '5', 'content-type': 'application/json' } });
    const chain = await chainOf([{ url: limited.url }, { url: mirror.url, tags: true }]);
    try {
      await pull(chain);
      assert.equal(limited.log.filter((l) => l !== 'GET /v2/').length, 1, 'asked once, then skipped for its Retry-After');
      assert.equal(await chain.metric('pullthrough_upstream_up', { registry: REGISTRY, upstream: limited.url }), 0);
      assert.equal(await chain.metric('pullthrough_upstream_failovers_total', { registry: REGISTRY, reason: 'rate_limited' }), 1);
      assert.ok((await chain.metric('pullthrough_upstream_failovers_total', { registry: REGISTRY, reason: 'skipped' })) >= 1);
      const skipped = chain.warnings.find((w) => w.msg === 'upstream skipped');
      assert.equal(skipped?.upstream, limited.url);
      assert.match(String(skipped?.reason), /429/);
      // The Retry-After passes: the first entry is asked again, and now answers.
      limited.respond = undefined;
      limited.addManifest('team/app', 'v1', image.manifest, MT.OciManifest);
      await until('the Retry-After to pass', async () => (await chain.metric('pullthrough_upstream_up', { registry: REGISTRY, upstream: limited.url })) === 1, 10_000);
      assert.ok(chain.warnings.some((w) => w.msg === 'upstream taken back' && w.upstream === limited.url && w.after === 'retry-after'));
      const before = limited.count('HEAD /v2/team/app/manifests/v1');
      assert.equal((await chain.remote.repository('team/app').headManifest('v1', []))?.digest, image.manifestDigest);
      assert.equal(limited.count('HEAD /v2/team/app/manifests/v1'), before + 1, 'the first entry is used again');
    } finally {
      await chain.close();
      await limited.close();
    }
  });

  it('the first entry hangs: each call fails over after headersTimeout; after `failures` it is skipped and no longer waited for', async () => {
    const hung = await startFaultUpstream();
    hung.manifestStatus = 0;
    const chain = await chainOf([{ url: hung.url }, { url: mirror.url, tags: true }], { headersTimeout: '1s', health: { failures: 2, coolDown: '1m' } });
    try {
      const repo = chain.remote.repository('team/app');
      for (let i = 0; i < 2; i++) assert.equal((await repo.getManifest('v1', [])).digest, image.manifestDigest);
      assert.equal(hung.count('GET /v2/team/app/manifests/v1'), 2);
      const started = Date.now();
      assert.equal((await repo.getManifest('v1', [])).digest, image.manifestDigest);
      assert.ok(Date.now() - started < 900, `skipped, not waited for (${Date.now() - started} ms)`);
      assert.equal(hung.count('GET /v2/team/app/manifests/v1'), 2, 'no third request to the hung entry');
    } finally {
      await chain.close();
      await hung.close();
    }
  });

  it('the first entry fails with 5xx: skipped after `failures`, probed with GET /v2/, taken back when it answers and used again', async () => {
    const flaky = await startFaultUpstream();
    flaky.respond = () => ({ status: 503, headers: {} });
    const chain = await chainOf([{ url: flaky.url }, { url: mirror.url, tags: true }], { health: { failures: 3, coolDown: '1s', probeInterval: '1s' } });
    try {
      const repo = chain.remote.repository('team/app');
      for (let i = 0; i < 4; i++) assert.equal((await repo.headManifest('v1', []))?.digest, image.manifestDigest);
      assert.equal(flaky.count('HEAD /v2/team/app/manifests/v1'), 3, 'skipped after the third failure');
      assert.equal(await chain.metric('pullthrough_upstream_up', { registry: REGISTRY, upstream: flaky.url }), 0);
      assert.equal(await chain.metric('pullthrough_upstream_failovers_total', { registry: REGISTRY, reason: 'status_5xx' }), 3);
      // Probes fail while it still answers 503; once it answers, the next probe takes it back.
      await until('a probe', () => flaky.count('GET /v2/') >= 1);
      assert.equal(await chain.metric('pullthrough_upstream_up', { registry: REGISTRY, upstream: flaky.url }), 0, 'a 503 probe keeps it skipped');
      flaky.respond = undefined;
      flaky.addManifest('team/app', 'v1', image.manifest, MT.OciManifest);
      await until('the entry taken back', async () => (await chain.metric('pullthrough_upstream_up', { registry: REGISTRY, upstream: flaky.url })) === 1);
      const back = chain.warnings.find((w) => w.msg === 'upstream taken back');
      assert.deepEqual([back?.upstream, back?.after], [flaky.url, 'probe']);
      assert.equal((await repo.headManifest('v1', []))?.digest, image.manifestDigest);
      assert.equal(flaky.count('HEAD /v2/team/app/manifests/v1'), 4, 'used again after its probe');
    } finally {
      await chain.close();
      await flaky.close();
    }
  });

  it('every tag-trusted entry skipped: tag calls fail fast with UpstreamUnavailableError (nothing asked); content by digest still comes from the mirror', async () => {
    const down = await startFaultUpstream();
    down.respond = (_m, path) => (path === '/v2/' ? { status: 503, headers: {} as Record<string, string> } : { status: 429, headers: { 'retry-after': '600' } });
    const chain = await chainOf([{ url: down.url }, { url: mirror.url }]);
    try {
      const repo = chain.remote.repository('team/app');
      await assert.rejects(repo.getManifest('v1', []), (err: unknown) => err instanceof UpstreamStatusError && err.status === 429, 'the first 429 is the answer');
      const asked = down.log.length;
      const started = Date.now();
      for (const call of [() => repo.headManifest('v1', []), () => repo.getManifest('v1', []), () => repo.listTags(), () => repo.listReferrers(image.manifestDigest)]) {
        await assert.rejects(call(), (err: unknown) => err instanceof UpstreamUnavailableError && /every upstream trusted for tags is skipped/.test(err.message) && err.message.includes(down.url));
      }
      assert.ok(Date.now() - started < 1000, 'failed fast');
      assert.equal(down.log.length, asked, 'nothing asked of the skipped entry');
      assert.deepEqual((await repo.getManifest(image.manifestDigest, [])).body, image.manifest, 'by digest from the mirror');
    } finally {
      await chain.close();
      await down.close();
    }
  });

  it('a tag only the untrusted mirror has is not served from it; content by digest is', async () => {
    const registry = await startUpstreamRegistry();
    const chain = await chainOf([{ url: registry.url }, { url: mirror.url }]);
    try {
      mirror.resetLog();
      const repo = chain.remote.repository('team/app');
      assert.equal(await repo.headManifest('v1', []), null);
      await assert.rejects(repo.getManifest('v1', []), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      await assert.rejects(repo.listTags(), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      assert.equal((await repo.listReferrers(image.manifestDigest)).supported, false, 'the registry has no referrers API; the mirror is not asked');
      assert.equal(mirror.count({ kind: 'manifest' }) + mirror.count({ kind: 'tags' }), 0, 'the mirror was never asked for a tag');
      // By digest, a 404 of the first entry moves on to the mirror.
      assert.deepEqual((await repo.getManifest(image.manifestDigest, [])).body, image.manifest);
      for (const b of image.blobs) assert.equal(sha256(await readAll((await repo.openBlob(b.digest)).body)), b.digest);
      assert.equal(await chain.metric('pullthrough_upstream_failovers_total', { registry: REGISTRY, reason: 'not_found' }), 1 + image.blobs.length);
      // The registry goes down: its failure is the answer for the tag, the mirror is still not asked.
      await registry.down();
      await assert.rejects(repo.getManifest('v1', []), UpstreamUnavailableError);
      await assert.rejects(repo.headManifest('v1', []), UpstreamUnavailableError);
      assert.equal(mirror.requests().filter((r) => r.kind === 'manifest' && r.reference === 'v1').length, 0, 'the mirror was never asked for the tag');
      assert.deepEqual((await repo.getManifest(image.manifestDigest, [])).body, image.manifest, 'by digest, from the mirror');
    } finally {
      await chain.close();
      await registry.stop();
    }
  });

  it('401 and 403 are access decisions: no failover, the mirror is not asked', async () => {
    const guarded = await startFaultUpstream();
    const chain = await chainOf([{ url: guarded.url }, { url: mirror.url, tags: true }]);
    try {
      mirror.resetLog();
      const repo = chain.remote.repository('team/app');
      guarded.requireAuthorization = 'Basic nobody-has-this';
      await assert.rejects(repo.openBlob(image.blobs[0]!.digest), (err: unknown) => err instanceof UpstreamStatusError && err.status === 401);
      guarded.requireAuthorization = undefined;
      guarded.manifestStatus = 403;
      await assert.rejects(repo.getManifest(image.manifestDigest, []), (err: unknown) => err instanceof UpstreamStatusError && err.status === 403);
      await assert.rejects(repo.getManifest('v1', []), (err: unknown) => err instanceof UpstreamStatusError && err.status === 403);
      assert.equal(mirror.requests().filter((r) => r.kind !== 'base').length, 0, 'the mirror was not asked');
      assert.equal(await chain.metric('pullthrough_upstream_up', { registry: REGISTRY, upstream: guarded.url }), 1, 'an answer, not a failure');
    } finally {
      await chain.close();
      await guarded.close();
    }
  });

  it('bytes that contradict the digest on the first entry: the manifest comes from the next one', async () => {
    const bad = await startFaultUpstream();
    // The first entry answers the digest with other bytes (a tampering or broken mirror).
    bad.addManifest('team/app', image.manifestDigest, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.OciManifest, config: {}, layers: [] })), MT.OciManifest);
    const chain = await chainOf([{ url: bad.url }, { url: mirror.url }]);
    try {
      const m = await chain.remote.repository('team/app').getManifest(image.manifestDigest, []);
      assert.equal(m.digest, image.manifestDigest);
      assert.equal(bad.count(`GET /v2/team/app/manifests/${image.manifestDigest}`), 1);
      assert.equal(await chain.metric('pullthrough_upstream_failovers_total', { registry: REGISTRY, reason: 'integrity' }), 1);
    } finally {
      await chain.close();
      await bad.close();
    }
  });
});

describe('ChainRemote: offline mode and accounts', () => {
  let canary: FaultUpstream;
  before(async () => {
    canary = await startFaultUpstream();
  });
  after(() => canary?.close());

  it('offline: every call throws UpstreamOfflineError and no connection is opened (a listening canary counts none); back online, calls go upstream', async () => {
    const server = canary.log;
    const chain = await chainOf([{ url: canary.url }, { url: canary.url.replace('127.0.0.1', '127.0.0.2') }], {}, { offline: true });
    try {
      const repo = chain.remote.repository('team/app');
      const digest = 'sha256:' + 'a'.repeat(64);
      for (const call of [() => repo.statBlob(digest), () => repo.openBlob(digest), () => repo.headManifest('v1', []), () => repo.getManifest(digest, []), () => repo.listTags(), () => repo.listReferrers(digest)]) {
        await assert.rejects(call(), (err: unknown) => err instanceof UpstreamOfflineError && err.registry === REGISTRY && /offline mode/.test(err.message));
      }
      assert.equal(server.length, 0, 'the canary saw no request');
      // Switched at run time (what the admin API does): calls go upstream again.
      chain.offline.set(REGISTRY, false);
      assert.equal(await repo.headManifest('v1', []), null);
      assert.ok(server.length > 0);
      chain.offline.set(REGISTRY, true);
      const seen = server.length;
      await assert.rejects(repo.headManifest('v1', []), UpstreamOfflineError);
      assert.equal(server.length, seen);
    } finally {
      await chain.close();
    }
  });

  it("account: a chain of one keeps its entry's account; across entries, one id per combination of entries' accounts", async () => {
    const one = await chainOf([{ url: canary.url, username: 'hub', password: 'x' }]);
    const two = await chainOf([{ url: canary.url, username: 'hub', password: 'x' }, { url: canary.url.replace('127.0.0.1', '127.0.0.2') }]);
    const plain = await chainOf([{ url: canary.url }, { url: canary.url.replace('127.0.0.1', '127.0.0.2') }]);
    const dir = await tempDir('pullthrough-chain-account-');
    try {
      const config = testConfig(dir.path, { registries: { [REGISTRY]: { upstream: canary.url, username: 'hub', password: 'x' } } });
      const pool = new UpstreamPool(config, new Metrics(), { debug() {}, info() {}, warn() {}, error() {} });
      const single = new RegistryRemote(pool.for(config.registries[REGISTRY]!));
      assert.equal(one.remote.repository('a/b').account, single.repository('a/b').account, 'unchanged by the chain');
      await pool.close();
      const acct = two.remote.repository('a/b').account;
      assert.notEqual(acct, one.remote.repository('a/b').account, 'a mirror in the chain is another combination');
      assert.equal(acct, two.remote.repository('c/d').account, 'one id per combination, not per repository');
      assert.equal(plain.remote.repository('a/b').account, '', 'no credentials anywhere: the default');
      assert.equal(plain.remote.repository('a/b', null).account, 'anonymous');
      const alice = plain.remote.repository('a/b', ALICE).account;
      assert.ok(alice !== '' && alice !== 'anonymous' && !alice.includes('alice'));
    } finally {
      await Promise.all([one.close(), two.close(), plain.close()]);
      await dir.cleanup();
    }
  });
});
