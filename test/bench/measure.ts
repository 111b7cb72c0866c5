/**
 * The bench's measuring tools: curl for blob throughput, /proc for RSS, skopeo for pulls, a TLS
 * handshake loop, dnsperf for DNS. Each returns numbers; the table is built elsewhere.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { cpus, release } from 'node:os';
import { run } from '../helpers/process.js';
import { skopeoCopy } from '../helpers/clients.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A URL to GET and, for names that only exist in the bench (SNI), where curl should connect. */
export interface Target {
  readonly url: string;
  /**
   * curl `--connect-to host:443:127.0.0.1:port`: the URL names the registry as clients do (port 443,
   * which is also what the TLS door routes on), the connection goes to the system's real port.
   */
  readonly connectTo?: string;
}

export interface Throughput {
  /** 10^6 bytes per second over the whole run (all clients together). */
  readonly mbps: number;
  readonly bytes: number;
  readonly seconds: number;
  /** Transfers that ended with an HTTP status other than 200 or a curl error other than the time cap. */
  readonly failures: number;
}

/**
 * `clients` concurrent GETs of `t` in one curl process (HTTP/1.1, one connection each), each
 * stopped after `maxSeconds` if not done. Throughput is all bytes over the longest transfer's
 * time, so the figure holds whether or not the blob finished within the cap.
 */
export async function curlThroughput(t: Target, clients: number, maxSeconds: number): Promise<Throughput> {
  const args = ['-sS', '--http1.1', '-k', '--max-time', String(maxSeconds), '-w', '%{size_download} %{time_total} %{http_code} %{exitcode}\\n'];
  if (t.connectTo) args.push('--connect-to', t.connectTo);
  if (clients > 1) args.push('-Z', '--parallel-immediate', '--parallel-max', String(clients));
  for (let i = 0; i < clients; i++) args.push('-o', '/dev/null', t.url);
  const r = await run('curl', args, { allowFail: true, timeoutMs: (maxSeconds + 60) * 1000 });
  let bytes = 0;
  let seconds = 0;
  let failures = 0;
  let lines = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /^(\d+) ([\d.]+) (\d+) (\d+)$/.exec(line.trim());
    if (!m) continue;
    lines++;
    bytes += Number(m[1]);
    seconds = Math.max(seconds, Number(m[2]));
    // 28 = the --max-time cap: expected for big blobs and many clients.
    if (m[3] !== '200' || (m[4] !== '0' && m[4] !== '28')) failures++;
  }
  failures += Math.max(0, clients - lines);
  return { mbps: seconds > 0 ? bytes / seconds / 1e6 : 0, bytes, seconds, failures };
}

/** sha256 of what `t` serves (the whole body), to check a system serves the right bytes. */
export async function curlDigest(t: Target, timeoutSeconds = 600): Promise<string> {
  const connectTo = t.connectTo ? `--connect-to '${t.connectTo}'` : '';
  const r = await run('bash', ['-c', `set -o pipefail; curl -sS --http1.1 -k -f ${connectTo} '${t.url}' | sha256sum`], { timeoutMs: timeoutSeconds * 1000 });
  return `sha256:${r.stdout.split(/\s/)[0]}`;
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** The fields of /proc/PID/stat after the command (field 3, state, is [0]); null once exited. */
function statFields(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command may contain spaces and parentheses: the fields start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** `pid` and all its descendants (nginx's workers, cache manager and loader). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const f = statFields(e);
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(e));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/**
 * Samples RSS every 100 ms; `stop()` gives the peak in MB (10^6). Each root counts with its
 * descendants (nginx's workers); several roots are either separate servers of which the largest
 * counts (`max`: distribution's HTTP and TLS processes, only one of which is being measured at a
 * time) or parts of one whole (`sum`: s3rver and redis). A root listed twice counts once.
 */
export function sampleRss(roots: () => number[], combine: 'max' | 'sum' = 'max'): { stop(): number } {
  let peak = 0;
  let trees: number[][] = [];
  let tick = 0;
  const sample = (): void => {
    // The trees rarely change; re-read them every second, RSS every tick.
    if (tick++ % 10 === 0) trees = [...new Set(roots())].map(processTree);
    const perRoot = trees.map((t) => t.reduce((a, p) => a + rssKb(p), 0));
    const kb = combine === 'max' ? Math.max(0, ...perRoot) : perRoot.reduce((a, b) => a + b, 0);
    peak = Math.max(peak, kb);
  };
  sample();
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return (peak * 1024) / 1e6;
    },
  };
}

/**
 * Writes out what earlier work left dirty in the page cache (`sync`) before a timed pull. The
 * systems before it leave their caches' writes behind (s3rver keeps ~120 MB per pull), which the
 * kernel writes back 30 s later, in the middle of whichever pull is running then: on this kind
 * of machine, hundreds of MB at a time during the cold rows (docs/performance.md, twenty-third
 * round). The pull's own writes, and skopeo's syncs of them, still count.
 */
export async function settleDisk(): Promise<void> {
  await run('sync', [], { timeoutMs: 120_000 });
}

/** Seconds a `skopeo copy` of `ref` (plain HTTP) into a fresh dir: takes; throws when it fails. */
export async function timedPull(ref: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await skopeoCopy(ref, 'dir', { tlsVerify: false, timeoutMs: 600_000 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await r.cleanup();
  if (r.code !== 0) throw new Error(`skopeo copy ${ref} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return s;
}

/** One TLS handshake (new session, no resumption); resolves with milliseconds. */
export function handshake(port: number, servername: string, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, timeout: timeoutMs }, () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      s.destroy();
      resolve(ms);
    });
    s.on('timeout', () => {
      s.destroy();
      reject(new Error(`TLS handshake with ${servername} on port ${port} timed out`));
    });
    s.on('error', (err) => {
      s.destroy();
      reject(err);
    });
  });
}

/** CPU seconds (user + system) used so far by `pids` and their descendants. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const p of new Set(pids.flatMap(processTree))) {
    const f = statFields(p);
    // utime and stime (fields 14 and 15 of stat), in clock ticks of 1/100 s.
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}

/** The path every system answers by itself (a 404 from its own router), without the upstream. */
export const LOCAL_PATH = '/_bench/tls';

/**
 * New TLS connections per second: ApacheBench (C, OpenSSL) opens `concurrency` connections at a
 * time for `seconds`, each a full handshake (ab resumes no sessions) with SNI `servername`,
 * one GET of LOCAL_PATH, then a close. A Node.js client would need ~1 ms of CPU per handshake
 * itself and, sharing two cores with the server, would measure itself. Also gives the server's
 * CPU per connection (`pids` with descendants), a figure that does not depend on the client.
 */
export async function tlsConnectionsPerSecond(
  port: number,
  servername: string,
  seconds: number,
  pids: number[],
  concurrency = 8,
): Promise<{ perSecond: number; cpuMs: number; failed: number }> {
  const cpu0 = cpuSeconds(pids);
  const r = await run('ab', ['-q', '-t', String(seconds), '-c', String(concurrency), '-s', '10', '-H', `Host: ${servername}`, `https://127.0.0.1:${port}${LOCAL_PATH}`], {
    allowFail: true,
    timeoutMs: (seconds + 60) * 1000,
  });
  const cpu = cpuSeconds(pids) - cpu0;
  const out = r.stdout + r.stderr;
  const complete = /Complete requests:\s+(\d+)/.exec(out);
  const rate = /Requests per second:\s+([\d.]+)/.exec(out);
  const failed = /Failed requests:\s+(\d+)/.exec(out);
  if (!complete || !rate) throw new Error(`ab gave no figure:\n${out.slice(-2000)}`);
  const n = Number(complete[1]);
  return { perSecond: Number(rate[1]), cpuMs: n > 0 ? (cpu * 1000) / n : NaN, failed: failed ? Number(failed[1]) : 0 };
}

/** dnsperf against 127.0.0.1:port asking A records of `names` round-robin; answers per second. */
export async function dnsAnswersPerSecond(dir: string, port: number, names: string[], seconds: number): Promise<{ qps: number; lost: number }> {
  const file = join(dir, `queries-${port}.txt`);
  await writeFile(file, names.map((n) => `${n} A`).join('\n') + '\n');
  const r = await run('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(seconds), '-c', '4', '-q', '200', '-t', '2'], {
    allowFail: true,
    timeoutMs: (seconds + 30) * 1000,
  });
  const out = r.stdout + r.stderr;
  const qps = /Queries per second:\s+([\d.]+)/.exec(out);
  const lost = /Queries lost:\s+(\d+)/.exec(out);
  if (!qps) throw new Error(`dnsperf gave no figure:\n${out.slice(-2000)}`);
  return { qps: Number(qps[1]), lost: lost ? Number(lost[1]) : 0 };
}

/**
 * The machine as runs should be told apart by: cores and CPU model, and what the model name
 * hides (the CPU family and model, the kernel, whether page-table isolation is on). Two machines
 * of one kind, both "2 cores (AMD EPYC)", gave figures that no build explained until these were
 * read (docs/performance.md, twentieth session).
 */
export function machineDescription(cpuinfo = readIfThere('/proc/cpuinfo'), meltdown = readIfThere('/sys/devices/system/cpu/vulnerabilities/meltdown')): string {
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(cpuinfo)?.[1]?.trim();
  const family = field('cpu family');
  const model = field('model');
  const parts = [
    cpus()[0]?.model ?? 'unknown CPU',
    ...(family !== undefined && model !== undefined ? [`family ${family} model ${model}`] : []),
    `kernel ${release()}`,
    ...(/PTI/.test(meltdown) ? ['page-table isolation on'] : []),
  ];
  return `${cpus().length} cores (${parts.join(', ')})`;
}

function readIfThere(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
