/**
 * The pure parts of client authentication: globs, the rules engine and its defaults, config
 * validation naming the key, tokens (signature, expiry, type), htpasswd parsing, the token bucket
 * and the token secret file. Real clients are in the other test/auth files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, stat, readFile, chmod } from 'node:fs/promises';
import { writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { compileGlob } from '../../src/util/glob.js';
import { AccessRules, describeRule } from '../../src/auth/rules.js';
import { ANONYMOUS } from '../../src/auth/identity.js';
import { TokenSigner, InvalidTokenError } from '../../src/auth/tokens.js';
import { parseHtpasswd, HtpasswdUsers, HtpasswdError } from '../../src/auth/htpasswd.js';
import { loadTokenSecret, TokenSecretError } from '../../src/auth/token-secret.js';
import { TokenBuckets } from '../../src/util/token-bucket.js';
import { loadConfig, ConfigError, type Config } from '../../src/config/index.js';
import { silentLogger } from '../../src/observability/logger.js';
import { inTempDir, run } from '../helpers/process.js';

test('globs: * stays within a segment, ** crosses, ? is one character, the rest is literal', () => {
  const g = (p: string, s: string): boolean => compileGlob(p).test(s);
  assert.ok(g('mjpitz/*', 'mjpitz/app'));
  assert.ok(!g('mjpitz/*', 'mjpitz/a/b'));
  assert.ok(!g('mjpitz/*', 'mjpitzz/app'));
  assert.ok(g('team/**', 'team/a/b/c'));
  assert.ok(g('team/**', 'team/a'));
  assert.ok(!g('team/**', 'teams/a'));
  assert.ok(g('app-?', 'app-1'));
  assert.ok(!g('app-?', 'app-10'));
  assert.ok(g('a.b+c', 'a.b+c'));
  assert.ok(!g('a.b', 'axb'), 'dots are literal');
  assert.throws(() => compileGlob(''), /empty/);
  assert.throws(() => compileGlob('a/***'), /\*\*\*/);
});

let seq = 0;
/** loadConfig reads a file (synchronously); the YAML shape (JSON is YAML) goes to a temp file per call. */
function loadFrom(doc: Record<string, unknown>): Config {
  const file = join(tmpdir(), `pt-rules-${process.pid}-${seq++}.yml`);
  writeFileSync(file, JSON.stringify(doc));
  try {
    return loadConfig({ file, env: {} });
  } finally {
    rmSync(file, { force: true });
  }
}

function problems(doc: Record<string, unknown>): string {
  try {
    loadFrom(doc);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

test('rules: first match decides, for pull and push; no match denies; anonymous, authenticated, users, groups', async () => {
  await inTempDir(async (dir) => {
    await writeFile(join(dir.path, 'htpasswd'), '');
    const c = loadFrom({
      auth: { enabled: true, htpasswd: join(dir.path, 'htpasswd'), groups: { ci: ['robot'] } },
      rules: [
        { match: 'docker.io/mjpitz/*', pull: ['anonymous'] },
        { match: 'docker.io/blocked/**', pull: [] },
        { match: 'quay.io/team/**', pull: ['alice', 'group:ci'], push: ['group:ci'] },
        { match: '*/shared/**', pull: ['authenticated'] },
      ],
    });
    const r = new AccessRules(c);
    const alice = { user: 'alice', groups: [] };
    const robot = { user: 'robot', groups: ['ci'] };
    const bob = { user: 'bob', groups: [] };
    assert.deepEqual(r.decide('docker.io', 'mjpitz/app', 'pull', ANONYMOUS), { allowed: true, rule: { index: 0, match: 'docker.io/mjpitz/*' }, signInMayHelp: false });
    assert.equal(r.decide('docker.io', 'mjpitz/a/b', 'pull', ANONYMOUS).rule, null, '* does not cross /');
    assert.equal(r.decide('docker.io', 'mjpitz/app', 'push', robot).allowed, false, 'the first matching rule decides push too');
    assert.deepEqual(r.decide('docker.io', 'blocked/x/y', 'pull', robot), { allowed: false, rule: { index: 1, match: 'docker.io/blocked/**' }, signInMayHelp: false });
    assert.equal(r.decide('quay.io', 'team/app', 'pull', alice).allowed, true);
    assert.equal(r.decide('quay.io', 'team/app', 'pull', robot).allowed, true);
    assert.equal(r.decide('quay.io', 'team/app', 'pull', bob).allowed, false);
    assert.equal(r.decide('quay.io', 'team/app', 'push', alice).allowed, false);
    assert.equal(r.decide('quay.io', 'team/app', 'push', robot).allowed, true);
    assert.equal(r.decide('quay.io', 'team/app', 'pull', ANONYMOUS).signInMayHelp, true, 'an anonymous client is told to sign in');
    assert.equal(r.decide('ghcr.io', 'shared/x', 'pull', bob).allowed, true);
    assert.equal(r.decide('ghcr.io', 'shared/x', 'pull', ANONYMOUS).allowed, false);
    assert.deepEqual(r.decide('ghcr.io', 'other/x', 'pull', robot), { allowed: false, rule: null, signInMayHelp: false });
    assert.equal(describeRule({ index: 2, match: 'quay.io/team/**' }), 'rules[2] ("quay.io/team/**")');
    assert.equal(describeRule(null), 'no rule matches (denied by default)');
  });
});

test('rules defaults: without rules everyone may pull and push while auth is off, only signed-in users while it is on', async () => {
  const off = new AccessRules(loadFrom({}));
  assert.deepEqual(off.decide('docker.io', 'library/alpine', 'pull', ANONYMOUS), { allowed: true, rule: { index: null, match: '**' }, signInMayHelp: false });
  assert.equal(off.decide('quay.io', 'a/b', 'push', ANONYMOUS).allowed, true);
  await inTempDir(async (dir) => {
    await writeFile(join(dir.path, 'htpasswd'), '');
    const on = new AccessRules(loadFrom({ auth: { enabled: true, htpasswd: join(dir.path, 'htpasswd') } }));
    assert.deepEqual(on.decide('docker.io', 'library/alpine', 'pull', ANONYMOUS), { allowed: false, rule: { index: null, match: '**' }, signInMayHelp: true });
    assert.equal(on.decide('docker.io', 'library/alpine', 'pull', { user: 'x', groups: [] }).allowed, true);
    assert.equal(describeRule({ index: null, match: '**' }), 'the default rule ("**")');
  });
});

test('config: every new key is validated and the message names it', async () => {
  await inTempDir(async (dir) => {
    const msg = problems({
      auth: { enabled: true, tokenSecret: 'short', tokenTtl: '1s', groups: { 'bad group': ['x'] }, realm: 'ftp://x' },
      rules: [
        { match: 'docker.io', pull: ['anonymous'] },
        { match: 'nowhere.example/**', pull: ['group:ghosts'] },
        { match: 'quay.io/a/***', pull: ['group:'], push: [''] },
        { match: '**', pull: ['anonymous'], surprise: true },
      ],
      rateLimit: { requestsPerSecond: -1, burst: 0 },
      registries: { 'quay.io': { upstream: 'https://quay.io', credentials: [{ match: 'a/***', username: 'u', password: 'p' }, { match: 'b/*', username: 'u' }] } },
    });
    for (const re of [
      /auth\.tokenSecret: must be at least 32 characters/,
      /auth\.groups\."bad group": group names are/,
      /auth\.realm: must be an http\(s\) URL/,
      /rules\[2\]\.pull\[0\]: must be anonymous, authenticated, group:<name> or a user name/,
      /rules\[2\]\.push\[0\]: must be anonymous/,
      /rules\[3\]: unknown key\(s\): surprise/,
      /rateLimit\.requestsPerSecond: /,
      /rateLimit\.burst: /,
      /registries\."quay\.io"\.credentials\[0\]\.match: not a repository pattern: "\*\*\*"/,
      /registries\."quay\.io"\.credentials\[1\]\.password: /,
    ]) {
      assert.match(msg, re);
    }
    // Problems found after the schema (they need the whole config) are reported by key too.
    const msg2 = problems({
      auth: { enabled: true, tokenTtl: '1s' },
      rules: [
        { match: 'nowhere.example/**', pull: ['group:ghosts'] },
        { match: 'quay.io/a/***', pull: ['anonymous'] },
        { match: 'docker.io', pull: ['anonymous'] },
      ],
    });
    assert.match(msg2, /auth\.htpasswd: required when auth\.enabled is true/);
    assert.match(msg2, /auth\.tokenTtl: must be between 10s and 24h/);
    assert.match(msg2, /rules\[0\]\.match: registry nowhere\.example is not configured/);
    assert.match(msg2, /rules\[0\]\.pull\[0\]: group ghosts is not defined in auth\.groups/);
    assert.match(msg2, /rules\[1\]\.match: "\*\*\*" is not a pattern/);
    assert.match(msg2, /rules\[2\]\.match: must be <registry>\/<repository pattern>/);
    const msg3 = problems({ auth: { htpasswd: join(dir.path, 'missing') }, rules: [{ match: '**', pull: ['alice'] }] });
    assert.match(msg3, /auth\.htpasswd: cannot read .*missing/);
    assert.match(msg3, /rules\[0\]\.pull\[0\]: alice never matches while auth\.enabled is false/);
    // The token secret can come from the environment (a Kubernetes Secret), and names its variable.
    assert.equal(loadConfig({ env: { PULLTHROUGH_AUTH_TOKEN_SECRET: 'x'.repeat(40) } }).auth.tokenSecret, 'x'.repeat(40));
    assert.throws(() => loadConfig({ env: { PULLTHROUGH_AUTH_TOKEN_SECRET: 'short' } }), /auth\.tokenSecret \(from PULLTHROUGH_AUTH_TOKEN_SECRET\): must be at least 32/);
  });
});

test('tokens: signed with the secret, typed, expiring; anything else is refused with the reason', () => {
  const secret = Buffer.from('s'.repeat(32));
  const signer = new TokenSigner(secret);
  const { token, expiresIn } = signer.sign('alice', 'access', 300_000, 'fp');
  assert.equal(expiresIn, 300);
  assert.equal(signer.verify(token, 'access').sub, 'alice');
  assert.throws(() => signer.verify(token, 'refresh'), InvalidTokenError);
  assert.throws(() => new TokenSigner(Buffer.from('t'.repeat(32))).verify(token, 'access'), /bad token signature/);
  const [h, p] = token.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
  const forge = (c: object, key = secret): string => {
    const body = Buffer.from(JSON.stringify(c)).toString('base64url');
    return `${h}.${body}.${createHmac('sha256', key).update(`${h}.${body}`).digest('base64url')}`;
  };
  assert.throws(() => signer.verify(forge({ ...claims, exp: Math.floor(Date.now() / 1000) - 1 }), 'access'), /token expired/);
  assert.throws(() => signer.verify(forge({ ...claims, aud: 'someone-else' }), 'access'), /not issued for pullthrough/);
  assert.equal(signer.verify(forge({ ...claims, sub: 'root' }), 'access').sub, 'root', 'a token signed with the secret is trusted: the secret must stay secret');
  assert.throws(() => signer.verify(`${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'root' })).toString('base64url')}.${token.split('.')[2]}`, 'access'), /bad token signature/);
  const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
  assert.throws(() => signer.verify(`${none}.${p}.`, 'access'), /not a pullthrough token/);
  assert.throws(() => signer.verify('x'.repeat(5000), 'access'), /too long/);
});

test('htpasswd: bcrypt entries from htpasswd -B; other hashes, reserved and repeated names refused by line', async () => {
  await inTempDir(async (dir) => {
    const a = (await run('htpasswd', ['-Bbn', 'alice', 'alice-pw'])).stdout.trim();
    const md5 = (await run('htpasswd', ['-mbn', 'bob', 'bob-pw'])).stdout.trim();
    const users = parseHtpasswd(`# comment\n\n${a}\n`, 'f');
    assert.deepEqual([...users.keys()], ['alice']);
    assert.throws(() => parseHtpasswd(`${a}\n${md5}\n`, 'f'), (e: Error) => e instanceof HtpasswdError && /f line 2: user bob: only bcrypt entries are supported/.test(e.message));
    assert.throws(() => parseHtpasswd(`${a}\n${a}\n`, 'f'), /line 2: user alice appears twice/);
    assert.throws(() => parseHtpasswd(a.replace('alice', 'anonymous'), 'f'), /anonymous is reserved/);
    const file = join(dir.path, 'htpasswd');
    await writeFile(file, a + '\n');
    const u = await HtpasswdUsers.open(file, silentLogger);
    assert.equal((await u.verify('alice', 'alice-pw'))?.name, 'alice');
    assert.equal(await u.verify('alice', 'wrong'), undefined);
    assert.equal(await u.verify('nobody', 'x'), undefined);
    // A changed password changes the fingerprint tokens carry.
    const before = (await u.lookup('alice'))!.fingerprint;
    await writeFile(file, (await run('htpasswd', ['-Bbn', 'alice', 'new-pw'])).stdout.trim() + '\n' + (await run('htpasswd', ['-Bbn', 'carol', 'c-pw'])).stdout);
    await new Promise((r) => setTimeout(r, 2100));
    assert.equal(await u.verify('alice', 'alice-pw'), undefined, 'the old password stops working once the file changed');
    assert.equal((await u.verify('carol', 'c-pw'))?.name, 'carol');
    assert.notEqual((await u.lookup('alice'))!.fingerprint, before);
  });
});

test('token bucket: burst, then one per 1/rate seconds, with the wait in whole seconds', () => {
  const b = new TokenBuckets(2, 3, 2);
  const t0 = 1_000_000;
  assert.deepEqual([b.take('a', t0), b.take('a', t0), b.take('a', t0)], [0, 0, 0]);
  assert.equal(b.take('a', t0), 1);
  assert.equal(b.take('a', t0 + 500), 0, 'refilled at 2/s');
  assert.equal(b.take('b', t0), 0, 'another client has its own bucket');
  b.take('c', t0);
  assert.equal(b.take('a', t0 + 500), 0, 'the map is bounded: a forgotten client starts with a full bucket');
});

test('token secret file: created once with mode 0600, reused, refused when others can read it', async () => {
  await inTempDir(async (dir) => {
    const c = loadFrom({ dataDir: join(dir.path, 'data') });
    const s1 = await loadTokenSecret(c);
    const file = c.paths.tokenSecret;
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.ok(s1.length >= 32);
    assert.deepEqual(await loadTokenSecret(c), s1, 'the same secret after a restart');
    assert.equal((await readFile(file, 'utf8')).trim(), s1.toString());
    await chmod(file, 0o644);
    await assert.rejects(loadTokenSecret(c), (e: Error) => e instanceof TokenSecretError && /readable by other users \(mode 644\)/.test(e.message));
    const fromConfig = await loadTokenSecret(loadFrom({ auth: { tokenSecret: 'k'.repeat(32) } }));
    assert.equal(fromConfig.toString(), 'k'.repeat(32));
  });
});

