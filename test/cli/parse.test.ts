/**
 * The command-line parser against a small in-process table shaped like the coming admin commands
 * (a global string option, a command with a repeatable option, a variadic argument): what each
 * command line parses to, and the UsageError (exit 2) each mistake gets, naming what is wrong.
 * The real `pullthrough` binary is run in test/client-setup/cli-parse.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, usage, commandUsage, UsageError, type CommandTable, type Parsed } from '../../src/cli/parse.js';

const noop = (): void => undefined;
const TABLE: CommandTable = {
  program: 'tool',
  globalOptions: {
    admin: { type: 'string', value: 'URL', description: 'admin API' },
    json: { type: 'boolean', description: 'JSON output' },
    help: { type: 'boolean', short: 'h', description: 'help' },
    version: { type: 'boolean', short: 'V', description: 'version' },
  },
  commands: [
    {
      name: 'prefetch',
      summary: ['fetch images into the cache'],
      args: [{ name: 'REF', variadic: true }],
      options: {
        file: { type: 'string', short: 'f', value: 'FILE', multiple: true, description: 'refs from a file' },
        platform: { type: 'string', value: 'P', description: 'platform' },
      },
      run: noop,
    },
    { name: 'status', summary: ['one image'], args: [{ name: 'REF', required: true }], run: noop },
    { name: 'offline', summary: ['offline mode'], args: [{ name: 'REGISTRY', required: true }, { name: 'STATE', required: true, choices: ['on', 'off'], noun: 'state' }], run: noop },
  ],
  footer: 'Exit status: 0, 1, 2.',
};

function ran(argv: string[]): { command: string; values: Record<string, unknown>; args: string[] } {
  const p: Parsed = parse(TABLE, argv, {});
  assert.equal(p.kind, 'run', argv.join(' '));
  if (p.kind !== 'run') throw new Error('unreachable');
  return { command: p.invocation.command, values: { ...p.invocation.values }, args: p.invocation.args };
}

function usageError(argv: string[]): string {
  try {
    parse(TABLE, argv, {});
  } catch (err) {
    assert.ok(err instanceof UsageError, `${argv.join(' ')}: ${String(err)}`);
    assert.equal(err.exitCode, 2);
    return err.message;
  }
  assert.fail(`${argv.join(' ')} parsed without an error`);
}

test('global options work before and after the command, as --opt value and --opt=value', () => {
  for (const argv of [
    ['--admin', 'http://a:9', '--json', 'status', 'r:1'],
    ['status', 'r:1', '--admin', 'http://a:9', '--json'],
    ['--admin=http://a:9', 'status', '--json', 'r:1'],
  ]) {
    assert.deepEqual(ran(argv), { command: 'status', values: { admin: 'http://a:9', json: true }, args: ['r:1'] }, argv.join(' '));
  }
});

test('a repeated option keeps every value in order; a variadic argument takes the rest; -- ends options', () => {
  const r = ran(['prefetch', 'a:1', '-f', 'one.txt', 'b:2', '--file=two.txt', '--platform', 'linux/arm64', '--', '--c:3']);
  assert.deepEqual(r, { command: 'prefetch', values: { file: ['one.txt', 'two.txt'], platform: 'linux/arm64' }, args: ['a:1', 'b:2', '--c:3'] });
  assert.deepEqual(ran(['prefetch']).args, []);
});

test('mistakes are UsageErrors that name the option, argument or command', () => {
  assert.match(usageError(['status', 'r', '--nope']), /^tool status: Unknown option '--nope'/);
  assert.match(usageError(['--nope', 'status', 'r']), /Unknown option '--nope'/);
  // A command's own option is unknown to the others.
  assert.match(usageError(['status', 'r', '--platform', 'x']), /^tool status: Unknown option '--platform'/);
  assert.match(usageError(['prefetch', '--platform']), /^tool prefetch: Option '--platform <value>' argument missing/);
  assert.match(usageError(['status', 'r', '--admin']), /Option '--admin <value>' argument missing/);
  assert.match(usageError(['--admin']), /^tool: Option '--admin <value>' argument missing/);
  assert.equal(usageError(['frob']), 'tool: unknown command frob');
  assert.equal(usageError(['status']), 'tool status: missing argument REF');
  assert.equal(usageError(['status', 'a', 'b']), 'tool status: unexpected argument b');
  assert.equal(usageError(['offline', 'quay.io']), 'tool offline: name a state: on, off');
  assert.equal(usageError(['offline', 'quay.io', 'maybe']), 'tool offline: unknown state maybe: on, off');
  // A boolean option does not take a value.
  assert.match(usageError(['status', 'r', '--json=yes']), /--json/);
});

test('--help gives the command\'s help, or all commands\' without one; --version wins', () => {
  assert.deepEqual(parse(TABLE, ['status', '--help'], {}), { kind: 'help', command: TABLE.commands[1] });
  assert.deepEqual(parse(TABLE, ['-h'], {}), { kind: 'help' });
  assert.deepEqual(parse(TABLE, [], {}), { kind: 'help' });
  assert.deepEqual(parse(TABLE, ['frob', '-V'], {}), { kind: 'version' });
  const all = usage(TABLE);
  assert.match(all, /^ {2}prefetch \[REF\]… +fetch images into the cache$/m);
  assert.match(all, /^ {2}offline REGISTRY STATE +offline mode$/m);
  assert.match(all, /^ {6}--admin URL +admin API$/m);
  const one = commandUsage(TABLE, TABLE.commands[0]);
  assert.match(one, /^usage: tool prefetch \[REF\]… \[options\]$/m);
  assert.match(one, /^ {2}-f, --file FILE +refs from a file \(repeatable\)$/m);
  assert.match(one, /--admin URL/);
  assert.doesNotMatch(all, /--platform/);
});
