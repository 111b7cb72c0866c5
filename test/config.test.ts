import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { loadConfig, ConfigError } from '../src/config/index.js';
import { hijackedNames } from '../src/config/served-names.js';
import { inTempDir, run } from './helpers/process.js';
import { MAIN } from './helpers/pullthrough.js';

function problems(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

test('embedded defaults: mirror on 127.0.0.1:5000, docker.io default, fs + file stores, other doors off', () => {
  const c = loadConfig({ env: {} });
  assert.deepEqual(c.listen.mirror, { host: '127.0.0.1', port: 5000 });
  assert.equal(c.listen.tls, null);
  assert.equal(c.listen.proxy, null);
  assert.equal(c.listen.dns, null);
  assert.equal(c.defaultRegistry, 'docker.io');
  assert.equal(c.registries['docker.io']!.upstream, 'https://registry-1.docker.io');
  assert.deepEqual(c.registries['docker.io']!.aliases, ['registry-1.docker.io', 'index.docker.io']);
  assert.equal(c.storage.driver, 'fs');
  assert.equal(c.metadata.driver, 'file');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.registries['docker.io']), 'config is frozen');
});

test('YAML file: registries merge over built-ins, null removes one, relative paths resolve against the file', async () => {
  await inTempDir(async (dir) => {
    await writeFile(join(dir.path, 'ca.pem'), 'not checked here beyond readability');
    await writeFile(
      join(dir.path, 'c.yml'),
      ['dataDir: ./d', 'registries:', '  quay.io: { upstream: "https://127.0.0.1:5443", ca: ./ca.pem }', '  ghcr.io: null', 'cache:', '  maxSize: 512m', '  tags: [ { match: "v.*", revalidate: 10m } ]'].join('\n'),
    );
    const c = loadConfig({ file: join(dir.path, 'c.yml'), env: {} });
    assert.equal(c.paths.dataDir, join(dir.path, 'd'));
    assert.equal(c.registries['quay.io']!.ca, join(dir.path, 'ca.pem'));
    assert.equal(c.registries['ghcr.io'], undefined);
    assert.ok(c.registries['registry.k8s.io'], 'built-ins stay');
    assert.equal(c.cache.maxSize, 512 * 1024 * 1024);
    assert.equal(c.cache.tags[0]!.revalidate, 600_000);
  });
});

test('a registries entry for a built-in registry keeps its built-in aliases unless it sets its own', async () => {
  await inTempDir(async (dir) => {
    const load = async (name: string, lines: string[]) => {
      await writeFile(join(dir.path, name), lines.join('\n'));
      return loadConfig({ file: join(dir.path, name), env: {} });
    };
    // The Quickstart's three lines: Docker Hub names served from a private upstream.
    const kept = await load('kept.yml', ['registries:', '  docker.io:', '    upstream: https://hub-mirror.internal.example']);
    assert.equal(kept.registries['docker.io']!.upstream, 'https://hub-mirror.internal.example');
    assert.deepEqual(kept.registries['docker.io']!.aliases, ['registry-1.docker.io', 'index.docker.io']);
    assert.ok(hijackedNames(kept).includes('registry-1.docker.io'), 'the alias still gets DNS answers and certificates');
    const own = await load('own.yml', ['registries:', '  docker.io: { upstream: https://hub.example, aliases: [hub.example] }']);
    assert.deepEqual(own.registries['docker.io']!.aliases, ['hub.example']);
    const none = await load('none.yml', ['registries:', '  docker.io: { upstream: https://hub.example, aliases: [] }']);
    assert.deepEqual(none.registries['docker.io']!.aliases, []);
    assert.ok(!hijackedNames(none).includes('index.docker.io'));
    // A built-in alias the file configures as a registry of its own is left to that registry.
    const split = await load('split.yml', ['registries:', '  docker.io: { upstream: https://hub.example }', '  index.docker.io: { upstream: https://index.example }']);
    assert.deepEqual(split.registries['docker.io']!.aliases, ['registry-1.docker.io']);
    assert.equal(split.registries['index.docker.io']!.upstream, 'https://index.example');
    // Registries that are not built in have no aliases unless given.
    const other = await load('other.yml', ['registries:', '  registry.example.com: { upstream: https://registry.example.com }']);
    assert.deepEqual(other.registries['registry.example.com']!.aliases, []);
  });
});

test('errors name the key and the reason, all at once', async () => {
  await inTempDir(async (dir) => {
    const f = join(dir.path, 'bad.yml');
    await writeFile(f, ['listen: { mirror: "nope" }', 'registries:', '  quay.io: { upstream: "ftp://x" }', 'storage: { driver: tape }', 'cache: { maxSize: lots }', 'log: { flushMs: -5 }', 'surprise: 1'].join('\n'));
    const msg = problems(() => loadConfig({ file: f, env: {} }));
    assert.match(msg, /listen\.mirror: not a listen address/);
    assert.match(msg, /registries\."quay\.io"\.upstream: must be an http\(s\) URL/);
    assert.match(msg, /storage/);
    assert.match(msg, /cache\.maxSize: not a size/);
    assert.match(msg, /log\.flushMs: /);
    assert.match(msg, /unknown key\(s\): surprise/);
    await writeFile(f, 'listen: [unclosed');
    assert.match(problems(() => loadConfig({ file: f, env: {} })), /bad\.yml \(line \d+\): not valid YAML/);
    assert.match(problems(() => loadConfig({ env: { PULLTHROUGH_DEFAULT_REGISTRY: 'nowhere.example' } })), /defaultRegistry: nowhere\.example is not a configured registry/);
    assert.match(problems(() => loadConfig({ env: { PULLTHROUGH_LISTEN_DNS: '127.0.0.1:0' } })), /dns\.answer: required when listen\.dns is set/);
  });
});

test('PULLTHROUGH_* variables override the file and are named in errors', () => {
  const c = loadConfig({ env: { PULLTHROUGH_LISTEN_MIRROR: '0.0.0.0:5555', PULLTHROUGH_REDIS_URL: 'redis://127.0.0.1:6379', PULLTHROUGH_LISTEN_TLS: 'off' } });
  assert.deepEqual(c.listen.mirror, { host: '0.0.0.0', port: 5555 });
  assert.equal(c.metadata.driver, 'redis');
  assert.match(problems(() => loadConfig({ env: { PULLTHROUGH_LISTEN_MIRROR: 'x:y' } })), /listen\.mirror \(from PULLTHROUGH_LISTEN_MIRROR\)/);
  assert.equal(loadConfig({ env: {} }).dns.fastPath, 'auto');
  assert.equal(loadConfig({ env: { PULLTHROUGH_DNS_FAST_PATH: 'off' } }).dns.fastPath, 'off');
  assert.match(problems(() => loadConfig({ env: { PULLTHROUGH_DNS_FAST_PATH: 'fast' } })), /dns\.fastPath \(from PULLTHROUGH_DNS_FAST_PATH\)/);
});

test("rpardini/docker-registry-proxy variables: REGISTRIES, AUTH_REGISTRIES with delimiters, manifest cache tiers, CACHE_MAX_SIZE", () => {
  const c = loadConfig({
    env: {
      REGISTRIES: 'reg.example.com git.example.com quay.io',
      AUTH_REGISTRIES_DELIMITER: ';;;',
      AUTH_REGISTRY_DELIMITER: ':::',
      AUTH_REGISTRIES: 'auth.docker.io:::hubuser:::hub:pass;;;reg.example.com:::bob:::s3cr:et;;;gitlab.example.com:::ci:::tok',
      ENABLE_MANIFEST_CACHE: 'true',
      MANIFEST_CACHE_PRIMARY_TIME: '5m',
      CACHE_MAX_SIZE: '32g',
    },
  });
  assert.equal(c.registries['reg.example.com']!.upstream, 'https://reg.example.com');
  assert.equal(c.registries['reg.example.com']!.username, 'bob');
  assert.equal(c.registries['reg.example.com']!.password, 's3cr:et');
  assert.equal(c.registries['quay.io']!.upstream, 'https://quay.io', 'an already configured registry is kept');
  assert.deepEqual(c.authHosts['auth.docker.io'], { username: 'hubuser', password: 'hub:pass' });
  assert.deepEqual(c.authHosts['gitlab.example.com'], { username: 'ci', password: 'tok' });
  assert.equal(c.cache.maxSize, 32 * 1024 ** 3);
  assert.deepEqual(
    c.cache.tags.map((t) => t.revalidate),
    [5 * 60_000, 60 * 86_400_000, 3_600_000],
  );
  const primary = new RegExp(`^(?:${c.cache.tags[0]!.match})$`);
  assert.ok(primary.test('stable') && primary.test('production-2') && !primary.test('latest'));
  const secondary = new RegExp(`^(?:${c.cache.tags[1]!.match})$`);
  assert.ok(secondary.test('1.2.3') && !secondary.test('latest'));
  const bad = problems(() => loadConfig({ env: { AUTH_REGISTRIES: 'quay.io:onlyuser' } }));
  assert.match(bad, /AUTH_REGISTRIES entry 1: expected hostname:username:password/);
  assert.doesNotMatch(bad, /onlyuser/, 'the entry (which may hold a password) is not echoed');
});

test('the CLI prints a config error naming the key and exits 2', async () => {
  const r = await run(process.execPath, [MAIN, 'serve'], { env: { PATH: process.env.PATH, PULLTHROUGH_LISTEN_MIRROR: 'bogus' }, allowFail: true });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /listen\.mirror \(from PULLTHROUGH_LISTEN_MIRROR\): not a listen address/);
});

test('cache.fillLease and cache.evictionGrace: defaults, durations, lower bounds', async () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.cache.fillLease, 30_000);
  assert.equal(c.cache.evictionGrace, 60_000);
  await inTempDir(async (dir) => {
    const ok = join(dir.path, 'ok.yml');
    await writeFile(ok, 'cache: { fillLease: 5s, evictionGrace: 2m }\n');
    const o = loadConfig({ file: ok, env: {} });
    assert.equal(o.cache.fillLease, 5_000);
    assert.equal(o.cache.evictionGrace, 120_000);
    const bad = join(dir.path, 'bad.yml');
    await writeFile(bad, 'cache: { fillLease: 500ms, evictionGrace: 1s }\n');
    const msg = problems(() => loadConfig({ file: bad, env: {} }));
    assert.match(msg, /cache\.fillLease: must be at least 1s/);
    assert.match(msg, /cache\.evictionGrace: must be at least 3s/);
  });
});

test('workers: default 1, a whole number or auto (one per core), PULLTHROUGH_WORKERS; more than one needs Redis metadata', async () => {
  assert.equal(loadConfig({ env: {} }).workers, 1);
  const redis = { PULLTHROUGH_REDIS_URL: 'redis://127.0.0.1:6379' };
  assert.equal(loadConfig({ env: { ...redis, PULLTHROUGH_WORKERS: '3' } }).workers, 3);
  assert.equal(loadConfig({ env: { ...redis, PULLTHROUGH_WORKERS: 'auto' } }).workers, availableParallelism());
  await inTempDir(async (dir) => {
    const f = join(dir.path, 'w.yml');
    await writeFile(f, 'workers: 2\nmetadata: { driver: redis, url: "redis://127.0.0.1:6379" }\nstorage: { driver: fs }\n');
    assert.equal(loadConfig({ file: f, env: {} }).workers, 2);
    // The file metadata store is one process's: the error names the key and says why.
    await writeFile(f, 'workers: 2\n');
    assert.match(problems(() => loadConfig({ file: f, env: {} })), /workers: 2 worker processes need metadata\.driver: redis \(the file metadata store belongs to one process/);
    assert.match(problems(() => loadConfig({ env: { PULLTHROUGH_WORKERS: '4' } })), /workers \(from PULLTHROUGH_WORKERS\): 4 worker processes need metadata\.driver: redis/);
    for (const bad of ['0', '-1', '1.5', "'many'", '1000', 'true']) {
      await writeFile(f, `workers: ${bad}\nmetadata: { driver: redis, url: "redis://127.0.0.1:6379" }\n`);
      assert.match(problems(() => loadConfig({ file: f, env: {} })), /workers: .*must be a whole number from 1 to 256, or auto/, `workers: ${bad}`);
    }
    assert.match(problems(() => loadConfig({ env: { ...redis, PULLTHROUGH_WORKERS: 'many' } })), /workers \(from PULLTHROUGH_WORKERS\): must be a whole number from 1 to 256, or auto \(one per core\): "many"/);
  });
});

test('registries.<name>.allowPrivateRedirects: off by default (built-ins too), a boolean, errors name the key', async () => {
  await inTempDir(async (dir) => {
    const f = join(dir.path, 'c.yml');
    await writeFile(f, ['registries:', '  onprem.example: { upstream: "https://10.0.0.5", allowPrivateRedirects: true }', '  quay.io: { upstream: "https://quay.io" }'].join('\n'));
    const c = loadConfig({ file: f, env: {} });
    assert.equal(c.registries['onprem.example']!.allowPrivateRedirects, true);
    assert.equal(c.registries['quay.io']!.allowPrivateRedirects, false);
    assert.equal(c.registries['ghcr.io']!.allowPrivateRedirects, false, 'built-in');
    await writeFile(f, ['registries:', '  quay.io: { upstream: "https://quay.io", allowPrivateRedirects: "yes" }'].join('\n'));
    assert.match(problems(() => loadConfig({ file: f, env: {} })), /registries\."quay\.io"\.allowPrivateRedirects: /);
  });
});

test('tls.sessionTickets: off by default, a boolean; errors name the key', async () => {
  assert.equal(loadConfig({ env: {} }).tls.sessionTickets, false);
  await inTempDir(async (dir) => {
    const f = join(dir.path, 'c.yml');
    await writeFile(f, 'tls: { sessionTickets: true }\n');
    assert.equal(loadConfig({ file: f, env: {} }).tls.sessionTickets, true);
    await writeFile(f, 'tls: { sessionTickets: "yes" }\n');
    assert.match(problems(() => loadConfig({ file: f, env: {} })), /tls\.sessionTickets: /);
  });
});

test('tls.ciphers: unset by default (the door\'s own order), an OpenSSL cipher list; errors name the key', async () => {
  assert.equal(loadConfig({ env: {} }).tls.ciphers, undefined);
  await inTempDir(async (dir) => {
    const f = join(dir.path, 'c.yml');
    await writeFile(f, 'tls: { ciphers: "TLS_AES_256_GCM_SHA384:ECDHE-ECDSA-AES256-GCM-SHA384" }\n');
    assert.equal(loadConfig({ file: f, env: {} }).tls.ciphers, 'TLS_AES_256_GCM_SHA384:ECDHE-ECDSA-AES256-GCM-SHA384');
    for (const bad of ['"AES-NONSENSE"', '""', '42']) {
      await writeFile(f, `tls: { ciphers: ${bad} }\n`);
      assert.match(problems(() => loadConfig({ file: f, env: {} })), /tls\.ciphers: /, bad);
    }
  });
});

test('upstream.tagListMaxSize: default 8m, a size, at least 1k; errors name the key', async () => {
  assert.equal(loadConfig({ env: {} }).upstream.tagListMaxSize, 8 * 1024 * 1024);
  await inTempDir(async (dir) => {
    const ok = join(dir.path, 'ok.yml');
    await writeFile(ok, 'upstream: { tagListMaxSize: 64k }\n');
    assert.equal(loadConfig({ file: ok, env: {} }).upstream.tagListMaxSize, 64 * 1024);
    for (const [value, message] of [
      ['lots', /upstream\.tagListMaxSize: not a size/],
      ['100', /upstream\.tagListMaxSize: must be a size of at least 1k/],
      ['null', /upstream\.tagListMaxSize: must be a size of at least 1k/],
    ] as const) {
      const bad = join(dir.path, 'bad.yml');
      await writeFile(bad, `upstream: { tagListMaxSize: ${value} }\n`);
      assert.match(problems(() => loadConfig({ file: bad, env: {} })), message, value);
    }
  });
});

test('upstream.relayTimeout: default 1h (what pushes had), its own duration apart from fillTimeout; errors name the key', async () => {
  const d = loadConfig({ env: {} });
  assert.equal(d.upstream.relayTimeout, 3_600_000);
  await inTempDir(async (dir) => {
    const ok = join(dir.path, 'ok.yml');
    // Tuning fillTimeout no longer moves the push relay's bound, and the other way round.
    await writeFile(ok, 'upstream: { fillTimeout: 5m }\n');
    const f = loadConfig({ file: ok, env: {} });
    assert.equal(f.upstream.fillTimeout, 300_000);
    assert.equal(f.upstream.relayTimeout, 3_600_000);
    await writeFile(ok, 'upstream: { relayTimeout: 2h30m }\n');
    const r = loadConfig({ file: ok, env: {} });
    assert.equal(r.upstream.relayTimeout, 9_000_000);
    assert.equal(r.upstream.fillTimeout, 3_600_000);
    for (const [value, message] of [
      ['soon', /upstream\.relayTimeout: not a duration \(use e\.g\. 30s, 10m, 1h, 60d\): "soon"/],
      ['-5s', /upstream\.relayTimeout: not a duration/],
      ['true', /upstream\.relayTimeout: /],
    ] as const) {
      const bad = join(dir.path, 'bad.yml');
      await writeFile(bad, `upstream: { relayTimeout: ${value} }\n`);
      assert.match(problems(() => loadConfig({ file: bad, env: {} })), message, value);
    }
  });
});
