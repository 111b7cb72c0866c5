/**
 * The built `pullthrough` command line's parser, run as users run it: options before or after the
 * subcommand and as --opt=value give the same result; unknown options, missing option values and
 * unknown commands exit 2 with a message naming them and the usage, printing nothing on stdout;
 * `COMMAND --help` and `help COMMAND` print that command's help and exit 0.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { run, tempDir } from '../helpers/process.js';
import { MAIN, NODE_FLAGS } from '../helpers/pullthrough.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let dnsConfig: string;
before(async () => {
  tmp = await tempDir();
  dnsConfig = join(tmp.path, 'dns.yml');
  writeFileSync(dnsConfig, stringify({ dataDir: join(tmp.path, 'data'), dns: { answer: ['10.96.0.53'] } }));
});
after(async () => tmp?.cleanup());

/** Runs `pullthrough ARGS` in the temp dir, without the caller's PULLTHROUGH_* variables. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [...NODE_FLAGS, MAIN, ...args], { cwd: tmp.path, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, allowFail: true });
}

test('--config before or after the subcommand, as -c, --config FILE or --config=FILE, reads the same file', async () => {
  const outputs = new Set<string>();
  for (const args of [
    ['--config', dnsConfig, 'coredns'],
    ['coredns', '--config', dnsConfig],
    ['coredns', `--config=${dnsConfig}`],
    ['-c', dnsConfig, 'setup', 'coredns'],
    ['setup', '-c', dnsConfig, 'coredns'],
  ]) {
    const r = await cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /^hosts \{\n {4}10\.96\.0\.53 /, args.join(' '));
    outputs.add(r.stdout);
  }
  assert.equal(outputs.size, 1);
});

test('command-line mistakes exit 2 naming the option or command, followed by the usage', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['coredns', '--bogus'], /^pullthrough coredns: Unknown option '--bogus'/],
    [['--bogus', 'coredns'], /^pullthrough( coredns)?: Unknown option '--bogus'/],
    [['setup', 'docker', '-x'], /^pullthrough setup: Unknown option '-x'/],
    [['coredns', '--config'], /^pullthrough coredns: Option '-c, --config <value>' argument missing/],
    [['--config'], /^pullthrough: Option '-c, --config <value>' argument missing/],
    [['coredns', '--version=1'], /--version/],
    // purge is a command now (issue 19): without what to purge it is a usage error of its own.
    [['purge'], /^pullthrough purge: name exactly one of REF, --repo REPO, --older-than DURATION\n/],
    [['vacuum'], /^pullthrough: unknown command vacuum\n/],
    [['--config', dnsConfig, 'frobnicate'], /^pullthrough: unknown command frobnicate\n/],
    [['help', 'frobnicate'], /^pullthrough: unknown command frobnicate\n/],
    [['serve', 'now'], /^pullthrough serve: unexpected argument now\n/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
    assert.match(r.stderr, /\n\nusage: pullthrough <command>/, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('`COMMAND --help` and `help COMMAND` print that command\'s help; --help lists every command', async () => {
  const a = await cli(['setup', '--help']);
  const b = await cli(['help', 'setup']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.match(a.stdout, /^usage: pullthrough setup CLIENT \[options\]\n/);
  assert.match(a.stdout, /docker\|containerd\|podman\|hosts\|systemd/);
  assert.match(a.stdout, /-c, --config FILE/);
  assert.doesNotMatch(a.stdout, /^ {2}serve /m);
  const all = await cli(['--help']);
  assert.equal(all.code, 0);
  for (const name of ['serve', 'ca', 'setup CLIENT', 'coredns', 'version', 'help']) assert.match(all.stdout, new RegExp(`^ {2}${name} `, 'm'), name);
  assert.match(all.stdout, /pullthrough COMMAND --help/);
});
