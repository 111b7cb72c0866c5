/**
 * µs per request log line: the synchronous JSON line pullthrough wrote before (JSON.stringify +
 * process.stdout.write, synchronous on a pipe) against createLogger's line on pino's asynchronous destination
 * (src/observability/logger.ts). Both run in one child process whose stdout is a pipe the parent
 * drains, as under a supervisor or container runtime; rounds alternate the order. Reports, per
 * variant, the median over rounds of the time on the caller (what a request pays: the logging
 * calls alone, 10 lines between turns of the event loop) and of the wall time per line until every
 * line is written (event-loop turns and the final drain included).
 *
 *   node dist/test/bench/request-log.js [rounds=7] [lines=50000]
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '../../src/observability/logger.js';

/** Lines logged between two turns of the event loop. */
const BATCH = 10;

type Variant = 'sync JSON line (before)' | 'createLogger, async destination (after)';

/** The logger as it was before pino, kept verbatim for the comparison. */
function legacyLogger(out: NodeJS.WritableStream = process.stdout): Logger {
  const RANK = { debug: 10, info: 20, warn: 30, error: 40 } as const;
  const min = RANK.info;
  const write = (lvl: keyof typeof RANK, msg: string, fields?: Record<string, unknown>): void => {
    if (RANK[lvl] < min) return;
    out.write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }) + '\n');
  };
  return { debug: (m, f) => write('debug', m, f), info: (m, f) => write('info', m, f), warn: (m, f) => write('warn', m, f), error: (m, f) => write('error', m, f) };
}

/** The fields of a typical blob request line (src/http/app.ts), a fresh object per call as there. */
function requestFields(i: number): Record<string, unknown> {
  return {
    door: 'mirror',
    method: 'GET',
    path: `/v2/library/app/blobs/sha256:${'0123456789abcdef'.repeat(4)}`,
    ns: undefined,
    registry: 'docker.io',
    repo: 'library/app',
    kind: 'blob',
    cache: i % 3 === 0 ? 'miss' : 'hit',
    status: 200,
    error: undefined,
    stale: undefined,
    bytes: 4_194_304 + i,
    ms: 12.3,
    aborted: undefined,
    client: '127.0.0.1',
    user: undefined,
  };
}

async function child(rounds: number, lines: number): Promise<void> {
  const legacy = legacyLogger();
  const fast = createLogger('info');
  const drained = async (v: Variant): Promise<void> => {
    if (v === 'createLogger, async destination (after)') await fast.settle(60_000);
    // Polled: a 'drain' listener alone does not keep the event loop alive.
    else while (process.stdout.writableLength > 0) await new Promise((r) => setTimeout(r, 1));
  };
  const results: Record<Variant, Array<{ call: number; total: number }>> = { 'sync JSON line (before)': [], 'createLogger, async destination (after)': [] };
  const variants: Variant[] = ['sync JSON line (before)', 'createLogger, async destination (after)'];
  // Warm-up: both code paths optimised before anything is counted.
  for (const v of variants) {
    const log = v === 'sync JSON line (before)' ? legacy : fast;
    for (let i = 0; i < 5000; i++) log.info('request', requestFields(i));
    await drained(v);
  }
  for (let r = 0; r < rounds; r++) {
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      const log = v === 'sync JSON line (before)' ? legacy : fast;
      // As in a server: a few lines, then the event loop turns (I/O callbacks run, an async
      // destination writes). Only the logging calls are timed for "on the caller".
      let onCaller = 0n;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < lines; i += BATCH) {
        const c0 = process.hrtime.bigint();
        for (let j = i; j < i + BATCH; j++) log.info('request', requestFields(j));
        onCaller += process.hrtime.bigint() - c0;
        await new Promise((res) => setImmediate(res));
      }
      await drained(v);
      const t2 = process.hrtime.bigint();
      results[v].push({ call: Number(onCaller) / 1e3 / lines, total: Number(t2 - t0) / 1e3 / lines });
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  process.stderr.write(JSON.stringify(results) + '\n');
}

async function parent(rounds: number, lines: number): Promise<void> {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', String(rounds), String(lines)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let bytes = 0;
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (bytes += c.length));
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((r) => proc.on('close', r));
  if (code !== 0) throw new Error(`bench child exited ${code}: ${err}`);
  const results = JSON.parse(err.trim().split('\n').at(-1)!) as Record<Variant, Array<{ call: number; total: number }>>;
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const range = (xs: number[]): string => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
  console.log(`request log, ${rounds} rounds × ${lines} lines, stdout a pipe (${(bytes / 1e6).toFixed(0)} MB read by the parent), node ${process.version}`);
  console.log('| variant | µs per line on the caller (median; range) | µs per line until written (median; range) |');
  console.log('|---|---:|---:|');
  for (const [v, rs] of Object.entries(results)) {
    const call = rs.map((x) => x.call);
    const total = rs.map((x) => x.total);
    console.log(`| ${v} | ${median(call).toFixed(2)} (${range(call)}) | ${median(total).toFixed(2)} (${range(total)}) |`);
  }
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'child') await child(Number(a), Number(b));
else await parent(Number(mode ?? 7) || 7, Number(a ?? 50000) || 50000);
