/**
 * `workers`: one primary forking worker processes (node:cluster) that share the listening sockets,
 * Redis and the blob directory, each a full pullthrough. Real skopeo, dig and curl through every
 * door; the upstream's access log counts what reached it; processes are found in /proc and
 * stopped by PID.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from './helpers/images.js';
import { readDirLayout, skopeoCopy } from './helpers/clients.js';
import { startRedis, type RedisHandle } from './helpers/redis-server.js';
import { startFaultUpstream, randomBlob, type FaultUpstream } from './helpers/fault-upstream.js';
import { startTestResolver, type TestResolver } from './helpers/dns-fixture.js';
import { hijack, randomLoopback, type Hijack } from './helpers/hijack.js';
import { metricValue, startPullthrough, MAIN, type Pullthrough, type LogLine } from './helpers/pullthrough.js';
import { freePort, run, tempDir } from './helpers/process.js';
import { pull, redisMetadata, until } from './helpers/replicas.js';

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** PIDs whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** The executable's base name of `pid` (node for pullthrough's processes). */
function exeOf(pid: number): string {
  // The executable, not /proc/PID/comm: Node 24 names its main thread "MainThread", which comm shows.
  return basename(readlinkSync(`/proc/${pid}/exe`));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The PID currently in each worker slot, from the primary's "worker started" lines. */
function workerPids(pt: Pullthrough): Map<number, number> {
  const m = new Map<number, number>();
  for (const l of pt.logs()) if (l.msg === 'worker started') m.set(l.worker as number, l.pid as number);
  return m;
}

async function waitForLog(pt: Pullthrough, what: string, pred: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
  let found: LogLine | undefined;
  await until(what, () => (found = pt.logs().find(pred)) !== undefined, timeoutMs);
  return found!;
}

/** GET on a fresh connection (no keep-alive), so the kernel picks a worker for each request. */
function getFresh(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** Writes `doc` as a config file in a fresh temp dir and runs `serve` to completion. */
async function serveOnce(doc: Record<string, unknown>): Promise<{ code: number | null; stderr: string }> {
  const dir = await tempDir('pullthrough-workers-');
  try {
    const file = join(dir.path, 'c.yml');
    await writeFile(file, stringify({ dataDir: join(dir.path, 'data'), listen: { mirror: '127.0.0.1:0' }, ...doc }));
    const r = await run(process.execPath, [MAIN, 'serve', '--config', file], { env: { PATH: process.env.PATH }, allowFail: true, timeoutMs: 30_000 });
    return { code: r.code, stderr: r.stderr };
  } finally {
    await dir.cleanup();
  }
}

test('workers: config errors name the key and exit 2: more than one with the file metadata store, 0, many', async () => {
  const file = await serveOnce({ workers: 2 });
  assert.equal(file.code, 2, file.stderr);
  assert.match(file.stderr, /workers: 2 worker processes need metadata\.driver: redis \(the file metadata store belongs to one process/);
  for (const bad of [0, 'many']) {
    const r = await serveOnce({ workers: bad, metadata: { driver: 'redis', url: 'redis://127.0.0.1:1' } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /workers: must be a whole number from 1 to 256, or auto/);
  }
});

test('workers: a worker that cannot start (Redis unreachable) stops the primary with exit 1 and says why', async () => {
  const port = await freePort();
  const r = await serveOnce({ workers: 2, metadata: { driver: 'redis', url: `redis://127.0.0.1:${port}` } });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /redis/i);
  assert.match(r.stderr, /pullthrough: worker [12] exited \(code 1\) before it was ready; stopping/);
});

// ---------------------------------------------------------------------------------------------
// One pullthrough with two workers on every door, shared by the tests below (in order).

let up: Upstream;
let fault: FaultUpstream;
let redis: RedisHandle;
let resolver: TestResolver;
let pt: Pullthrough;
let trusted: Hijack;
let image: PushResult;
let ptCa: string;
let tlsIp: string;

before(async () => {
  [up, fault, redis, resolver] = await Promise.all([startUpstreamRegistry(), startFaultUpstream(), startRedis(), startTestResolver({ 'example.test': ['192.0.2.10'] })]);
  const ip = (tlsIp = randomLoopback());
  pt = await startPullthrough({
    workers: 2,
    listen: { mirror: '127.0.0.1:0', tls: `${ip}:443`, proxy: '127.0.0.1:0', dns: '127.0.0.1:0' },
    registries: { 'quay.io': { upstream: up.url }, 'fault.test': { upstream: fault.url } },
    defaultRegistry: 'quay.io',
    metadata: redisMetadata(redis),
    dns: { answer: ['10.9.8.7'], forwarders: [`127.0.0.1:${resolver.port}`] },
    cache: { fillLease: '5s' },
    tls: { sessionTickets: true },
  });
  await waitForLog(pt, 'both workers ready', (l) => l.msg === 'workers ready');
  ptCa = await readFile(join(pt.dataDir, 'ca', 'ca.crt'), 'utf8');
  trusted = await hijack({ 'quay.io': ip }, [ptCa]);
  image = await pushImage(up, 'team/app', 'v1', await makeImage({ format: 'oci', seed: 'workers-app', layers: 2 }));
});

after(async () => {
  await pt?.cleanup();
  await Promise.all([up?.stop(), fault?.close(), redis?.stop(), resolver?.close(), trusted?.cleanup()]);
});

test('workers: 2 → three node processes; every worker logs "listening" with its worker number and the real ports', () => {
  const kids = childrenOf(pt.proc.pid);
  assert.equal(kids.length, 2, `children of the primary: ${kids.join(', ')}`);
  assert.deepEqual([exeOf(pt.proc.pid), ...kids.map(exeOf)], ['node', 'node', 'node']);
  assert.deepEqual(new Set(workerPids(pt).values()), new Set(kids));
  const listening = pt.logs().filter((l) => l.msg === 'listening');
  for (const door of ['mirror', 'tls', 'proxy', 'dns']) {
    const lines = listening.filter((l) => l.door === door);
    assert.deepEqual(lines.map((l) => l.worker).sort(), [1, 2], `${door}: one line per worker`);
    assert.ok(lines.every((l) => l.port === pt.ports[door] && (l.port as number) > 0), `${door}: one real port for both workers: ${JSON.stringify(lines)}`);
  }
  // The admin API keeps per-process state (prefetch jobs): worker 1 alone serves it.
  assert.deepEqual(listening.filter((l) => l.door === 'admin').map((l) => l.worker), [1]);
});

test('workers: skopeo pulls through the mirror door and the TLS door get the upstream digests', async () => {
  await pull(pt, 'team/app', image);
  const r = await skopeoCopy('docker://quay.io/team/app:v1', 'dir', { env: trusted.env });
  try {
    assert.equal(r.code, 0, r.stderr);
    const layout = await readDirLayout(r.path);
    assert.equal(layout.manifestDigest, image.manifestDigest);
    assert.deepEqual(layout.blobs.map((b) => b.digest).sort(), image.blobs.map((b) => b.digest).sort());
  } finally {
    await r.cleanup();
  }
  assert.ok(pt.requests().some((l) => l.door === 'tls' && l.repo === 'team/app' && l.status === 200));
});

/**
 * One TLS connection for quay.io that sends `GET /v2/`: to the TLS door (`tls`: host and port), or
 * tunnelled through a CONNECT door (`proxyPort`). Resolves with its session ticket and whether it
 * resumed `session`.
 */
async function tlsRequest(to: { host: string; port: number } | { proxyPort: number }, ca: string, session?: Buffer): Promise<{ session: Buffer | undefined; reused: boolean }> {
  let socket: Socket | undefined;
  if ('proxyPort' in to) {
    socket = netConnect(to.proxyPort, '127.0.0.1');
    socket.write('CONNECT quay.io:443 HTTP/1.1\r\nhost: quay.io:443\r\n\r\n');
    const head = await new Promise<string>((resolve, reject) => {
      let got = '';
      const onData = (b: Buffer): void => {
        got += b.toString('latin1');
        if (got.includes('\r\n\r\n')) {
          socket!.off('data', onData);
          resolve(got);
        }
      };
      socket!.on('data', onData);
      socket!.once('error', reject);
    });
    assert.match(head, /^HTTP\/1\.1 200/);
  }
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    const options = { servername: 'quay.io', ca, session, ALPNProtocols: ['http/1.1'] };
    const s = tlsConnect(socket ? { ...options, socket } : { ...options, ...(to as { host: string; port: number }) }, () => {
      s.write('GET /v2/ HTTP/1.1\r\nhost: quay.io\r\nconnection: close\r\n\r\n');
    });
    s.on('session', (b: Buffer) => (ticket = b));
    s.on('data', () => {});
    s.on('end', () => resolve({ session: ticket, reused: s.isSessionReused() }));
    s.on('error', reject);
  });
}

/**
 * New TLS connections resuming one session, in batches, until each of `p`'s workers has accepted a
 * few (the kernel picks who accepts); every one must have resumed.
 */
async function resumeOnBothWorkers(p: Pullthrough, connect: (session?: Buffer) => ReturnType<typeof tlsRequest>): Promise<void> {
  const first = await connect();
  assert.ok(first.session, 'got a session ticket');
  const served = (): Map<unknown, number> => {
    const m = new Map<unknown, number>();
    for (const l of p.requests()) if (l.door === 'tls' && l.kind === 'base') m.set(l.worker, (m.get(l.worker) ?? 0) + 1);
    return m;
  };
  let n = 0;
  while (n < 240 && !([1, 2] as const).every((w) => (served().get(w) ?? 0) >= 3)) {
    const batch = await Promise.all(Array.from({ length: 8 }, () => connect(first.session)));
    assert.deepEqual(batch.map((r) => r.reused), Array(8).fill(true), `batch after ${n} connections: every one resumed`);
    n += 8;
    await new Promise((r) => setTimeout(r, 20)); // request lines are written when responses close
  }
  assert.ok(([1, 2] as const).every((w) => (served().get(w) ?? 0) >= 3), `both workers resumed sessions: ${JSON.stringify([...served()])}`);
}

test('workers: a TLS session resumes on whichever worker accepts it: TLS door, and CONNECT door without a TLS listener (shared ticket keys)', async (t) => {
  await resumeOnBothWorkers(pt, (session) => tlsRequest({ host: tlsIp, port: 443 }, ptCa, session));
  // node:cluster itself hands the first worker's ticket keys to the others for a listening TLS
  // server; without listen.tls only the keys from the primary make CONNECT-tunnelled sessions resume.
  const proxyOnly = await startPullthrough({
    workers: 2,
    listen: { mirror: '127.0.0.1:0', proxy: '127.0.0.1:0' },
    registries: { 'quay.io': { upstream: up.url } },
    metadata: redisMetadata(redis, 'proxy-only:'),
    tls: { sessionTickets: true },
  });
  t.after(() => proxyOnly.cleanup());
  await waitForLog(proxyOnly, 'both workers ready', (l) => l.msg === 'workers ready');
  const ca = await readFile(join(proxyOnly.dataDir, 'ca', 'ca.crt'), 'utf8');
  await resumeOnBothWorkers(proxyOnly, (session) => tlsRequest({ proxyPort: proxyOnly.ports.proxy! }, ca, session));
});

test('workers: the CONNECT door terminates TLS for a registry name; the DNS door answers and forwards over UDP and TCP', async () => {
  const caFile = join(pt.dataDir, 'ca', 'ca.crt');
  const r = await run('curl', ['-sS', '-D', '-', '-o', '/dev/null', '--proxy', `http://127.0.0.1:${pt.ports.proxy}`, '--cacert', caFile, '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', 'https://quay.io/v2/team/app/manifests/v1']);
  assert.match(r.stdout, /^HTTP\/1\.1 200/);
  assert.match(r.stdout, new RegExp(`docker-content-digest: ${image.manifestDigest}`, 'i'));
  const dig = async (args: string[]): Promise<string> => (await run('dig', ['+time=3', '+tries=1', '+short', '@127.0.0.1', '-p', String(pt.ports.dns), ...args], { allowFail: true })).stdout.trim();
  // Several queries each: either worker may read a datagram or accept a connection. Forwarded
  // answers come back on the forwarding worker's own socket (a shared one would lose about half).
  for (const transport of ['+notcp', '+tcp']) {
    for (let i = 0; i < 8; i++) {
      assert.equal(await dig([transport, 'quay.io', 'A']), '10.9.8.7', `${transport} answered #${i}`);
      assert.equal(await dig([transport, 'example.test', 'A']), '192.0.2.10', `${transport} forwarded #${i}`);
    }
  }
  assert.ok((resolver.seen.get('example.test') ?? 0) >= 16);
  // Summed over both workers; each worker's fast path answered over UDP on its own socket.
  const metrics = await pt.metrics();
  assert.equal(metricValue(metrics, 'pullthrough_dns_queries_total', { result: 'answered' }), 16);
  assert.equal(metricValue(metrics, 'pullthrough_dns_queries_total', { result: 'forwarded' }), 16);
  assert.equal(metricValue(metrics, 'pullthrough_dns_fast_path_answers_total'), 8);
});

test('workers: 8 concurrent cold pulls over both workers make one upstream GET per blob', async (t) => {
  const cold = await pushImage(up, 'team/cold', 'v1', await makeImage({ format: 'oci', seed: 'workers-cold', layers: 3, layerSize: [4 << 20, 3 << 20, 2 << 20] }));
  up.resetLog();
  const before = pt.requests().length;
  const pulls = await Promise.all(Array.from({ length: 8 }, () => skopeoCopy(`${pt.host}/team/cold:v1`, 'dir', { tlsVerify: false })));
  try {
    for (const [i, p] of pulls.entries()) {
      assert.equal(p.code, 0, `pull ${i}: ${p.stderr.slice(-2000)}`);
      const layout = await readDirLayout(p.path);
      assert.equal(layout.manifestDigest, cold.manifestDigest);
      assert.deepEqual(layout.blobs.map((b) => b.digest).sort(), cold.blobs.map((b) => b.digest).sort());
    }
  } finally {
    await Promise.all(pulls.map((p) => p.cleanup()));
  }
  for (const b of cold.blobs) assert.equal(up.count({ kind: 'blob', method: 'GET', pathIncludes: b.digest }), 1, `one upstream GET of ${b.digest}`);
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), cold.blobs.length);
  const byWorker = new Map<unknown, number>();
  for (const l of pt.requests().slice(before)) if (l.kind === 'blob') byWorker.set(l.worker, (byWorker.get(l.worker) ?? 0) + 1);
  const text = await pt.metrics();
  t.diagnostic(`blob requests by worker: ${JSON.stringify([...byWorker])}; waits for the other worker's download: ${metricValue(text, 'pullthrough_blob_fill_waits_total')}`);
  assert.deepEqual([...byWorker.keys()].sort(), [1, 2], 'both workers served blobs of the cold image');
});

test('workers: /metrics answered by either worker is the sum over both (requests counted on each)', async () => {
  const served = (): Map<unknown, number> => {
    const m = new Map<unknown, number>();
    for (const l of pt.requests()) if (l.kind === 'base') m.set(l.worker, (m.get(l.worker) ?? 0) + 1);
    return m;
  };
  const base0 = metricValue(await pt.metrics(), 'pullthrough_requests_total', { kind: 'base' });
  // New connections until each worker has answered a few: the kernel picks who accepts.
  let k = 0;
  while (k < 20 || (k < 400 && !([1, 2] as const).every((w) => (served().get(w) ?? 0) >= 3))) {
    assert.equal((await getFresh(`${pt.url}/v2/`)).status, 200);
    k++;
  }
  const byWorker = served();
  assert.ok((byWorker.get(1) ?? 0) > 0 && (byWorker.get(2) ?? 0) > 0, `both workers answered /v2/: ${JSON.stringify([...byWorker])}`);
  const total = base0 + k;
  // Counted when each response closes: wait until the last one is in.
  await until('every /v2/ request counted', async () => metricValue((await getFresh(`${pt.url}/metrics`)).body, 'pullthrough_requests_total', { kind: 'base' }) === total);
  // Each worker alone counted fewer than `total`; whichever answers a scrape, it shows them all.
  for (let i = 0; i < 10; i++) {
    const r = await getFresh(`${pt.url}/metrics`);
    assert.equal(r.status, 200);
    assert.equal(metricValue(r.body, 'pullthrough_requests_total', { kind: 'base' }), total, `scrape ${i}`);
    // The cache size is every worker's reading of one shared total: not summed.
    assert.equal(metricValue(r.body, 'pullthrough_cache_size_bytes'), Number(await redisTotal()), `scrape ${i}: cache size`);
  }
});

test('workers: offline mode switched through the admin API (worker 1) holds on every worker, and back', async () => {
  const admin = `http://127.0.0.1:${pt.ports.admin}`;
  const put = async (offline: boolean): Promise<unknown> => {
    const r = await fetch(`${admin}/api/v1/registries/quay.io/offline`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ offline }) });
    assert.equal(r.status, 200);
    return r.json();
  };
  const probe = `${pt.url}/v2/team/offline-probe/manifests/never-cached`;
  /** Statuses of the probe's request lines since `from`, by worker. */
  const answered = (from: number): Map<unknown, number[]> => {
    const m = new Map<unknown, number[]>();
    for (const l of pt.requests().slice(from)) if (String(l.path).includes('offline-probe')) m.set(l.worker, [...(m.get(l.worker) ?? []), l.status as number]);
    return m;
  };
  /** New connections until each worker has answered the probe a few times: the kernel picks who accepts. */
  const probeBoth = async (): Promise<Map<unknown, number[]>> => {
    const from = pt.requests().length;
    for (let k = 0; k < 20 || (k < 400 && !([1, 2] as const).every((w) => (answered(from).get(w)?.length ?? 0) >= 3)); k++) await getFresh(probe);
    await until('the probe requests logged', async () => [...answered(from).values()].flat().length > 0);
    return answered(from);
  };
  assert.deepEqual(await put(true), { registry: 'quay.io', offline: true, changed: true, scope: 'instance' });
  // The primary passes the switch on over IPC: give it a moment to reach the other worker.
  await new Promise((r) => setTimeout(r, 300));
  up.resetLog();
  try {
    const off = await probeBoth();
    assert.deepEqual([...off.keys()].sort(), [1, 2], `both workers answered: ${JSON.stringify([...off])}`);
    for (const [w, statuses] of off) assert.ok(statuses.every((st) => st === 503), `worker ${String(w)} answered offline (503) every time: ${statuses.join(' ')}`);
    assert.equal(up.count({ kind: 'manifest' }), 0, 'no manifest request reached the upstream');
    assert.match((await getFresh(probe)).body, /offline/);
  } finally {
    assert.deepEqual(await put(false), { registry: 'quay.io', offline: false, changed: true, scope: 'instance' });
  }
  await new Promise((r) => setTimeout(r, 300));
  const on = await probeBoth();
  for (const [w, statuses] of on) assert.ok(statuses.every((st) => st === 404), `worker ${String(w)} asked upstream again (404): ${statuses.join(' ')}`);
  assert.ok(up.count({ kind: 'manifest' }) > 0, 'the upstream was asked again');
});

/** The shared total of recorded blob bytes, as Redis holds it. */
async function redisTotal(): Promise<string> {
  const r = await run('redis-cli', ['-p', String(redis.port), '--raw', 'get', 'pt:{blobs}:total']);
  return r.stdout.trim() || '0';
}

test('workers: kill -9 of one worker: logged and replaced; the other worker’s download in progress and its spool survive; pulls keep working', async () => {
  const before = metricValue(await pt.metrics(), 'pullthrough_requests_total');
  // A blob that stalls after its first MiB: its download sits in one worker's spool.
  const data = randomBlob(3 << 20);
  let release!: () => void;
  const digest = fault.addBlob(data, { kind: 'stall', after: 1 << 20, release: new Promise<void>((r) => (release = r)) });
  const body = fetch(`${pt.url}/v2/fault.test/team/app/blobs/${digest}`).then(async (r) => ({ status: r.status, bytes: Buffer.from(await r.arrayBuffer()) }));
  const spoolRoot = join(pt.dataDir, 'spool');
  let filler = 0;
  let spoolFile = '';
  await until('a spool file of the stalled download', async () => {
    for (const slot of [1, 2]) {
      const files = await readdir(join(spoolRoot, String(slot))).catch(() => [] as string[]);
      for (const f of files) {
        if ((await stat(join(spoolRoot, String(slot), f))).size >= 1 << 20) {
          filler = slot;
          spoolFile = join(spoolRoot, String(slot), f);
        }
      }
    }
    return filler !== 0;
  });
  const victim = filler === 1 ? 2 : 1;
  const victimPid = workerPids(pt).get(victim)!;
  // What a crashed worker leaves in its own spool is its replacement's to clear.
  const leftover = join(spoolRoot, String(victim), 'left-by-the-dead-worker');
  await writeFile(leftover, 'partial');
  process.kill(victimPid, 'SIGKILL');
  const died = await waitForLog(pt, 'the primary logs the death', (l) => l.msg === 'worker died; replacing it' && l.pid === victimPid);
  assert.equal(died.signal, 'SIGKILL');
  assert.equal(died.worker, victim);
  const ready = await waitForLog(pt, 'a replacement worker ready', (l) => l.msg === 'worker ready' && l.worker === victim && l.pid !== victimPid);
  assert.ok(alive(ready.pid as number) && !alive(victimPid));
  assert.equal(childrenOf(pt.proc.pid).length, 2);
  await assert.rejects(stat(leftover), 'the replacement cleared its dead predecessor’s spool');
  assert.ok((await stat(spoolFile)).size >= 1 << 20, 'the download in progress on the other worker kept its spool file');

  release();
  const got = await body;
  assert.equal(got.status, 200);
  assert.equal(sha(got.bytes), digest, 'the stalled download finished intact');
  assert.equal(fault.count(`GET /v2/team/app/blobs/${digest}`), 1);
  await until('the blob committed', async () => (await stat(join(pt.dataDir, 'blobs', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7))).catch(() => null)) !== null);

  // Pulls go on, on both workers (new connections), and the counters did not go backwards.
  await Promise.all([pull(pt, 'team/app', image), pull(pt, 'team/app', image)]);
  assert.ok(metricValue(await pt.metrics(), 'pullthrough_requests_total') >= before, 'combined counters keep the dead worker’s counts');
});

test('workers: SIGTERM to the primary: the workers drain and exit, the primary exits 0', async () => {
  const workers = childrenOf(pt.proc.pid);
  assert.equal(workers.length, 2);
  await pt.proc.stop(60_000);
  assert.equal(await pt.proc.exited, 0, pt.proc.output().slice(-3000));
  for (const pid of workers) assert.ok(!alive(pid), `worker ${pid} exited`);
  const lines = pt.logs();
  assert.equal(lines.filter((l) => l.msg === 'worker exited' && l.code === 0).length, 2);
  assert.ok(lines.some((l) => l.msg === 'stopped' && l.exitCode === 0));
});

// ---------------------------------------------------------------------------------------------

test('workers: when the primary dies (kill -9), its workers exit', async (t) => {
  const r = await startRedis();
  t.after(() => r.stop());
  const p = await startPullthrough({ workers: 2, metadata: redisMetadata(r) });
  t.after(() => p.cleanup());
  await waitForLog(p, 'both workers ready', (l) => l.msg === 'workers ready');
  const workers = childrenOf(p.proc.pid);
  assert.equal(workers.length, 2);
  await p.kill9();
  await until('workers gone', () => workers.every((pid) => !alive(pid)), 10_000);
});

test('workers: workers that keep dying right after they start are replaced with a growing delay; then the primary gives up (exit 1)', async (t) => {
  const r = await startRedis();
  t.after(() => r.stop());
  const p = await startPullthrough({ workers: 2, metadata: redisMetadata(r) });
  t.after(() => p.cleanup());
  await waitForLog(p, 'both workers ready', (l) => l.msg === 'workers ready');
  // Without Redis every replacement fails at start.
  await r.kill9();
  for (const pid of workerPids(p).values()) process.kill(pid, 'SIGKILL');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([p.proc.exited, new Promise<string>((res) => (timer = setTimeout(() => res('still running'), 60_000)))]);
  clearTimeout(timer);
  assert.equal(code, 1, p.proc.output().slice(-3000));
  assert.match(p.proc.output(), /pullthrough: every worker died within 10 s of starting, 5 times in a row \(last: worker [12], exit code 1\); giving up/);
  for (const slot of [1, 2]) {
    const delays = p.logs().filter((l) => l.msg === 'worker died; replacing it' && l.worker === slot).map((l) => l.restartInMs);
    // The slot that reaches five first waits 16 s more before the other one does too.
    assert.deepEqual(delays.slice(0, 4), [1000, 2000, 4000, 8000], `slot ${slot}: replaced after a growing delay`);
    assert.ok(delays.length <= 5);
  }
  assert.deepEqual(childrenOf(p.proc.pid), []);
});
