/**
 * The process logger (lines formatted as pino's, pino's asynchronous destination on stdout): the line shape tests and log
 * pipelines read, and no line lost when the process exits right after logging, on SIGTERM (as
 * `pullthrough serve` exits after draining: settle(), then exit) and on a crash (an uncaught
 * exception: pino's exit hook). Each case runs
 * a real Node.js process whose stdout is a pipe, and logs several MB at once so that most of it
 * is still buffered when the process ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino, type DestinationStream } from 'pino';
import { run, startProcess } from '../helpers/process.js';
import { createLogger, isoTime, type LogLevel } from '../../src/observability/logger.js';

const LOGGER = new URL('../../src/observability/logger.js', import.meta.url).href;
const LINES = 20_000;

/** log.flushMs's default: lines go out in batches at least this often. */
const FLUSH_MS = 200;

/** Runs `body` in a fresh Node.js process after `log = createLogger('info', process.stdout, { worker: 3 }, FLUSH_MS)`. */
function runLogging(body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const code = `import { createLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger('info', process.stdout, { worker: 3 }, ${FLUSH_MS});
${body}`;
  return run(process.execPath, ['--input-type=module', '-e', code], { allowFail: true, timeoutMs: 60_000 });
}

const WRITE_ALL = `for (let i = 0; i < ${LINES}; i++) log.info('request', { i, path: '/v2/library/app/blobs/sha256:' + 'ab'.repeat(32), user: undefined, status: 200 });
log.debug('below the level', { i: -1 });`;

function parse(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Every request line written once; `ordered`: in the order logged. */
function assertAllLines(lines: Array<Record<string, unknown>>, ordered: boolean): void {
  const requests = lines.filter((l) => l.msg === 'request');
  assert.equal(requests.length, LINES, 'every line logged before the exit was written');
  const seen = requests.map((l) => l.i as number);
  const all = Array.from({ length: LINES }, (_, i) => i);
  if (ordered) assert.deepEqual(seen, all, 'in order');
  else assert.deepEqual([...seen].sort((x, y) => x - y), all, 'each line once');
  assert.ok(!lines.some((l) => l.msg === 'below the level'), 'debug is below info');
}

test('a line: level by name, ISO time, msg, base fields, the call fields; undefined fields left out', async () => {
  const r = await runLogging(`log.warn('upstream failing', { registry: 'docker.io', status: 503, retryAfter: undefined, nested: { a: 1 } });`);
  assert.equal(r.code, 0, r.stderr);
  const [line, ...rest] = parse(r.stdout);
  assert.equal(rest.length, 0);
  assert.equal(typeof line!.time, 'string');
  assert.ok(Math.abs(Date.parse(line!.time as string) - Date.now()) < 60_000, `time is an ISO timestamp: ${line!.time}`);
  const { time: _t, ...others } = line!;
  assert.deepEqual(others, { level: 'warn', msg: 'upstream failing', worker: 3, registry: 'docker.io', status: 503, nested: { a: 1 } });
});

test('SIGTERM, then settle() and process.exit (as serve does after draining): every buffered line is written, in order', async () => {
  const r = await runLogging(`${WRITE_ALL}
process.on('SIGTERM', () => { log.info('shutting down', { signal: 'SIGTERM' }); void log.settle().then(() => process.exit(0)); });
process.kill(process.pid, 'SIGTERM');
setTimeout(() => {}, 10_000);`);
  assert.equal(r.code, 0, r.stderr);
  const lines = parse(r.stdout);
  assertAllLines(lines, true);
  assert.equal(lines.at(-1)!.msg, 'shutting down');
});

// On a crash nothing can be awaited: pino's exit hook writes the buffer synchronously while a
// chunk may still be in flight on the thread pool, so lines can land out of order (seen for an
// exit without settle(): 0, then a later chunk, then 1…). They must all land.
test('a crash (uncaught exception): every line logged before it is written, and the process still fails', async () => {
  const r = await runLogging(`${WRITE_ALL}
log.error('about to fail', {});
setImmediate(() => { throw new Error('boom'); });`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Error: boom/);
  const lines = parse(r.stdout);
  assertAllLines(lines, false);
  assert.ok(lines.some((l) => l.msg === 'about to fail' && l.level === 'error'));
});

// Lines are written in batches (docs/performance.md); a quiet mirror's lines must still appear
// while it runs, not only when the batch fills or the process exits.
test('a single line of a process that keeps running is written without waiting for more lines or an exit', async () => {
  const code = `import { createLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger('info', process.stdout, undefined, ${FLUSH_MS});
log.info('quiet', { n: 1 });
setTimeout(() => {}, 60_000);`;
  const proc = startProcess(process.execPath, ['--input-type=module', '-e', code]);
  try {
    const deadline = Date.now() + 20_000;
    while (!proc.output().includes('"msg":"quiet"') && Date.now() < deadline && proc.child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    assert.equal(proc.child.exitCode, null, 'still running');
    const lines = parse(proc.output());
    assert.deepEqual(
      lines.map((l) => [l.msg, l.n]),
      [['quiet', 1]],
    );
  } finally {
    await proc.stop();
  }
});

test("the time field is Date's own ISO string, across milliseconds, seconds and days, in any order", () => {
  const start = Date.UTC(2026, 11, 31, 23, 59, 58, 990);
  const times = [0, 1, 9, 10, 99, 100, 999, 1000, 1001, 1010, 2009, 2010, 2011, -5, 86_400_000 + 7, 3].map((d) => start + d);
  for (const t of times) assert.equal(isoTime(t), `,"time":"${new Date(t).toISOString()}"`, `at ${t}`);
});

/** Lines written to a stream other than stdout (synchronously), collected. */
function collected(): { stream: NodeJS.WritableStream; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { stream, lines };
}

// The line is formatted by pullthrough, not by a pino logger (docs/performance.md); log pipelines
// were built on pino's lines, so they are compared text for text, the time field aside.
test("a line is pino's line for the same call, text for text", () => {
  const ours = collected();
  const log = createLogger('debug', ours.stream, { worker: 2 });
  const theirs = collected();
  const p = pino(
    { level: 'debug', base: { worker: 2 }, timestamp: () => isoTime(), formatters: { level: (label) => ({ level: label }) } },
    theirs.stream as unknown as DestinationStream,
  );
  const calls: Array<[LogLevel, string, Record<string, unknown> | undefined]> = [
    ['info', 'request', { door: 'tls', method: 'GET', path: '/v2/library/app/blobs/sha256:' + 'ab'.repeat(32), ns: undefined, status: 200, bytes: 1234, ms: 0.3, aborted: undefined, client: '127.0.0.1' }],
    ['warn', 'quotes "and" \\ back\nslash', { text: 'tab\there, é, \u2028, \u0001', nested: { a: [1, 'two', null, { b: false }] } }],
    ['error', 'numbers', { nan: Number.NaN, inf: Number.POSITIVE_INFINITY, neg: -0.5, big: 2 ** 60 }],
    ['debug', 'no fields', undefined],
    ['info', 'empty fields', {}],
    ['info', 'only undefined', { a: undefined }],
    ['info', 'a date and a function', { at: new Date(0), fn: () => 1 }],
  ];
  for (const [level, msg, fields] of calls) {
    log[level](msg, fields);
    p[level](fields ?? {}, msg);
  }
  const noTime = (l: string): string => l.replace(/,"time":"[^"]*"/, '');
  assert.equal(ours.lines.length, calls.length);
  assert.deepEqual(ours.lines.map(noTime), theirs.lines.map(noTime));
});

test('a field JSON cannot write (a cycle, a BigInt) is written as a string; the line is not lost', () => {
  const c = collected();
  const log = createLogger('info', c.stream);
  const cyclic: Record<string, unknown> = { name: 'a' };
  cyclic.self = cyclic;
  const shared = { x: 1 };
  log.info('odd fields', { n: 10n, cyclic, twice: [shared, shared] });
  assert.equal(c.lines.length, 1);
  const line = JSON.parse(c.lines[0]!) as Record<string, unknown>;
  assert.deepEqual(line.n, '10');
  assert.deepEqual(line.cyclic, { name: 'a', self: '[Circular]' });
  assert.deepEqual(line.twice, [{ x: 1 }, { x: 1 }], 'a value seen twice, not inside itself, is no cycle');
  assert.equal(line.msg, 'odd fields');
});

test('lines below the level are not written', () => {
  const c = collected();
  const log = createLogger('warn', c.stream);
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  assert.deepEqual(
    c.lines.map((l) => (JSON.parse(l) as { level: string }).level),
    ['warn', 'error'],
  );
});
