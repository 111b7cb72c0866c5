/**
 * An upstream can never steer pullthrough into private address space (issue 15, part 1): redirects,
 * token realms and upload Locations that name loopback, link-local, metadata or names resolving
 * there get `502 UPSTREAM_ERROR` and a warn line, and the canaries on those addresses count no
 * connection. Everything runs in a network namespace of its own (hostile-upstream-scenario.ts), the
 * only place a test may put 169.254.169.254 (on these machines the real one is routable).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { run } from '../helpers/process.js';

const SCENARIO = resolve(import.meta.dirname, 'hostile-upstream-scenario.js');

interface Seen {
  status: number;
  digest?: string;
  body: { errors?: Array<{ code: string; message: string; detail?: Record<string, unknown> }> } & Record<string, unknown>;
}
interface Observations {
  cases: Record<string, Seen>;
  canaries: { loopback: number; ipv6Loopback: number; metadata: number };
  hostileLog: string[];
  onpremLog: string[];
  cdnLog: string[];
  blobs: Record<string, string>;
  goodBlobSize: number;
  realDigest: string;
  warnings: Array<Record<string, unknown>>;
  output: string;
}

let o: Observations;

before(async () => {
  // The namespace's loopback gets a public-looking address for the hostile upstream and the
  // metadata address for a canary; nothing in it can reach the machine's network.
  const setup = 'ip link set lo up && ip addr add 11.22.33.44/32 dev lo && ip addr add 169.254.169.254/32 dev lo && exec "$0" "$@"';
  const r = await run('unshare', ['-n', 'sh', '-c', setup, process.execPath, SCENARIO], { timeoutMs: 120_000, allowFail: true });
  assert.equal(r.code, 0, `scenario failed:\n${r.stderr}\n${r.stdout.slice(-4000)}`);
  o = JSON.parse(r.stdout.trim().split('\n').pop()!) as Observations;
});

/** A 502 UPSTREAM_ERROR naming the registry and the refusal. */
function assertRefused(name: string, registry: string, pattern: RegExp): void {
  const c = o.cases[name];
  assert.ok(c, `case ${name} ran`);
  assert.equal(c.status, 502, `${name}: ${JSON.stringify(c.body)}`);
  const e = c.body.errors?.[0];
  assert.equal(e?.code, 'UPSTREAM_ERROR', name);
  assert.match(e!.message, new RegExp(`upstream ${registry.replace(/\./g, '\\.')} `), name);
  assert.match(e!.message, pattern, name);
  assert.match(e!.message, /allowPrivateRedirects/, name);
  assert.equal(e?.detail?.registry, registry, name);
}

test('no canary ever saw a connection: loopback, IPv6 loopback, metadata', () => {
  assert.deepEqual(o.canaries, { loopback: 0, ipv6Loopback: 0, metadata: 0 }, o.output.slice(-3000));
});

test('manifest redirects into loopback, metadata and names resolving there are refused with 502 UPSTREAM_ERROR', () => {
  for (const tag of ['to-loopback', 'to-localhost', 'to-ipv6-loopback', 'to-mapped-loopback', 'to-decimal-loopback']) {
    assertRefused(`manifest ${tag}`, 'hostile.example', /redirect to http:\/\/(127\.0\.0\.1|localhost|\[::1\]|\[::ffff:7f00:1\]):\d+: refused/);
  }
  assertRefused('manifest to-metadata', 'hostile.example', /redirect to http:\/\/169\.254\.169\.254: refused/);
  assertRefused('manifest to-mixed-name', 'hostile.example', /mixed\.test resolves to 127\.0\.0\.1/);
  assertRefused('manifest to-loopback, upstream configured by name', 'hostile-by-name.example', /redirect to http:\/\/127\.0\.0\.1:/);
  // The upstream was asked (once per attempt); what it pointed at was never contacted.
  assert.ok(o.hostileLog.some((l) => l.endsWith('/v2/app/manifests/to-loopback')));
});

test('a redirect to the upstream\'s own origin is still followed', () => {
  const c = o.cases['manifest to-self']!;
  assert.equal(c.status, 404, JSON.stringify(c.body));
  assert.equal(c.body.errors?.[0]?.code, 'MANIFEST_UNKNOWN');
  assert.ok(o.hostileLog.includes('GET /v2/app/manifests/nothing-here') || o.hostileLog.includes('HEAD /v2/app/manifests/nothing-here'));
});

test('a strict registry still follows a manifest redirect to a name that resolves to a public address', () => {
  const c = o.cases['manifest to-public-name']!;
  assert.equal(c.status, 200, JSON.stringify(c.body).slice(0, 500));
  assert.equal(c.digest, o.realDigest);
});

test('a strict registry still follows a blob redirect to a CDN whose name resolves to a public address', () => {
  const c = o.cases['blob to a public CDN by name, strict registry']!;
  assert.equal(c.status, 200, JSON.stringify(c.body).slice(0, 500));
  assert.equal(c.digest, o.blobs.publicCdn);
  assert.ok(o.hostileLog.includes(`GET /cdn/${o.blobs.publicCdn}`));
});

test('blob redirects (the slab transport) into loopback, a name resolving to loopback, metadata or a private CDN are refused', () => {
  assertRefused('blob to loopback', 'hostile.example', /redirect to http:\/\/127\.0\.0\.1:\d+: refused/);
  assertRefused('blob to a name resolving to loopback', 'hostile.example', /rebind\.test resolves to 127\.0\.0\.1/);
  assertRefused('blob to metadata', 'hostile.example', /169\.254\.169\.254/);
  assertRefused('blob to a private CDN, strict registry', 'hostile.example', /redirect to http:\/\/127\.0\.0\.2:/);
});

test('token realms on loopback or on a name resolving there are never fetched', () => {
  assertRefused('token realm on loopback', 'hostile.example', /token realm to http:\/\/127\.0\.0\.1:\d+: refused/);
  assertRefused('token realm on a name resolving to loopback', 'named-realm.example', /token realm to http:\/\/rebind\.test:\d+: refused, rebind\.test resolves to 127\.0\.0\.1/);
});

test('TLS door: the token relay and a push whose upload Location is on loopback are refused', () => {
  // The /v2/ ping still passes the challenge on, with the realm rewritten to pullthrough's own name.
  assert.equal(o.cases['TLS door /v2/']!.status, 401);
  assertRefused('TLS door token relay', 'hostile.example', /token realm to http:\/\/127\.0\.0\.1:\d+: refused/);
  assertRefused('TLS door push Location', 'hostile.example', /upload Location to http:\/\/127\.0\.0\.1:\d+: refused/);
  assert.ok(o.hostileLog.includes('POST /v2/app/blobs/uploads/'), 'the push itself reached the upstream');
});

test('allowPrivateRedirects lets a registry redirect to a private CDN; the right bytes arrive', () => {
  const c = o.cases['blob to a private CDN, allowPrivateRedirects']!;
  assert.equal(c.status, 200, JSON.stringify(c.body).slice(0, 500));
  assert.equal(c.digest, o.blobs.good);
});

test('a registry whose upstream is on loopback may redirect to its loopback neighbours, never to metadata', () => {
  const c = o.cases['blob to a loopback CDN, loopback upstream']!;
  assert.equal(c.status, 200, JSON.stringify(c.body).slice(0, 500));
  assert.equal(c.digest, o.blobs.onprem);
  assertRefused('manifest to metadata, loopback upstream', 'onprem.example', /169\.254\.169\.254 is a cloud metadata address/);
  assert.deepEqual(o.onpremLog.filter((l) => l.startsWith('GET /v2/app/blobs/')), [`GET /v2/app/blobs/${o.blobs.onprem}`]);
  // The CDN served each good blob once: to the opted registry and to the loopback one; the strict
  // registry's redirect to it never arrived.
  assert.deepEqual(o.cdnLog, [`GET /cdn/${o.blobs.good}`, `GET /cdn/${o.blobs.onprem}`]);
});

test('every refusal is one warn line naming the registry, the target origin and the reason, without paths or credentials', () => {
  const refused = o.warnings.filter((w) => w.msg === 'upstream URL refused');
  assert.ok(refused.length >= 14, `warn lines: ${refused.length}`);
  for (const w of refused) {
    assert.ok(typeof w.registry === 'string' && typeof w.target === 'string' && typeof w.reason === 'string', JSON.stringify(w));
    assert.doesNotMatch(String(w.target), /\/latest|meta-data|\/token|\/upload/, 'origin only');
  }
  assert.ok(refused.some((w) => w.registry === 'hostile.example' && w.target === 'http://169.254.169.254' && w.what === 'redirect'));
  assert.ok(refused.some((w) => w.registry === 'hostile.example' && w.what === 'token realm'));
  assert.ok(refused.some((w) => w.registry === 'hostile.example' && w.what === 'upload Location'));
});
