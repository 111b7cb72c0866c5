/**
 * The built command line, run as users run it: --version, `setup coredns` (as the README's table
 * says) and `coredns` without dns.answer, and usage errors. Exit status: 0 ok, 2 usage or config.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { run, tempDir } from '../helpers/process.js';
import { MAIN, NODE_FLAGS } from '../helpers/pullthrough.js';

let tmp: { path: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await tempDir();
});
after(async () => tmp?.cleanup());

/** Runs `pullthrough ARGS` in the temp dir (so a default dataDir lands there), without the caller's PULLTHROUGH_* variables. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [...NODE_FLAGS, MAIN, ...args], { cwd: tmp.path, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, allowFail: true });
}

function configFile(name: string, doc: Record<string, unknown>): string {
  const file = join(tmp.path, name);
  writeFileSync(file, stringify({ dataDir: join(tmp.path, 'data'), ...doc }));
  return file;
}

test('--version, -V and `version` print the version of package.json', async () => {
  const repo = fileURLToPath(new URL('../../../', import.meta.url));
  const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
  assert.match(version, /^\d+\.\d+\.\d+/);
  for (const args of [['--version'], ['-V'], ['version']]) {
    const r = await cli(args);
    assert.equal(r.code, 0, args.join(' '));
    assert.equal(r.stdout, `pullthrough ${version}\n`);
    assert.equal(r.stderr, '');
  }
});

test('`setup coredns` prints the same CoreDNS block as `coredns`, for the addresses in dns.answer', async () => {
  const file = configFile('dns.yml', { dns: { answer: ['10.96.0.53'] }, registries: { 'registry.example.com': { upstream: 'https://registry.example.com' } } });
  const a = await cli(['setup', 'coredns', '--config', file]);
  const b = await cli(['coredns', '--config', file]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.match(a.stdout, /^hosts \{\n {4}10\.96\.0\.53 (\S+ )*docker\.io (\S+ )*registry\.example\.com\b/);
  assert.match(a.stdout, /\bregistry-1\.docker\.io\b/);
  // The environment variable works as well as the file.
  const env = await cli(['setup', 'coredns'], { PULLTHROUGH_DNS_ANSWER: '10.0.0.5,fd00::5' });
  assert.equal(env.code, 0, env.stderr);
  assert.match(env.stdout, /\n {4}10\.0\.0\.5 /);
  assert.match(env.stdout, /\n {4}fd00::5 /);
});

test('`coredns` and `setup coredns` without dns.answer say what to set, and exit 2', async () => {
  for (const args of [['coredns'], ['setup', 'coredns']]) {
    const r = await cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^pullthrough ${args.join(' ')}: dns\\.answer is not set`));
    assert.match(r.stderr, /PULLTHROUGH_DNS_ANSWER=/);
  }
});

test('usage errors name the problem and exit 2; help exits 0', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['setup'], /pullthrough setup: name a client: docker, containerd, podman, hosts, systemd, coredns/],
    [['setup', 'kubelet'], /pullthrough setup: unknown client kubelet: docker, .*coredns/],
    [['setup', 'docker', 'extra'], /pullthrough setup: unexpected argument extra/],
    [['coredns', 'extra'], /pullthrough coredns: unexpected argument extra/],
    [['frobnicate'], /pullthrough: unknown command frobnicate/],
    [['serve', '--no-such-flag'], /Unknown option '--no-such-flag'/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
  const help = await cli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--version/);
  assert.match(help.stdout, /coredns .*needs dns\.answer/);
});
