/**
 * `npm run bench`: pullthrough side by side with nginx (rpardini-style), distribution's proxy mode
 * and the static-file limit, all on loopback, all figures from this one run, printed as one table.
 * Progress goes to stderr, the table to stdout. BENCH_QUICK=1 makes a smaller, faster run.
 * BENCH_ONLY=<figure> runs some figures alone: hang (the cached tag while the upstream hangs),
 * cold (cold pulls, single and 8 at once), throughput (warm blob throughput and peak RSS),
 * handshake (new TLS connections). BENCH_SYSTEMS=pt-fs,nginx,… keeps only those columns.
 * BENCH_BASELINE=<dir> adds a column for the pullthrough build in <dir> (a checkout with dist/
 * built; fs + file, like pt-fs, with the environment that build ships with), measured in turn with
 * the others: before/after in one run.
 * Not part of `npm test`: it prints numbers, it asserts nothing.
 */
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { freePort, ownedTempDir, startProcess, waitForPort } from '../helpers/process.js';
import { createCA } from '../helpers/pki.js';
import { issueEcServerCert, type ServerCert } from './cert.js';
import { startBenchUpstream, type BenchUpstream } from './upstream.js';
import { startNginxStatic } from './nginx.js';
import { HANG_CAP_S, hangFigure, hangRelay } from './hang.js';
import { markdownTable, saveRun, type Better } from './summary.js';
import {
  curlDigest,
  curlThroughput,
  dnsAnswersPerSecond,
  handshake,
  tlsConnectionsPerSecond,
  cpuSeconds,
  machineDescription,
  median,
  sampleRss,
  settleDisk,
  timedPull,
  type Target,
} from './measure.js';
import {
  FRESH_NAMES,
  NginxProxySystem,
  PullthroughSystem,
  RegistryProxySystem,
  UPSTREAM_NAME,
  launchOf,
  probeDoors,
  tlsEndpoint,
  type System,
  type TlsEndpoint,
} from './systems.js';

const QUICK = process.env.BENCH_QUICK === '1';
/** Figures that can run alone (BENCH_ONLY=<name>), each with the rows it fills. */
const ONLY_FIGURES: Record<string, string[]> = {
  hang: ['hang'],
  cold: ['cold', 'coldratio', 'coldcpu', 'pull8', 'up8', 'warmman'],
  throughput: ['http1', 'http16', 'tls1', 'tls16', 'tlsvia', 'rss'],
  handshake: ['hs', 'hscpu', 'hsratio', 'hsratio0', 'hsnode', 'firstcert'],
};
const ONLY = process.env.BENCH_ONLY || undefined;
if (ONLY !== undefined && !(ONLY in ONLY_FIGURES)) {
  process.stderr.write(`BENCH_ONLY=${ONLY}: no such figure (one of: ${Object.keys(ONLY_FIGURES).join(', ')})\n`);
  process.exit(2);
}
/** Column keys to keep (BENCH_SYSTEMS), or all. */
const ONLY_SYSTEMS = process.env.BENCH_SYSTEMS ? new Set(process.env.BENCH_SYSTEMS.split(',').map((k) => k.trim())) : undefined;
/** Another pullthrough checkout whose build gets a column of its own (BENCH_BASELINE). */
const BASELINE = process.env.BENCH_BASELINE || undefined;
if (BASELINE && !existsSync(join(BASELINE, 'dist/src/main.js'))) {
  process.stderr.write(`BENCH_BASELINE=${BASELINE}: no dist/src/main.js there (run npm run build in it)\n`);
  process.exit(2);
}
const BIG = QUICK ? 256 << 20 : 1 << 30;
/** Repetitions of each throughput figure with 16 clients (the table shows the median). */
const REPS = 3;
/**
 * Repetitions of each one-client throughput figure. Nine: one 1 GiB transfer takes about half a
 * second and its rate spreads by ±12 % from one to the next on this kind of machine, so a median
 * of 3 put the same build on either side of nginx from run to run (docs/performance.md,
 * twenty-first session); nine cost about a minute more per run.
 */
const ONE_CLIENT_REPS = QUICK ? REPS : 9;
/**
 * Repetitions of the single cold pull (the table shows the median). Fifteen: one pull's ratio to
 * the direct pull before it spreads by about ±10 % on this kind of machine, through nginx as
 * through pullthrough, more than the two proxies' medians differ; a median of 15 moves about a
 * third less from run to run than one of 7 (docs/performance.md, twenty-third round).
 */
const COLD_REPS = QUICK ? 1 : 15;
/** Longest a single throughput transfer runs (curl --max-time), seconds. */
const CAP = QUICK ? 4 : 8;
const CONCURRENT_PULLS = 8;
/**
 * Repetitions of the 8 concurrent cold pulls (the table shows the median of their slowest pulls).
 * Five: the slowest of 8 is one extreme of eight pulls, and measured once per run it spread over
 * a third of its value across runs of the same build (2.74–3.91 s through pullthrough, 3.32–4.55 s
 * through nginx, six runs), more than the two usually differ (docs/performance.md, twenty-fourth
 * round).
 */
const PULL8_REPS = QUICK ? 1 : 5;
const HANDSHAKE_SECONDS = QUICK ? 2 : 3;
/**
 * Repetitions of the handshake figure (the table shows the median), after one warm-up run. Seven:
 * one repetition's CPU per connection moves by up to ±30 % on this kind of machine, for the bare
 * server too, so the ratio to it is taken per repetition and its median shown; with five, the
 * median of the same build moved by ±0.07 from run to run (docs/performance.md).
 */
const HANDSHAKE_REPS = QUICK ? 3 : 7;
const DNS_SECONDS = QUICK ? 2 : 5;
/** Repetitions of the DNS figure (the table shows the median). */
const DNS_REPS = QUICK ? 1 : 3;
const DNS_NAMES = [UPSTREAM_NAME, 'registry-1.docker.io', 'quay.io', 'ghcr.io', 'registry.k8s.io', 'gcr.io'];

const log = (s: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

/** One column of the table. */
interface Column {
  /** The system's key (pt-fs, nginx, …), or `reference`. */
  key: string;
  label: string;
  cells: Map<string, string>;
  /**
   * The repetitions behind a cell that shows their median, in the order they were measured: kept
   * with the run so bench:summary can pool them over runs (one run's median of a tie falls on
   * either side; the pooled repetitions say more).
   */
  samples: Map<string, number[]>;
}

/**
 * Sets `key`'s cell to the median of `values` as `show` writes it, and keeps the values as the
 * cell's repetitions, so that no median is shown whose repetitions bench:summary cannot pool.
 */
function setMedian(col: Column, key: string, values: number[], show: (median: number) => string): void {
  col.cells.set(key, show(median(values)));
  col.samples.set(key, values);
}

/** The table's rows: key, label, and which way the figure is better (for bench:summary). */
const ROWS: Array<[string, string, Better?]> = [
  ['http1', `warm blob ${BIG >> 20} MiB, HTTP, 1 client (MB/s)`, 'higher'],
  ['http16', `warm blob ${BIG >> 20} MiB, HTTP, 16 clients (MB/s, total)`, 'higher'],
  ['tls1', `warm blob ${BIG >> 20} MiB, TLS, 1 client (MB/s)`, 'higher'],
  ['tls16', `warm blob ${BIG >> 20} MiB, TLS, 16 clients (MB/s, total)`, 'higher'],
  ['tlsvia', 'TLS terminated by'],
  ['rss', 'peak RSS during the rows above (MB)', 'lower'],
  ['cold', 'cold pull ~120 MB image, skopeo (s; server warmed up on another image)', 'lower'],
  ['coldratio', `cold pull / direct pull made just before it (median of ${COLD_REPS})`, 'lower'],
  ['coldcpu', `CPU per cold pull (s, median of ${COLD_REPS}): the server's own (+ its S3 server and Redis) / the upstream's`, 'lower'],
  ['pull8', `slowest of ${CONCURRENT_PULLS} concurrent cold pulls (s, median of ${PULL8_REPS})`, 'lower'],
  ['up8', `upstream requests, ${CONCURRENT_PULLS} concurrent cold pulls (blob GET / manifest GET / HEAD; each repetition's, when they differ)`],
  ['warmman', 'upstream manifest GETs per warm pull, unchanged tag (HEADs)'],
  ['hs', `new TLS connections/s, cached certificate (full handshake + one local 404; ab -c 8; median of ${HANDSHAKE_REPS} after a warm-up run)`, 'higher'],
  ['hscpu', 'server CPU per new TLS connection (ms)', 'lower'],
  ['hsratio', `server CPU per new TLS connection / the bare Node.js server's in the same repetition (median of ${HANDSHAKE_REPS})`, 'lower'],
  ['hsratio0', `the same / a bare Node.js server's that issues no session tickets (pullthrough's default), same repetition (median of ${HANDSHAKE_REPS})`, 'lower'],
  ['hsnode', "new TLS connections/s of a bare Node.js https server, Node's floor (same certificate and 404, same runs; server CPU each), and of one without session tickets"],
  ['firstcert', 'first-certificate handshake (ms)', 'lower'],
  ['dns', `DNS answers/s (dnsperf -c 4 -q 200; median of ${DNS_REPS} run(s) of ${DNS_SECONDS} s)`, 'higher'],
  ['dnsdgram', "DNS answers/s without the fast path (dns.fastPath: off: Node's dgram only; same runs)", 'higher'],
  ['hang', `cached tag while the upstream hangs: time until the manifest is served (s, capped at ${HANG_CAP_S} s)`, 'lower'],
];

const FOOTNOTES: Record<string, string> = {
  hang:
    `Upstream hangs: each system pulled the tag once through its own relay to the upstream, then the relay accepted connections and answered nothing; ` +
    `one manifest GET by tag (curl, capped at ${HANG_CAP_S} s); "> ${HANG_CAP_S} s": no answer by then.`,
};

const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');

function countUpstream(up: BenchUpstream): { blobGet: number; manGet: number; head: number; other: number } {
  const rs = up.requests();
  const blobGet = rs.filter((r) => r.method === 'GET' && r.kind === 'blob').length;
  const manGet = rs.filter((r) => r.method === 'GET' && r.kind === 'manifest').length;
  const head = rs.filter((r) => r.method === 'HEAD').length;
  return { blobGet, manGet, head, other: rs.length - blobGet - manGet - head };
}

/** A system warmed up and kept running for the throughput, RSS and handshake figures. */
interface Warm {
  readonly col: Column;
  readonly key: string;
  readonly http: Target;
  readonly tls: TlsEndpoint | { na: string };
  pids(): number[];
  sidePids(): number[];
  stop(): Promise<void>;
}

/**
 * Figure (2), interleaved: each repetition pulls through every system in turn (each started with
 * an empty cache and warmed up on another image), each pull right after a direct pull from the
 * upstream, so every ratio compares two pulls made seconds apart under the same conditions (a
 * single direct pull per repetition was up to a minute older than the last system's pull). The
 * order is rotated from one repetition to the next, as figure (3)'s, so no system is always the
 * first of a repetition or always follows the same one. The ratio shown is the median of those
 * per-pull ratios; the direct time shown is the median of all direct pulls.
 */
async function coldPullFigures(systems: System[], cols: Map<System, Column>, up: BenchUpstream, refCol: Column): Promise<void> {
  const directs: number[] = [];
  const times = new Map<System, number[]>();
  const ratios = new Map<System, number[]>();
  const cpu = new Map<System, Array<{ own: number; side: number; up: number }>>();
  const upCpu: number[] = [];
  await warmUp(up, up.hostPort);
  for (let i = 0; i < COLD_REPS; i++) {
    const line: string[] = [];
    for (const sys of rotated(systems, i)) {
      const run = await sys.startCold();
      try {
        await warmUp(up, run.host);
        await settleDisk();
        const u0 = cpuSeconds([up.pid]);
        const direct = await timedPull(appRef(up, up.hostPort));
        upCpu.push(cpuSeconds([up.pid]) - u0);
        // CPU of every process of the system (nginx's workers, pullthrough's workers), of its S3
        // server and Redis, and of the upstream, during the pull alone.
        await settleDisk();
        const c0 = { own: cpuSeconds(run.pids()), side: cpuSeconds(run.sidePids()), up: cpuSeconds([up.pid]) };
        const t = await timedPull(appRef(up, run.host));
        cpu.set(sys, [...(cpu.get(sys) ?? []), { own: cpuSeconds(run.pids()) - c0.own, side: cpuSeconds(run.sidePids()) - c0.side, up: cpuSeconds([up.pid]) - c0.up }]);
        directs.push(direct);
        times.set(sys, [...(times.get(sys) ?? []), t]);
        ratios.set(sys, [...(ratios.get(sys) ?? []), t / direct]);
        line.push(`${sys.label} ${t.toFixed(2)} s (direct ${direct.toFixed(2)} s)`);
      } finally {
        await run.stop();
      }
    }
    log(`  repetition ${i + 1}: ${line.join('; ')}`);
  }
  for (const sys of systems) {
    const col = cols.get(sys)!;
    setMedian(col, 'cold', times.get(sys)!, (m) => fmt(m, 2));
    setMedian(col, 'coldratio', ratios.get(sys)!, (m) => `${fmt(m, 2)}×`);
    const cs = cpu.get(sys)!;
    const side = median(cs.map((c) => c.side));
    col.cells.set('coldcpu', `${fmt(median(cs.map((c) => c.own)), 2)}${side > 0 ? ` (+ ${fmt(side, 2)})` : ''} / ${fmt(median(cs.map((c) => c.up)), 2)}`);
  }
  refCol.cells.set('coldcpu', `– / ${fmt(median(upCpu), 2)} (direct pull)`);
  setMedian(refCol, 'cold', directs, (m) => `${fmt(m, 2)} (upstream direct)`);
  refCol.cells.set('coldratio', '1.00×');
}

/**
 * A fresh process has not compiled its hot paths yet (pullthrough's JIT) nor opened its upstream
 * connections: one pull of a small unrelated image first, so "cold" means an empty cache, not a
 * process that has never served a request.
 */
function warmUp(up: BenchUpstream, host: string): Promise<number> {
  return timedPull(`${host}/${up.content.warmup.repo}:${up.content.warmup.tag}`);
}

/** The ~120 MB image every cold figure pulls, by tag, through `host`. */
function appRef(up: BenchUpstream, host: string): string {
  return `${host}/${up.content.app.repo}:${up.content.app.tag}`;
}

/** `items` in repetition `i`'s order: rotated by `i`, so no system is always measured first or last. */
function rotated<T>(items: readonly T[], i: number): T[] {
  return items.map((_, j) => items[(i + j) % items.length]!);
}

/**
 * Figure (3), interleaved like figure (2): each repetition starts every system in turn with an
 * empty cache, warms it up on another image and pulls the same image 8 times at once. The table
 * shows the median of the repetitions' slowest pulls, and the upstream requests of the 8 pulls
 * (one of each blob and manifest when the system merges concurrent misses).
 */
async function concurrentPullFigures(systems: System[], cols: Map<System, Column>, up: BenchUpstream): Promise<void> {
  const slowest = new Map<System, number[]>();
  const counts = new Map<System, string[]>();
  const failures = new Map<System, number>();
  for (let i = 0; i < PULL8_REPS; i++) {
    const line: string[] = [];
    for (const sys of rotated(systems, i)) {
      const run = await sys.startCold();
      try {
        await warmUp(up, run.host);
        up.resetLog();
        await settleDisk();
        const results = await Promise.allSettled(Array.from({ length: CONCURRENT_PULLS }, () => timedPull(appRef(up, run.host))));
        const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        const c = countUpstream(up);
        // A failed pull counts as the slowest possible, so failures can only raise the median.
        const s = Math.max(...results.map((r) => (r.status === 'fulfilled' ? r.value : Infinity)));
        slowest.set(sys, [...(slowest.get(sys) ?? []), s]);
        counts.set(sys, [...(counts.get(sys) ?? []), `${c.blobGet} / ${c.manGet} / ${c.head}`]);
        failures.set(sys, (failures.get(sys) ?? 0) + failed.length);
        line.push(`${sys.label} ${fmt(s, 2)} s (upstream ${JSON.stringify(c)}${failed.length ? `; ${failed.length} failed: ${failed[0]!.reason}` : ''})`);
      } finally {
        await run.stop();
      }
    }
    log(`  repetition ${i + 1}: ${line.join('; ')}`);
  }
  for (const sys of systems) {
    const failed = failures.get(sys)!;
    setMedian(cols.get(sys)!, 'pull8', slowest.get(sys)!, (m) => fmt(m, 2));
    cols.get(sys)!.cells.set('up8', `${[...new Set(counts.get(sys))].join(', ')}${failed ? ` (${failed} pulls failed)` : ''}`);
  }
}

/** Figure (4) on a fresh cache filled by one pull, then the big blob fetched once through it (cold fill, checked). */
async function coldFigures(sys: System, col: Column, up: BenchUpstream): Promise<Warm> {

  const run = await sys.startCold();
  try {
    log(`${sys.label}: a pull to fill the cache, then a warm pull`);
    await warmUp(up, run.host);
    await timedPull(appRef(up, run.host));
    up.resetLog();
    await timedPull(appRef(up, run.host));
    const w = countUpstream(up);
    col.cells.set('warmman', `${w.manGet} (${w.head})`);
    log(`  warm pull upstream: ${JSON.stringify(w)}`);

    log(`${sys.label}: big blob, cold fill and digest check`);
    const http: Target = { url: `http://${run.host}/v2/${up.content.big.repo}/blobs/${up.content.big.digest}` };
    const t0 = Date.now();
    const got = await curlDigest(http);
    if (got !== up.content.big.digest) throw new Error(`${sys.label} served ${got} for ${up.content.big.digest}`);
    log(`  cold fill + digest check: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const tls = await run.tls();
    if ('na' in tls) {
      col.cells.set('tlsvia', '–');
    } else {
      col.cells.set('tlsvia', tls.via);
    }
    return {
      col,
      key: sys.key,
      http,
      tls: 'na' in tls ? tls : { ...tls, target: { url: `${tls.target.url}/v2/${up.content.big.repo}/blobs/${up.content.big.digest}`, connectTo: tls.target.connectTo } },
      pids: () => [...run.pids(), ...('na' in tls ? [] : tls.pids())],
      sidePids: () => run.sidePids(),
      stop: async () => {
        if (!('na' in tls)) await tls.stop();
        await run.stop();
      },
    };
  } catch (err) {
    await run.stop();
    throw err;
  }
}

/**
 * Figure (1) for every warm system, interleaved: each repetition measures every system once, in
 * turn, so a change in background load (this machine may be shared) hits them all alike.
 */
async function throughputFigures(warm: Warm[]): Promise<void> {
  for (const proto of ['http', 'tls'] as const) {
    for (const clients of [1, 16]) {
      const key = `${proto}${clients}`;
      const runs = new Map<Warm, Array<{ mbps: number; failures: number }>>();
      for (let i = 0; i < (clients === 1 ? ONE_CLIENT_REPS : REPS); i++) {
        for (const w of rotated(warm, i)) {
          const target = proto === 'http' ? w.http : 'na' in w.tls ? undefined : w.tls.target;
          if (!target) continue;
          const r = await curlThroughput(target, clients, CAP);
          runs.set(w, [...(runs.get(w) ?? []), r]);
        }
      }
      for (const w of warm) {
        const rs = runs.get(w);
        if (!rs) {
          w.col.cells.set(key, 'na' in w.tls ? w.tls.na : '–');
          continue;
        }
        const failures = rs.reduce((a, r) => a + r.failures, 0);
        setMedian(w.col, key, rs.map((r) => r.mbps), (m) => `${fmt(m)}${failures ? ` (${failures} failed)` : ''}`);
        log(`  ${w.col.label}, ${proto}, ${clients} client(s): ${rs.map((r) => fmt(r.mbps)).join(', ')} MB/s`);
      }
    }
  }
}

/**
 * Figure (7): dnsmasq and pullthrough's DNS door (in one process, and in 2 workers), with its
 * native fast path and with dgram only, all started first and then measured in turn DNS_REPS
 * times; the median is shown.
 */
async function dnsFigures(dir: string, refCol: Column, pts: Array<{ sys: PullthroughSystem; col: Column }>): Promise<void> {
  log('DNS: dnsmasq and the DNS door');
  const servers: Array<{ col: Column; row: string; port: number; suffix: string; stop(): Promise<void>; qps: number[]; lost: number }> = [];
  try {
    const dnsPort = await freePort();
    const dm = startProcess('dnsmasq', [
      '--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces', '--listen-address=127.0.0.1', `--port=${dnsPort}`, '--pid-file=',
      ...DNS_NAMES.map((n) => `--address=/${n}/127.0.0.1`),
    ]);
    servers.push({ col: refCol, row: 'dns', port: dnsPort, suffix: ' (dnsmasq)', stop: () => dm.stop(), qps: [], lost: 0 });
    await waitForPort(dnsPort, '127.0.0.1', 10_000, dm);
    for (const { sys, col } of pts) {
      for (const [row, dnsFastPath] of [['dns', 'on'], ['dnsdgram', 'off']] as const) {
        const run = await sys.startCold({ dns: true, dnsFastPath });
        if (run.dnsPort === undefined) {
          await run.stop();
          throw new Error(`${sys.label}: the DNS door did not come up`);
        }
        servers.push({ col, row, port: run.dnsPort, suffix: '', stop: () => run.stop(), qps: [], lost: 0 });
      }
    }
    for (let i = 0; i < DNS_REPS; i++) {
      for (const s of servers) {
        const d = await dnsAnswersPerSecond(dir, s.port, DNS_NAMES, DNS_SECONDS);
        s.qps.push(d.qps);
        s.lost += d.lost;
      }
      log(`  repetition ${i + 1}: ${servers.map((s) => `${s.col.label}${s.row === 'dnsdgram' ? ' (dgram)' : ''}${s.suffix} ${fmt(s.qps.at(-1)!)}/s`).join('; ')}`);
    }
    for (const s of servers) setMedian(s.col, s.row, s.qps, (m) => `${fmt(m)}${s.suffix}${s.lost ? `, ${s.lost} lost` : ''}`);
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
  }
}

/**
 * Figure (8): for each system, a fresh instance in front of its own relay to the upstream; the tag
 * is pulled once, the relay hangs, and a manifest GET of that tag is timed (hang.ts). `make`
 * builds the system on another upstream URL (the relay's).
 */
async function hangFigures(keys: string[], make: (upstreamUrl: string) => System[], cols: Map<string, Column>, up: BenchUpstream): Promise<void> {
  log(`cached tag while the upstream hangs (each capped at ${HANG_CAP_S} s)`);
  for (const key of keys) {
    const { relay, url } = await hangRelay(up);
    const all = make(url);
    const sys = all.find((s) => s.key === key)!;
    try {
      const r = await hangFigure(sys, relay, up, timedPull);
      cols.get(key)!.cells.set('hang', r.cell);
      log(`  ${sys.label}: ${r.detail}`);
    } catch (err) {
      cols.get(key)!.cells.set('hang', 'failed');
      log(`  ${sys.label}: failed: ${(err as Error).message.split('\n')[0]}`);
    } finally {
      await relay.close();
      for (const s of all) await s.close().catch(() => {});
    }
  }
}

/**
 * Node.js's floor for figure (6): a bare `https` server (node-https.ts) as Node.js ships it, and
 * one that issues no session tickets (as pullthrough's TLS door by default), measured with the systems.
 */
interface Floor {
  readonly tls: TlsEndpoint;
  readonly noTickets: TlsEndpoint;
  readonly col: Column;
}

/**
 * Figure (6) for every system, and for Node.js's floor as shipped and without session tickets
 * (pullthrough's TLS door issues none by default; both floors are shown): one warm-up run each (a fresh Node.js
 * process runs its handshake path in the interpreter for the first thousand or so connections:
 * ~0.9 ms of CPU each instead of ~0.7), as long as a repetition, then HANDSHAKE_REPS repetitions with the servers in turn,
 * the order rotated each time as for throughput. The ratio to the bare server is taken within
 * each repetition (the two measured seconds apart, not minutes) and its median shown: the bare
 * server's own figure drifts across a run by more than the margins being compared.
 */
async function handshakeFigures(warm: Warm[], floor: Floor): Promise<void> {
  type Live = { label: string; tls: TlsEndpoint; rs: Array<{ perSecond: number; cpuMs: number; failed: number }>; done(hs: string, cpu: string, ratios: number[], ratios0: number[]): void };
  const live: Live[] = [];
  for (const w of warm) {
    if ('na' in w.tls) {
      for (const k of ['hs', 'hscpu', 'hsratio', 'hsratio0', 'firstcert']) w.col.cells.set(k, w.tls.na);
      continue;
    }
    const tls = w.tls;
    live.push({
      label: w.col.label,
      tls,
      rs: [],
      done: (hs, cpu, ratios, ratios0) => {
        w.col.cells.set('hs', hs);
        w.col.cells.set('hscpu', cpu);
        setMedian(w.col, 'hsratio', ratios, (m) => `${fmt(m, 2)}×`);
        setMedian(w.col, 'hsratio0', ratios0, (m) => `${fmt(m, 2)}×`);
      },
    });
  }
  // The floors' row is hsnode: the reference column's other handshake cells are nginx's static server's.
  const floors: string[] = [];
  const bare: Live = { label: 'bare Node.js https', tls: floor.tls, rs: [], done: (hs, cpu) => (floors[0] = `${hs} at ${cpu} ms`) };
  const bareNoTickets: Live = {
    label: 'bare Node.js https, no session tickets',
    tls: floor.noTickets,
    rs: [],
    done: (hs, cpu) => (floors[1] = `without tickets ${hs} at ${cpu} ms`),
  };
  const systems = live.length;
  live.push(bareNoTickets, bare);
  for (const { tls } of live) {
    // Warm the certificate (issued on first use by pullthrough's door) and the handshake path,
    // as long as one repetition: after 1 s a fresh process's CPU per connection was still falling
    // for several more seconds, pullthrough's by more than the bare server's (docs/performance.md).
    await handshake(tls.port, tls.servername);
    await tlsConnectionsPerSecond(tls.port, tls.servername, HANDSHAKE_SECONDS, tls.pids());
  }
  for (let i = 0; i < HANDSHAKE_REPS; i++) {
    for (const l of rotated(live, i)) {
      l.rs.push(await tlsConnectionsPerSecond(l.tls.port, l.tls.servername, HANDSHAKE_SECONDS, l.tls.pids()));
    }
  }
  for (const [i, { label, rs, done }] of live.entries()) {
    const failed = rs.reduce((a, r) => a + r.failed, 0);
    const ratios = rs.map((r, k) => r.cpuMs / bare.rs[k]!.cpuMs);
    const ratios0 = rs.map((r, k) => r.cpuMs / bareNoTickets.rs[k]!.cpuMs);
    done(`${fmt(median(rs.map((r) => r.perSecond)))}${failed ? ` (${failed} failed)` : ''}`, fmt(median(rs.map((r) => r.cpuMs)), 2), ratios, ratios0);
    // Three decimals here, two in the table: a median printed as 1.15× can be either side of a 1.15 bound.
    const against = i < systems ? ` (${ratios.map((x) => `${fmt(x, 3)}×`).join(', ')} the bare server's; ${ratios0.map((x) => `${fmt(x, 3)}×`).join(', ')} without tickets)` : '';
    log(`  ${label}: ${rs.map((r) => fmt(r.perSecond)).join(', ')} new TLS connections/s, ${rs.map((r) => fmt(r.cpuMs, 2)).join(', ')} ms of server CPU each${against}`);
  }
  floor.col.cells.set('hsnode', floors.join('; '));
  for (const w of warm) {
    if ('na' in w.tls) continue;
    if (w.key.startsWith('pt')) {
      const firsts: number[] = [];
      for (const name of FRESH_NAMES.slice(0, 3)) firsts.push(await handshake(w.tls.port, name));
      w.col.cells.set('firstcert', fmt(median(firsts), 1));
      log(`  ${w.col.label}: first-certificate handshakes ${firsts.map((x) => x.toFixed(1)).join(', ')} ms`);
    } else {
      w.col.cells.set('firstcert', '– (static certificate)');
    }
  }
}

/** Starts node-https.ts with the peers' certificate on free ports, with and without session tickets. */
async function startNodeFloor(cert: ServerCert, col: Column): Promise<Floor & { stop(): Promise<void> }> {
  const start = async (mode: string[]): Promise<{ tls: TlsEndpoint; proc: ReturnType<typeof startProcess> }> => {
    const port = await freePort();
    const proc = startProcess(process.execPath, [join(import.meta.dirname, 'node-https.js'), cert.keyFile, cert.certFile, String(port), ...mode]);
    await waitForPort(port, '127.0.0.1', 10_000, proc);
    return { tls: tlsEndpoint(port, 'bare Node.js https', proc.child.pid!), proc };
  };
  const shipped = await start([]);
  const noTickets = await start(['no-tickets']).catch(async (err: unknown) => {
    await shipped.proc.stop();
    throw err;
  });
  return {
    col,
    tls: shipped.tls,
    noTickets: noTickets.tls,
    stop: async () => {
      await shipped.proc.stop();
      await noTickets.proc.stop();
    },
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  const load0 = loadavg()[0]!;
  const work = await ownedTempDir('pullthrough-bench-');
  const warm: Warm[] = [];
  const systems: System[] = [];
  let up: BenchUpstream | undefined;
  const columns: Column[] = [];
  try {
    if (ONLY) log(`only the figure "${ONLY}", ${cpus().length} cores, load average ${load0.toFixed(2)}`);
    else log(`${QUICK ? 'quick run' : 'full run'}: blob ${BIG >> 20} MiB, ${ONE_CLIENT_REPS} and ${REPS} repetitions, transfers capped at ${CAP} s, ${cpus().length} cores, load average ${load0.toFixed(2)}`);
    up = await startBenchUpstream(BIG, log);
    const ca = await createCA({ dir: join(work.path, 'pki') });
    const cert = await issueEcServerCert(ca, [UPSTREAM_NAME, ...FRESH_NAMES, 'localhost'], ['127.0.0.1']);
    const doors = await probeDoors(up.url);
    const baselineLaunch = BASELINE ? await launchOf(BASELINE) : undefined;
    log(`pullthrough doors: tls ${doors.tls ? 'yes' : 'no'}, dns ${doors.dns ? 'yes' : 'no'} (${doors.detail})`);

    const make = (url: string): System[] =>
      [
        new PullthroughSystem('pt-fs', 'pullthrough fs + file', 'fs', url, doors.tls),
        ...(BASELINE ? [new PullthroughSystem('pt-base', `pullthrough fs + file, baseline (${BASELINE})`, 'fs', url, doors.tls, 1, join(BASELINE, 'dist/src/main.js'), baselineLaunch)] : []),
        new PullthroughSystem('pt-s3', 'pullthrough S3 + Redis', 's3', url, doors.tls),
        // Both cores for TLS (node:cluster workers need shared metadata, hence Redis).
        new PullthroughSystem('pt-w2', 'pullthrough fs + Redis, 2 workers', 'fs', url, doors.tls, 2),
        new NginxProxySystem(url, cert),
        new RegistryProxySystem(url, cert),
      ].filter((sys) => !ONLY_SYSTEMS || ONLY_SYSTEMS.has(sys.key));
    systems.push(...make(up.url));
    const cols = new Map(systems.map((sys) => [sys, { key: sys.key, label: sys.label, cells: new Map<string, string>(), samples: new Map<string, number[]>() } as Column]));
    const byKey = new Map(systems.map((sys) => [sys.key, cols.get(sys)!]));
    const refCol: Column = { key: 'reference', label: 'reference', cells: new Map(), samples: new Map() };
    const hangKeys = systems.map((s) => s.key);
    const wants = (figure: string): boolean => !ONLY || ONLY === figure;
    if (ONLY === 'hang') {
      columns.push(...systems.map((s) => cols.get(s)!));
    } else {
      if (wants('cold')) {
        log('cold pulls, direct and through every system in turn');
        await coldPullFigures(systems, cols, up, refCol);
        log(`${CONCURRENT_PULLS} concurrent cold pulls through every system in turn`);
        await concurrentPullFigures(systems, cols, up);
      }
      for (const sys of systems) warm.push(await coldFigures(sys, cols.get(sys)!, up));
      columns.push(...warm.map((w) => w.col));

      // The reference column: the static-file limit, the upstream itself, dnsmasq.
      log('nginx static file (the limit)');
      const st = await startNginxStatic(join(work.path, 'static'), up.bigFile, cert);
      const ref: Warm = {
        col: refCol,
        key: 'static',
        http: { url: `http://127.0.0.1:${st.httpPort}/big` },
        tls: tlsEndpoint(st.tlsPort, 'nginx static file', st.proc.pid, { path: '/big' }),
        pids: () => [st.proc.pid],
        sidePids: () => [],
        stop: () => st.stop(),
      };
      warm.push(ref);
      columns.push(ref.col);
      if ((await curlDigest(ref.http)) !== up.content.big.digest) throw new Error('static nginx served other bytes');
      ref.col.cells.set('tlsvia', 'nginx static file');

      if (wants('throughput')) {
        log('warm throughput, all systems in turn');
        const rss = warm.map((w) => ({ w, own: sampleRss(() => w.pids()), side: sampleRss(() => w.sidePids(), 'sum') }));
        await throughputFigures(warm);
        for (const { w, own, side } of rss) {
          const peak = own.stop();
          const sidePeak = side.stop();
          w.col.cells.set('rss', `${fmt(peak)}${w.sidePids().length ? ` (+ ${w.key === 'pt-s3' ? 's3rver & redis' : 'redis'} ${fmt(sidePeak)})` : ''}`);
          log(`  ${w.col.label}: peak RSS ${fmt(peak)} MB`);
        }
      }

      if (wants('handshake')) {
        log('TLS handshakes');
        const floor = await startNodeFloor(cert, refCol);
        try {
          await handshakeFigures(warm, floor);
        } finally {
          await floor.stop();
        }
        ref.col.cells.set('firstcert', '–');
      }

      for (const w of warm.splice(0)) await w.stop();

      ref.col.cells.set('up8', `${up.content.app.blobs.length} blobs, 1 tag`);
      ref.col.cells.set('warmman', '–');

      if (!ONLY && doors.dns) {
        const dnsSystems = systems.filter((s): s is PullthroughSystem => s instanceof PullthroughSystem && s.key !== 'pt-s3');
        await dnsFigures(work.path, ref.col, dnsSystems.map((s) => ({ sys: s, col: cols.get(s)! })));
      } else if (!ONLY) {
        log('DNS: pullthrough has no DNS door');
        await dnsFigures(work.path, ref.col, []);
        for (const s of systems) if (s instanceof PullthroughSystem) cols.get(s)!.cells.set('dns', 'n/a (door not available)');
      }
    }
    // Last, so that a hung system's background retries overlap no other figure.
    if (wants('hang')) await hangFigures(hangKeys, make, byKey, up);
    if (!ONLY) refCol.cells.set('hang', '–');
  } finally {
    for (const w of warm) await w.stop().catch(() => {});
    for (const s of systems) await s.close().catch(() => {});
    await up?.stop();
    await work.cleanup();
  }

  printTable(columns, load0);
  try {
    log(`kept as ${keepRun(columns)} (npm run bench:summary lays the last runs side by side)`);
  } catch (err) {
    // The table is out already; a run that cannot be kept is still a run.
    log(`could not keep this run for bench:summary: ${(err as Error).message}`);
  }
  log(`done in ${((Date.now() - started) / 60000).toFixed(1)} min`);
}

/** The rows this run measured (all, or BENCH_ONLY's). */
function rowsShown(): typeof ROWS {
  return ROWS.filter(([key]) => !ONLY || ONLY_FIGURES[ONLY]!.includes(key));
}

/** Keeps this run's table for bench:summary; returns the file. */
function keepRun(columns: Column[]): string {
  return saveRun({
    version: 1,
    finished: new Date().toISOString(),
    only: ONLY ?? null,
    quick: QUICK,
    machine: machineDescription(),
    rows: rowsShown().map(([key, label, better]) => ({ key, label, ...(better ? { better } : {}) })),
    columns: columns.map((c) => ({ key: c.key, label: c.label, cells: Object.fromEntries(c.cells), ...(c.samples.size > 0 ? { samples: Object.fromEntries(c.samples) } : {}) })),
  });
}

function printTable(columns: Column[], load0: number): void {
  const header = ['figure', ...columns.map((c) => c.label)];
  const rows = rowsShown().map(([key, label]) => [label, ...columns.map((c) => c.cells.get(key) ?? '–')]);
  process.stdout.write(`\n${markdownTable(header, rows)}\n\n`);
  if (ONLY) {
    process.stdout.write(`${FOOTNOTES[ONLY] ?? ''}\n`);
    return;
  }
  process.stdout.write(
    `MB = 10^6 bytes. Machine: ${machineDescription()}, load average ${load0.toFixed(2)} at start and ${loadavg()[0]!.toFixed(2)} at end; ` +
      `everything on 127.0.0.1, the clients (curl, skopeo) share the cores.\n` +
      `Throughput: median of ${ONE_CLIENT_REPS} with 1 client and ${REPS} with 16, systems measured in turn; each client is one HTTP/1.1 connection downloading the blob, capped at ${CAP} s; total bytes / longest transfer.\n` +
      `Reference column: nginx serving the blob's file (throughput, RSS, handshakes), a bare Node.js https server (Node's handshake floor), skopeo straight from the upstream (cold pull), dnsmasq (DNS).\n` +
      `${FOOTNOTES.hang}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
