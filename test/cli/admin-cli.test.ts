/**
 * The admin subcommands of the built CLI (dist/src/main.js) against a running instance: real
 * skopeo pulls through a real docker-registry, then `images`, `usage`, `status`, `purge`, `pin`,
 * `unpin`, `prefetch` (JSON lines when not on a terminal) and `offline`, in tables and with --json;
 * exit 0 done, 1 failed / unreachable / refused, 2 usage errors; the instance found through
 * --admin, PULLTHROUGH_ADMIN_URL or listen.admin of --config.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from '../helpers/images.js';
import { startPullthrough, MAIN, NODE_FLAGS, type Pullthrough } from '../helpers/pullthrough.js';
import { skopeoCopy } from '../helpers/clients.js';
import { freePort, run, tempDir } from '../helpers/process.js';

let up: Upstream;
let pt: Pullthrough;
let one: PushResult;
let two: PushResult;
let dir: { path: string; cleanup(): Promise<void> };

before(async () => {
  up = await startUpstreamRegistry();
  one = await pushImage(up, 'team/one', 'v1', await makeImage({ format: 'oci', seed: 'admin-cli-one' }));
  two = await pushImage(up, 'team/two', 'v1', await makeImage({ format: 'oci-index', seed: 'admin-cli-two' }));
  pt = await startPullthrough({ registries: { 'up.test': { upstream: up.url } }, defaultRegistry: 'up.test' });
  dir = await tempDir('pullthrough-admin-cli-');
  const r = await skopeoCopy(`${pt.host}/team/one:v1`, 'dir', { tlsVerify: false });
  assert.equal(r.code, 0, r.stderr);
  await r.cleanup();
});
after(async () => {
  await pt?.cleanup();
  await up?.stop();
  await dir?.cleanup();
});

const admin = (): string => `http://127.0.0.1:${pt.ports.admin}`;
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [...NODE_FLAGS, MAIN, ...args], { cwd: dir.path, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, allowFail: true });
}

test('images and usage: a table for people, JSON for scripts; the instance named by --admin, the environment or --config', async () => {
  const table = await cli(['images', '--admin', admin()]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0]!, /^IMAGE\s+DIGEST\s+PLATFORMS\s+SIZE\s+BLOBS\s+LAST PULLED\s+PINNED$/);
  assert.match(lines[1]!, new RegExp(`^up\\.test/team/one:v1\\s+${one.manifestDigest.slice(7, 19)}\\s+-\\s+\\S+ \\S+\\s+${one.blobs.length}/${one.blobs.length}\\s+\\d+s ago`));
  const viaEnv = await cli(['images', '--json'], { PULLTHROUGH_ADMIN_URL: admin() });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  const images = (JSON.parse(viaEnv.stdout) as { images: Array<{ repo: string; digest: string }> }).images;
  assert.deepEqual(images.map((i) => [i.repo, i.digest]), [['team/one', one.manifestDigest]]);
  // listen.admin of a config file (the instance's own says port 0: name the port it got).
  const cfg = join(dir.path, 'admin.yml');
  await writeFile(cfg, stringify({ listen: { mirror: '127.0.0.1:0', admin: `127.0.0.1:${pt.ports.admin}` } }));
  const viaConfig = await cli(['--config', cfg, 'usage', '--json']);
  assert.equal(viaConfig.code, 0, viaConfig.stderr);
  const usage = JSON.parse(viaConfig.stdout) as { usedBytes: number; blobs: number };
  assert.equal(usage.usedBytes, one.blobs.reduce((n, b) => n + b.size, 0));
  assert.equal(usage.blobs, one.blobs.length);
  const human = await cli(['usage', '--admin', admin()]);
  assert.match(human.stdout, /^used\s+\S+ \S+ \(no cache\.maxSize\)\ncontent\s+1 images, 1 manifests, \d+ blobs\n/);
  const glob = await cli(['images', 'other/*', '--admin', admin()]);
  assert.equal(glob.stdout, 'no cached images match other/*\n');
});

test('status, pin, unpin and purge of a reference as users write it; the next pull downloads again', async () => {
  const status = await cli(['status', 'team/one:v1', '--admin', admin()]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^up\.test\/team\/one:v1\n {2}cached {5}yes\n {2}digest {5}sha256:/);
  assert.equal((status.stdout.match(/ cached$/gm) ?? []).length, one.blobs.length);
  const notCached = await cli(['status', 'up.test/team/two:v1', '--admin', admin(), '--json']);
  assert.equal(notCached.code, 0);
  assert.equal((JSON.parse(notCached.stdout) as { cached: boolean }).cached, false);
  const pin = await cli(['pin', 'team/one:v1', '--admin', admin()]);
  assert.equal(pin.code, 0, pin.stderr);
  assert.match(pin.stdout, new RegExp(`^pinned up\\.test/team/one:v1 \\(${one.manifestDigest.slice(7, 19)}: ${one.blobs.length} blobs, `));
  assert.match((await cli(['images', '--admin', admin()])).stdout, /\byes\n$/);
  const refused = await cli(['purge', 'team/one:v1', '--admin', admin()]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^pullthrough purge: up\.test\/team\/one:v1 is pinned; unpin it first .*\(PINNED\)\n$/);
  assert.equal((await cli(['unpin', 'team/one:v1', '--admin', admin()])).stdout, 'unpinned up.test/team/one:v1\n');
  const purged = await cli(['purge', 'team/one:v1', '--admin', admin()]);
  assert.equal(purged.code, 0, purged.stderr);
  assert.match(purged.stdout, new RegExp(`^purged 1 tags, 1 manifests, ${one.blobs.length} blobs \\(\\S+ \\S+\\)\\n  up\\.test/team/one:v1\\n$`));
  up.resetLog();
  const r = await skopeoCopy(`${pt.host}/team/one:v1`, 'dir', { tlsVerify: false });
  assert.equal(r.code, 0, r.stderr);
  await r.cleanup();
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), one.blobs.length);
});

test('prefetch from arguments and -f FILE prints JSON lines off a terminal; then a pull downloads no blob', async () => {
  const file = join(dir.path, 'images.txt');
  await writeFile(file, '# rollout\nteam/two:v1\n\n');
  up.resetLog();
  const r = await cli(['prefetch', '-f', file, '--platform', 'linux/amd64', '--admin', admin()]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ref: string; state: string; layersDone: number; layersTotal: number; bytesDone: number; bytesTotal: number });
  const last = lines.at(-1)!;
  const amd64 = two.manifests.find((m) => m.platform.architecture === 'amd64')!;
  assert.equal(last.ref, 'up.test/team/two:v1');
  assert.equal(last.state, 'done');
  assert.equal(last.layersTotal, amd64.layers.length + 1);
  assert.equal(last.layersDone, last.layersTotal);
  assert.equal(last.bytesDone, last.bytesTotal);
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), amd64.layers.length + 1, 'the amd64 blobs only');
  up.resetLog();
  const pull = await skopeoCopy(`${pt.host}/team/two:v1`, 'dir', { tlsVerify: false, os: 'linux', arch: 'amd64' });
  assert.equal(pull.code, 0, pull.stderr);
  await pull.cleanup();
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), 0);
  // A reference upstream does not have: the job fails, exit 1 with the upstream's answer.
  const missing = await cli(['prefetch', 'team/none:v1', '--admin', admin()]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^pullthrough prefetch: 1 of 1 image\(s\) failed: up\.test\/team\/none:v1: /);
});

test('prefetch on a terminal draws a progress bar per image with bytes and layers', async () => {
  // script(1) gives the CLI a pseudo-terminal, as a user's shell would.
  const cmd = [process.execPath, ...NODE_FLAGS, MAIN, 'prefetch', 'team/one:v1', 'team/two:v1', '--admin', admin()].map((a) => `'${a}'`).join(' ');
  const r = await run('script', ['-qefc', cmd, '/dev/null'], { cwd: dir.path, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TERM: 'dumb' }, allowFail: true });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const final = r.stdout.split(/\r?\n/).map((l) => l.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''));
  assert.ok(!r.stdout.includes('{"job"'), 'no JSON lines on a terminal');
  for (const ref of ['up.test/team/one:v1', 'up.test/team/two:v1']) {
    assert.ok(
      final.some((l) => new RegExp(`^${ref.replace(/[./]/g, '\\$&')}  \\[#{24}\\] 100%  \\S+ \\S+/\\S+ \\S+  layers (\\d+)/\\1  done$`).test(l)),
      `a full bar for ${ref} in:\n${final.join('\n')}`,
    );
  }
});

test('offline REGISTRY on|off', async () => {
  const on = await cli(['offline', 'up.test', 'on', '--admin', admin()]);
  assert.equal(on.stdout, 'up.test is offline (served from the cache only) on this instance\n');
  const off = await cli(['offline', 'up.test', 'off', '--admin', admin(), '--json']);
  assert.deepEqual(JSON.parse(off.stdout), { registry: 'up.test', offline: false, changed: true, scope: 'instance' });
  const bad = await cli(['offline', 'up.test', 'maybe', '--admin', admin()]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^pullthrough offline: unknown mode maybe: on, off\n/);
});

test('exit 2 for usage errors, 1 when the instance is unreachable or refuses, with a message that says what to do', async () => {
  const cases: Array<[string[], number, RegExp]> = [
    [['status', 'Team/One:v1', '--admin', admin()], 2, /^pullthrough status: Team\/One:v1: invalid repository name/],
    [['images', 'team/***', '--admin', admin()], 2, /^pullthrough images: repo "team\/\*\*\*": .*\(INVALID_GLOB\)/],
    [['purge', '--older-than', 'soon', '--admin', admin()], 2, /^pullthrough purge: --older-than: not a duration/],
    [['purge', 'team/one:v1', '--repo', 'team/one', '--admin', admin()], 2, /^pullthrough purge: name exactly one of/],
    [['pin', 'team/never:v1', '--admin', admin()], 1, /^pullthrough pin: up\.test\/team\/never:v1 is not cached: nothing to pin\. Prefetch it first .*\(NOT_CACHED\)/],
    [['prefetch', '--admin', admin()], 2, /^pullthrough prefetch: name at least one REF/],
    [['usage', '--admin', 'ftp://x'], 2, /^pullthrough usage: --admin: an http:\/\/ or https:\/\/ URL/],
  ];
  for (const [args, code, message] of cases) {
    const r = await cli(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  const port = await freePort();
  const down = await cli(['usage', '--admin', `http://127.0.0.1:${port}`]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, new RegExp(`^pullthrough usage: cannot reach the admin API at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED\\. Is pullthrough running there\\?`));
  const offConfig = join(dir.path, 'off.yml');
  await writeFile(offConfig, stringify({ listen: { admin: null } }));
  const off = await cli(['images', '--config', offConfig]);
  assert.equal(off.code, 2);
  assert.match(off.stderr, /listen\.admin is off in the configuration; name the instance with --admin URL/);
});

test('an instance that asks for credentials: refused without them (exit 1, says which), served with PULLTHROUGH_ADMIN_TOKEN', async (t) => {
  const token = 'cli-admin-token-0123456789';
  const guarded = await startPullthrough({ admin: { token, requireCredentials: true } });
  t.after(() => guarded.cleanup());
  const url = `http://127.0.0.1:${guarded.ports.admin}`;
  const no = await cli(['usage', '--admin', url]);
  assert.equal(no.code, 1);
  assert.match(no.stderr, /refused \(401 UNAUTHORIZED\).*give PULLTHROUGH_ADMIN_TOKEN/);
  const wrong = await cli(['usage', '--admin', url], { PULLTHROUGH_ADMIN_TOKEN: 'wrong-token-0123456789' });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /the credentials given were refused/);
  const yes = await cli(['usage', '--admin', url, '--json'], { PULLTHROUGH_ADMIN_TOKEN: token });
  assert.equal(yes.code, 0, yes.stderr);
  assert.equal((JSON.parse(yes.stdout) as { blobs: number }).blobs, 0);
  assert.ok(!yes.stderr.includes(token) && !no.stderr.includes(token));
});
