/**
 * Configuration of upstream chains (docs/upstream-chains.md): `registries.<name>.upstreams`,
 * `upstream` as its one-element form, `offline`, `upstream.health`, and rpardini's variables
 * over a chain. Every refusal names the key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig, ConfigError, type Config } from '../src/config/index.js';
import { tempDir } from './helpers/process.js';

async function load(doc: Record<string, unknown>, env: Record<string, string> = {}): Promise<Config> {
  const dir = await tempDir('pullthrough-chain-config-');
  try {
    await writeFile(join(dir.path, 'ca.pem'), 'readable');
    await writeFile(join(dir.path, 'c.yml'), stringify({ dataDir: join(dir.path, 'data'), ...doc }));
    return loadConfig({ file: join(dir.path, 'c.yml'), env });
  } finally {
    await dir.cleanup();
  }
}

/** The ConfigError message for `doc`. */
async function problemsOf(doc: Record<string, unknown>): Promise<string> {
  try {
    await load(doc);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

test('upstream: URL is the one-element chain, with the entry-level credentials and CA; built-ins are chains of one', async () => {
  const c = await load({ registries: { 'hub.test': { upstream: 'https://hub.example', username: 'u', password: 'p', ca: './ca.pem', credentials: [{ match: 'team/**', username: 't', password: 'tp' }] } } });
  const r = c.registries['hub.test']!;
  assert.equal(r.upstreams.length, 1);
  const e = r.upstreams[0]!;
  assert.equal(e.url, 'https://hub.example');
  assert.equal(e.tags, true);
  assert.equal(e.username, 'u');
  assert.equal(e.password, 'p');
  assert.ok(e.ca?.endsWith('/ca.pem') && e.ca.startsWith('/'), 'CA path made absolute');
  assert.deepEqual(e.credentials, [{ match: 'team/**', username: 't', password: 'tp' }]);
  assert.equal(r.offline, false);
  const hub = c.registries['docker.io']!;
  assert.deepEqual(hub.upstreams.map((u) => [u.url, u.tags]), [['https://registry-1.docker.io', true]]);
  assert.equal(hub.offline, false);
});

test('upstreams: ordered, tags true for the first and false for the others unless given; the first entry stands at the top', async () => {
  const c = await load({
    registries: {
      'docker.io': {
        offline: true,
        upstreams: [
          { url: 'https://registry-1.docker.io', username: 'hubuser', password: 'hubpass' },
          { url: 'https://mirror.gcr.io' },
          { url: 'https://pullthrough-b.internal:5000', tags: true, ca: './ca.pem', allowPrivateRedirects: true },
        ],
      },
    },
  });
  const r = c.registries['docker.io']!;
  assert.deepEqual(r.upstreams.map((u) => [u.url, u.tags]), [
    ['https://registry-1.docker.io', true],
    ['https://mirror.gcr.io', false],
    ['https://pullthrough-b.internal:5000', true],
  ]);
  assert.equal(r.offline, true);
  // Writes, the token relay, setup scripts and the address guard read these: the first entry's.
  assert.equal(r.upstream, 'https://registry-1.docker.io');
  assert.equal(r.username, 'hubuser');
  assert.equal(r.password, 'hubpass');
  assert.equal(r.ca, undefined);
  assert.equal(r.allowPrivateRedirects, false);
  assert.equal(r.upstreams[2]!.allowPrivateRedirects, true);
  assert.deepEqual(r.aliases, ['registry-1.docker.io', 'index.docker.io'], 'built-in aliases kept');
});

test('chain refusals name the key: both forms, neither, entry-level credentials beside a list, no tag-trusted entry, bad entries', async () => {
  const both = await problemsOf({ registries: { 'a.test': { upstream: 'https://a.example', upstreams: [{ url: 'https://b.example' }] } } });
  assert.match(both, /registries\."a\.test"\.upstreams: upstream and upstreams exclude each other/);
  const neither = await problemsOf({ registries: { 'a.test': { aliases: [] } } });
  assert.match(neither, /registries\."a\.test"\.upstream: required/);
  const beside = await problemsOf({ registries: { 'a.test': { username: 'u', password: 'p', upstreams: [{ url: 'https://b.example' }] } } });
  assert.match(beside, /registries\."a\.test"\.username: with upstreams, set username on the entry it belongs to/);
  const untrusted = await problemsOf({ registries: { 'a.test': { upstreams: [{ url: 'https://b.example', tags: false }, { url: 'https://c.example' }] } } });
  assert.match(untrusted, /registries\."a\.test"\.upstreams: no entry has tags: true/);
  const badUrl = await problemsOf({ registries: { 'a.test': { upstreams: [{ url: 'https://b.example' }, { url: 'ftp://c.example' }] } } });
  assert.match(badUrl, /registries\."a\.test"\.upstreams\[1\]\.url: must be an http\(s\) URL/);
  const half = await problemsOf({ registries: { 'a.test': { upstreams: [{ url: 'https://b.example', username: 'u' }] } } });
  assert.match(half, /registries\."a\.test"\.upstreams\[0\]\.password: username and password go together/);
  const unknown = await problemsOf({ registries: { 'a.test': { upstreams: [{ url: 'https://b.example', tag: true }] } } });
  assert.match(unknown, /registries\."a\.test"\.upstreams\[0\]: unknown key\(s\): tag/);
  const empty = await problemsOf({ registries: { 'a.test': { upstreams: [] } } });
  assert.match(empty, /registries\."a\.test"\.upstreams: /);
  const ca = await problemsOf({ registries: { 'a.test': { upstreams: [{ url: 'https://b.example' }, { url: 'https://c.example', ca: './missing.pem' }] } } });
  assert.match(ca, /registries\."a\.test"\.upstreams\[1\]\.ca: cannot read /);
  const offline = await problemsOf({ registries: { 'a.test': { upstream: 'https://b.example', offline: 'yes' } } });
  assert.match(offline, /registries\."a\.test"\.offline: /);
});

test('upstream.health: defaults, durations, and bounds that name the key', async () => {
  const d = await load({});
  assert.deepEqual(d.upstream.health, { failures: 3, coolDown: 30_000, probeInterval: 10_000, probeTimeout: 5_000, maxRetryAfter: 600_000 });
  const c = await load({ upstream: { health: { failures: 5, coolDown: '1m', probeInterval: '2s', probeTimeout: '500ms', maxRetryAfter: '1h' } } });
  assert.deepEqual(c.upstream.health, { failures: 5, coolDown: 60_000, probeInterval: 2_000, probeTimeout: 500, maxRetryAfter: 3_600_000 });
  assert.match(await problemsOf({ upstream: { health: { failures: 0 } } }), /upstream\.health\.failures: /);
  assert.match(await problemsOf({ upstream: { health: { coolDown: '10ms' } } }), /upstream\.health\.coolDown: must be between 1s and 24h/);
  assert.match(await problemsOf({ upstream: { health: { probeInterval: 'soon' } } }), /upstream\.health\.probeInterval: not a duration/);
  assert.match(await problemsOf({ upstream: { health: { cooldown: '1m' } } }), /upstream\.health: unknown key\(s\): cooldown/);
});

test("rpardini's AUTH_REGISTRIES over a chain: the credentials go to the first entry (the registry itself), never to a mirror", async () => {
  const c = await load(
    { registries: { 'docker.io': { upstreams: [{ url: 'https://registry-1.docker.io' }, { url: 'https://mirror.gcr.io' }] }, 'quay.io': { upstream: 'https://quay.io' } } },
    { AUTH_REGISTRIES: 'docker.io:hubuser:hubpass quay.io:qu:qp' },
  );
  const hub = c.registries['docker.io']!;
  assert.equal(hub.upstreams[0]!.username, 'hubuser');
  assert.equal(hub.upstreams[0]!.password, 'hubpass');
  assert.equal(hub.upstreams[1]!.username, undefined);
  assert.equal(hub.username, 'hubuser', 'the first entry stands at the top');
  // A registry in the one-element form keeps working as before.
  assert.equal(c.registries['quay.io']!.username, 'qu');
  assert.equal(c.registries['quay.io']!.upstreams[0]!.username, 'qu');
  // REGISTRIES adds one-element chains.
  const r = await load({}, { REGISTRIES: 'registry.example.com' });
  assert.deepEqual(r.registries['registry.example.com']!.upstreams.map((u) => u.url), ['https://registry.example.com']);
});
