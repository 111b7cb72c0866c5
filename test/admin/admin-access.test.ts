/**
 * Who may use the admin API. The rule is by the bound address (docs/admin.md): on loopback no
 * credentials, off loopback a bearer admin.token or a user of auth.adminGroup, and no start off
 * loopback without either (a config error naming the key). admin.requireCredentials asks on
 * loopback too, which is how this test exercises the credential checks without leaving loopback.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testConfig } from '../helpers/config.js';
import { run, tempDir } from '../helpers/process.js';
import { startPullthrough } from '../helpers/pullthrough.js';
import { ConfigError } from '../../src/config/index.js';

const TOKEN = 'admin-token-5b1e9f0c2d7a4e3b';
const dirs: Array<{ cleanup(): Promise<void> }> = [];
after(async () => {
  for (const d of dirs) await d.cleanup();
});

test('off loopback without admin.token or auth.adminGroup the config is refused, naming the key', async () => {
  const dir = await tempDir('pullthrough-admin-access-');
  dirs.push(dir);
  for (const admin of ['0.0.0.0:5001', '192.168.10.5:5001', '[::]:5001']) {
    assert.throws(
      () => testConfig(dir.path, { listen: { mirror: '127.0.0.1:5000', admin } }),
      (e: Error) => e instanceof ConfigError && /admin\.token: required: listen\.admin .* is not on loopback/.test(e.message),
      admin,
    );
  }
  // Loopback needs nothing; a token or an admin group opens an off-loopback listener.
  for (const admin of ['127.0.0.1:5001', '127.0.0.2:5001', '[::1]:5001', 'localhost:5001']) testConfig(dir.path, { listen: { mirror: '127.0.0.1:5000', admin } });
  testConfig(dir.path, { listen: { mirror: '127.0.0.1:5000', admin: '0.0.0.0:5001' }, admin: { token: TOKEN } });
  await writeFile(join(dir.path, 'htpasswd'), (await run('htpasswd', ['-Bbn', 'root', 'root-Pa55-9f1e'])).stdout);
  const withGroup = { enabled: true, htpasswd: join(dir.path, 'htpasswd'), groups: { ops: ['root'] }, adminGroup: 'ops' };
  testConfig(dir.path, { listen: { mirror: '127.0.0.1:5000', admin: '0.0.0.0:5001' }, auth: withGroup });
  assert.throws(
    () => testConfig(dir.path, { listen: { mirror: '127.0.0.1:5000', admin: '0.0.0.0:5001' }, auth: { ...withGroup, adminGroup: 'nobody' } }),
    (e: Error) => e instanceof ConfigError && /auth\.adminGroup: group nobody is not defined in auth\.groups/.test(e.message),
  );
  assert.throws(() => testConfig(dir.path, { admin: { token: 'short' } }), (e: Error) => e instanceof ConfigError && /admin\.token: must be at least 16 characters/.test(e.message));
});

test('with credentials required: no or a wrong credential is 401, the token or an admin-group user gets in, another user 403', async (t) => {
  const dir = await tempDir('pullthrough-admin-access-');
  dirs.push(dir);
  const lines: string[] = [];
  for (const [u, p] of [['root', 'root-Pa55-9f1e'], ['dev', 'dev-Pa55-3c2b']]) lines.push((await run('htpasswd', ['-Bbn', u!, p!])).stdout.trim());
  await writeFile(join(dir.path, 'htpasswd'), lines.join('\n') + '\n');
  const pt = await startPullthrough({
    admin: { token: TOKEN, requireCredentials: true },
    auth: { enabled: true, htpasswd: join(dir.path, 'htpasswd'), groups: { ops: ['root'] }, adminGroup: 'ops', tokenSecret: 'test-token-secret-7d1f0c2e9b8a4f6e5d3c2b1a' },
  });
  t.after(() => pt.cleanup());
  const url = `http://127.0.0.1:${pt.ports.admin}/api/v1/usage`;
  const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  const none = await fetch(url);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm="pullthrough admin"/);
  assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}x` } })).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: basic('root', 'wrong') } })).status, 401);
  const dev = await fetch(url, { headers: { authorization: basic('dev', 'dev-Pa55-3c2b') } });
  assert.equal(dev.status, 403);
  assert.equal(((await dev.json()) as { error: { code: string } }).error.code, 'FORBIDDEN');
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.equal((await fetch(url, { headers: { authorization: basic('root', 'root-Pa55-9f1e') } })).status, 200);
  // pullthrough's own bearer token of an admin-group user works too.
  const tok = (await (await fetch(`${pt.url}/token?service=pullthrough`, { headers: { authorization: basic('root', 'root-Pa55-9f1e') } })).json()) as { token: string };
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${tok.token}` } })).status, 200);
  // Credentials never reach the log.
  const log = JSON.stringify(pt.logs());
  for (const secret of [TOKEN, 'root-Pa55-9f1e', 'dev-Pa55-3c2b', tok.token]) assert.ok(!log.includes(secret), 'no credential in the log');
});
