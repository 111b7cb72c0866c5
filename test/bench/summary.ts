/**
 * The bench's figures over several runs. One run decides little on a noisy machine (a figure's
 * repetitions spread by ±20 % within a run, and two columns of the same build differ between
 * runs: docs/performance.md), so every `npm run bench` keeps its table as JSON, and
 * `npm run bench:summary` lays the last runs side by side: each cell's values run by run, their
 * median, and in how many runs pullthrough (fs + file) did better than nginx on each figure.
 *
 *   npm run bench:summary              # the newest 3 runs kept in BENCH_CACHE_DIR/runs
 *   npm run bench:summary -- 5         # the newest 5
 *   npm run bench:summary -- a.json b.json
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { median } from './measure.js';
import { cacheDir } from './upstream.js';

/** Which way a figure is better; absent for figures that are not a measure (who terminated TLS). */
export type Better = 'higher' | 'lower';

/** One `npm run bench`, as it is kept. */
export interface BenchRun {
  readonly version: 1;
  /** ISO time the run finished. */
  readonly finished: string;
  /** What the run measured: all figures, or BENCH_ONLY's; BENCH_QUICK's smaller blob. */
  readonly only: string | null;
  readonly quick: boolean;
  readonly machine: string;
  readonly rows: ReadonlyArray<{ key: string; label: string; better?: Better }>;
  readonly columns: ReadonlyArray<{
    key: string;
    label: string;
    cells: Readonly<Record<string, string>>;
    /** Per row, the repetitions behind a median cell, in the order measured (absent in runs kept by earlier builds). */
    samples?: Readonly<Record<string, readonly number[]>>;
  }>;
}

/** Where runs are kept unless BENCH_RUNS_DIR says otherwise. */
export function runsDir(): string {
  return process.env.BENCH_RUNS_DIR ?? join(cacheDir(), 'runs');
}

/** Keeps `run` as `<finished time>.json` in {@link runsDir}; returns the file's path. */
export function saveRun(run: BenchRun): string {
  const dir = runsDir();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${run.finished.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(run, null, 1) + '\n');
  return file;
}

/**
 * A cell's figure: its leading number ("1.13×", "0.29 / 0.10", "142 (+ redis 13)"). A cell that
 * says a cap was hit ("> 60 s") counts as beyond every measured value; "–", "n/a" and the like
 * are no figure.
 */
export function figureOf(cell: string | undefined): number | undefined {
  const m = /^\s*(>\s*)?(\d+(?:\.\d+)?)/.exec(cell ?? '');
  if (!m) return undefined;
  return m[1] ? Infinity : Number(m[2]);
}

/** As the bench prints figures: up to two decimals, as many as the values had. */
function show(x: number, like: string[]): string {
  if (x === Infinity) return 'capped';
  const decimals = Math.max(0, ...like.map((c) => /^\s*>?\s*\d+\.(\d+)/.exec(c)?.[1]?.length ?? 0));
  return x.toFixed(Math.min(decimals, 2));
}

/** The bench's markdown table: the first column (the figure's label) left, the others right. */
export function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/**
 * A markdown table of `runs` (oldest first): per figure and column, each run's cell and the
 * median of their figures; and, for figures with a direction, in how many runs `ours` did better
 * than `peer` (ties count as better: a target reads "at least nginx's").
 */
export function summarize(runs: readonly BenchRun[], ours = 'pt-fs', peer = 'nginx'): string {
  if (runs.length === 0) throw new Error('no bench runs to summarize');
  const newest = runs[runs.length - 1]!;
  const columns: Array<{ key: string; label: string }> = [];
  for (const r of runs) for (const c of r.columns) if (!columns.some((x) => x.key === c.key)) columns.push({ key: c.key, label: c.label });
  const rows: Array<{ key: string; label: string; better?: Better }> = [];
  for (const r of [...runs].reverse()) for (const row of r.rows) if (!rows.some((x) => x.key === row.key)) rows.push(row);
  const cellOf = (r: BenchRun, col: string, row: string): string | undefined => r.columns.find((c) => c.key === col)?.cells[row];
  const ourLabel = columns.find((c) => c.key === ours)?.label ?? ours;
  const peerLabel = columns.find((c) => c.key === peer)?.label ?? peer;

  const header = ['figure', ...columns.map((c) => c.label), `${ourLabel} against ${peerLabel}`];
  const table: string[][] = [];
  for (const row of rows) {
    const cells = columns.map((col) => {
      const raw = runs.map((r) => cellOf(r, col.key, row.key));
      if (raw.every((c) => c === undefined)) return '–';
      const figures = raw.map(figureOf);
      // A middle dot between runs: cells have their own semicolons and slashes.
      const shown = raw.map((c) => c ?? '–').join(' · ');
      const measured = figures.filter((x): x is number => x !== undefined);
      if (!row.better || measured.length === 0) return shown;
      return `${shown} (median ${show(median(measured), raw.filter((c): c is string => c !== undefined))})`;
    });
    let versus = '–';
    if (row.better) {
      const better = row.better;
      const atLeast = (a: number, b: number): boolean => (better === 'higher' ? a >= b : a <= b);
      const pairs = runs.map((r) => [figureOf(cellOf(r, ours, row.key)), figureOf(cellOf(r, peer, row.key))] as const).filter(([a, b]) => a !== undefined && b !== undefined);
      if (pairs.length > 0) {
        const won = pairs.filter(([a, b]) => atLeast(a!, b!)).length;
        versus = `better in ${won} of ${pairs.length}`;
        const pooled = pooledRepetitions(runs, ours, peer, row.key);
        if (pooled) {
          const [m, n] = pooledMedians(median(pooled.ours), median(pooled.peer));
          const wonReps = pooled.pairs.filter(([a, b]) => atLeast(a, b)).length;
          versus += `; their repetitions pooled: medians ${m} and ${n}`;
          if (pooled.pairs.length > 0) versus += `, better in ${wonReps} of ${pooled.pairs.length} measured in the same turn`;
        }
      }
    }
    table.push([row.label, ...cells, versus]);
  }
  const kinds = new Set(runs.map((r) => `${r.only ?? 'all figures'}${r.quick ? ', quick' : ''}`));
  const notes = [
    `${runs.length} run(s), ${runs[0]!.finished} to ${newest.finished}, on ${newest.machine}; cells list the runs oldest first (·), the median is of their leading figures.`,
    ...(kinds.size > 1 ? [`The runs measured different things (${[...kinds].join(' / ')}): compare with care.`] : []),
  ];
  return `${markdownTable(header, table)}\n\n${notes.join('\n')}\n`;
}

/**
 * Every repetition of `row` that `runs` kept for `ours` and `peer`, and the pairs of the
 * repetitions measured in the same turn (runs whose two columns kept as many repetitions, which
 * the bench measures interleaved); null when no run kept any for both.
 */
export function pooledRepetitions(runs: readonly BenchRun[], ours: string, peer: string, row: string): { ours: number[]; peer: number[]; pairs: Array<[number, number]> } | null {
  const out = { ours: [] as number[], peer: [] as number[], pairs: [] as Array<[number, number]> };
  for (const r of runs) {
    const a = r.columns.find((c) => c.key === ours)?.samples?.[row];
    const b = r.columns.find((c) => c.key === peer)?.samples?.[row];
    if (!a || !b || a.length === 0 || b.length === 0) continue;
    out.ours.push(...a);
    out.peer.push(...b);
    if (a.length === b.length) a.forEach((x, i) => out.pairs.push([x, b[i]!]));
  }
  return out.ours.length > 0 ? out : null;
}

/**
 * Two pooled medians as the summary prints them: three decimals for small figures (a ratio's
 * median printed as 1.12 can be either side of another 1.12), none from 100 up (MB/s, answers/s).
 */
function pooledMedians(a: number, b: number): [string, string] {
  const digits = Math.max(Math.abs(a), Math.abs(b)) >= 100 ? 0 : 3;
  return [a.toFixed(digits), b.toFixed(digits)];
}

/** The runs named by `args`: files, or a count of the newest kept runs (default 3). */
export function loadRuns(args: readonly string[]): BenchRun[] {
  const count = args.length === 1 && /^\d+$/.test(args[0]!) ? Number(args[0]) : args.length === 0 ? 3 : undefined;
  if (count === 0) throw new Error('a count of runs is 1 or more');
  const files = count === undefined ? [...args] : newestRuns(count);
  return files
    .map((f) => {
      let run: BenchRun;
      try {
        run = JSON.parse(readFileSync(f, 'utf8')) as BenchRun;
      } catch (err) {
        throw new Error(`${f}: ${(err as Error).message}`, { cause: err });
      }
      if (run?.version !== 1) throw new Error(`${f}: not a bench run this summary reads (version ${String(run?.version)})`);
      return run;
    })
    .sort((a, b) => a.finished.localeCompare(b.finished));
}

function newestRuns(n: number): string[] {
  const dir = runsDir();
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch {
    names = [];
  }
  if (names.length === 0) throw new Error(`no bench runs kept in ${dir}: run npm run bench first (BENCH_RUNS_DIR sets the folder)`);
  return names
    .sort()
    .slice(-n)
    .map((f) => join(dir, f));
}

// Run as a program (npm run bench:summary), not when imported by the bench or a test.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.stdout.write(summarize(loadRuns(process.argv.slice(2))));
  } catch (err) {
    process.stderr.write(`bench summary: ${(err as Error).message}\n`);
    process.exit(2);
  }
}
