/**
 * bench:summary's reading of kept runs: figures out of cells, medians, who did better run by run,
 * and which runs it picks. Synthetic runs: the bench itself takes ~16 min and is not part of the
 * suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { figureOf, loadRuns, saveRun, summarize, type BenchRun } from './summary.js';

const ROWS: BenchRun['rows'] = [
  { key: 'http16', label: 'warm blob, HTTP, 16 clients (MB/s)', better: 'higher' },
  { key: 'coldratio', label: 'cold pull / direct', better: 'lower' },
  { key: 'tlsvia', label: 'TLS terminated by' },
  { key: 'hang', label: 'cached tag while the upstream hangs (s)', better: 'lower' },
];

function run(finished: string, pt: Record<string, string>, nginx: Record<string, string>, extra: BenchRun['columns'] = []): BenchRun {
  return {
    version: 1,
    finished,
    only: null,
    quick: false,
    machine: '2 cores (test)',
    rows: ROWS,
    columns: [{ key: 'pt-fs', label: 'pullthrough fs + file', cells: pt }, ...extra, { key: 'nginx', label: 'nginx', cells: nginx }],
  };
}

/** The table's row for `label`, as its cells. */
function rowOf(table: string, label: string): string[] {
  const line = table.split('\n').find((l) => l.startsWith(`| ${label} |`));
  assert.ok(line, `no row ${label} in:\n${table}`);
  return line.split('|').slice(2, -1).map((c) => c.trim());
}

test('bench summary: the figure of a cell is its leading number; a cap is beyond every figure; dashes are none', () => {
  assert.equal(figureOf('1.13×'), 1.13);
  assert.equal(figureOf('0.29 / 0.10'), 0.29);
  assert.equal(figureOf('171 (+ s3rver & redis 224)'), 171);
  assert.equal(figureOf('> 60 s'), Infinity);
  assert.equal(figureOf('–'), undefined);
  assert.equal(figureOf('n/a (door not available)'), undefined);
  assert.equal(figureOf(undefined), undefined);
});

test('bench summary: each cell run by run with its median, and in how many runs pullthrough did better than nginx', () => {
  const runs = [
    run('2026-12-07T03:23:46.000Z', { http16: '1944', coldratio: '1.13×', tlsvia: 'own (TLS door)', hang: '1.00' }, { http16: '2095', coldratio: '1.15×', tlsvia: 'own (nginx ssl)', hang: '> 60 s' }),
    run('2026-12-07T03:39:54.000Z', { http16: '1844', coldratio: '1.14×', tlsvia: 'own (TLS door)', hang: '1.00' }, { http16: '2043', coldratio: '1.13×', tlsvia: 'own (nginx ssl)', hang: '> 60 s' }),
    run('2026-12-07T03:55:19.000Z', { http16: '2669', coldratio: '1.15×', tlsvia: 'own (TLS door)', hang: '1.01' }, { http16: '2207', coldratio: '1.15×', tlsvia: 'own (nginx ssl)', hang: '> 60 s' }),
  ];
  const table = summarize(runs);
  const http16 = rowOf(table, 'warm blob, HTTP, 16 clients (MB/s)');
  assert.deepEqual(http16, ['1944 · 1844 · 2669 (median 1944)', '2095 · 2043 · 2207 (median 2095)', 'better in 1 of 3']);
  // Lower is better here, and a tie (run 3) meets "at most nginx's".
  const cold = rowOf(table, 'cold pull / direct');
  assert.deepEqual(cold, ['1.13× · 1.14× · 1.15× (median 1.14)', '1.15× · 1.13× · 1.15× (median 1.15)', 'better in 2 of 3']);
  // A capped figure loses to any measured one and its median says so.
  assert.deepEqual(rowOf(table, 'cached tag while the upstream hangs (s)'), ['1.00 · 1.00 · 1.01 (median 1.00)', '> 60 s · > 60 s · > 60 s (median capped)', 'better in 3 of 3']);
  // Not a measure: the cells as they were, no median, no comparison.
  assert.deepEqual(rowOf(table, 'TLS terminated by'), ['own (TLS door) · own (TLS door) · own (TLS door)', 'own (nginx ssl) · own (nginx ssl) · own (nginx ssl)', '–']);
  assert.match(table, /3 run\(s\), 2026-12-07T03:23:46.000Z to 2026-12-07T03:55:19.000Z/);
  assert.doesNotMatch(table, /compare with care/);
});

test('bench summary: a column missing from some runs shows a dash there; runs that measured different things are flagged', () => {
  const base = { key: 'pt-base', label: 'baseline', cells: { http16: '2000' } };
  const a = run('2026-12-07T01:00:00.000Z', { http16: '1900' }, { http16: '2000' }, [base]);
  const b = { ...run('2026-12-07T02:00:00.000Z', { http16: '2100' }, { http16: '2000' }), quick: true };
  const table = summarize([a, b]);
  assert.deepEqual(rowOf(table, 'warm blob, HTTP, 16 clients (MB/s)'), ['1900 · 2100 (median 2000)', '2000 · – (median 2000)', '2000 · 2000 (median 2000)', 'better in 1 of 2']);
  assert.match(table, /measured different things \(all figures \/ all figures, quick\)/);
});

test('bench summary: the repetitions runs kept are pooled over runs, and paired where both columns kept as many', () => {
  const withSamples = (r: BenchRun, pt: number[], nginx: number[], row = 'coldratio'): BenchRun => ({
    ...r,
    columns: r.columns.map((c) => ({ ...c, samples: { [row]: c.key === 'pt-fs' ? pt : nginx } })),
  });
  const runs = [
    // Kept before runs kept their repetitions: counted run by run, not pooled.
    run('2026-12-07T01:00:00.000Z', { coldratio: '1.20×' }, { coldratio: '1.10×' }),
    withSamples(run('2026-12-07T02:00:00.000Z', { coldratio: '1.12×' }, { coldratio: '1.13×' }), [1.1, 1.12, 1.2], [1.15, 1.13, 1.05]),
    withSamples(run('2026-12-07T03:00:00.000Z', { coldratio: '1.11×' }, { coldratio: '1.10×' }), [1.11, 1.09, 1.3], [1.11, 1.1, 1.12]),
    // As many repetitions of each are needed to pair them: this run's only add to the medians.
    withSamples(run('2026-12-07T04:00:00.000Z', { coldratio: '1.00×' }, { coldratio: '1.40×' }), [1.0], [1.4, 1.4]),
  ];
  const cold = rowOf(summarize(runs), 'cold pull / direct');
  // ours 1.0 1.09 1.1 1.11 1.12 1.2 1.3 → 1.11; nginx 1.05 1.1 1.11 1.12 1.13 1.15 1.4 1.4 → 1.125.
  // Pairs: 1.1<1.15, 1.12<=1.13, 1.2>1.05, 1.11<=1.11 (a tie meets "at most"), 1.09<1.1, 1.3>1.12.
  assert.equal(cold[2], 'better in 2 of 4; their repetitions pooled: medians 1.110 and 1.125, better in 4 of 6 measured in the same turn');
  // A figure with no repetitions kept says nothing of them.
  assert.equal(rowOf(summarize(runs.slice(0, 1)), 'cold pull / direct')[2], 'better in 0 of 1');
  // Large figures are pooled without decimals.
  const http = withSamples(run('2026-12-07T05:00:00.000Z', { http16: '2000' }, { http16: '1000' }), [1999.6, 2100], [1000.2, 1200], 'http16');
  assert.equal(rowOf(summarize([http]), 'warm blob, HTTP, 16 clients (MB/s)')[2], 'better in 1 of 1; their repetitions pooled: medians 2050 and 1100, better in 2 of 2 measured in the same turn');
});

test('bench summary: runs are kept as files and read back newest first by count, or by name; a foreign or broken file is refused by name', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pullthrough-bench-runs-'));
  const before = process.env.BENCH_RUNS_DIR;
  process.env.BENCH_RUNS_DIR = dir;
  try {
    assert.throws(() => loadRuns([]), /no bench runs kept in .*run npm run bench first/);
    const files = ['01', '02', '03', '04'].map((h) => saveRun(run(`2026-12-07T${h}:00:00.000Z`, { http16: h }, { http16: '0' })));
    const newest = loadRuns(['3']);
    assert.deepEqual(
      newest.map((r) => r.finished),
      ['2026-12-07T02:00:00.000Z', '2026-12-07T03:00:00.000Z', '2026-12-07T04:00:00.000Z'],
    );
    assert.equal(loadRuns([]).length, 3);
    assert.deepEqual(
      loadRuns([files[3]!, files[0]!]).map((r) => r.columns[0]!.cells.http16),
      ['01', '04'],
    );
    const foreign = join(dir, 'other.json');
    await writeFile(foreign, JSON.stringify({ version: 2 }));
    assert.throws(() => loadRuns([foreign]), new RegExp(`${foreign}: not a bench run`));
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{"version": 1,');
    assert.throws(() => loadRuns([broken]), new RegExp(`${broken}: .*JSON`));
    assert.throws(() => loadRuns(['0']), /a count of runs is 1 or more/);
  } finally {
    if (before === undefined) delete process.env.BENCH_RUNS_DIR;
    else process.env.BENCH_RUNS_DIR = before;
    await rm(dir, { recursive: true, force: true });
  }
});
