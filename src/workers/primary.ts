/**
 * `workers` > 1: the primary process. It prepares what workers must not race over (the CA, the
 * spool directories), forks the workers (node:cluster), replaces those that die, gives a scrape
 * every worker's metrics combined, and on SIGTERM/SIGINT lets them drain and exits when they have.
 * It serves no request itself: each worker is a full pullthrough, a replica on the same host
 * sharing the listening sockets, Redis and the blob store (see src/workers/worker.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { CertificateAuthority } from '../pki/index.js';
import { pickDnsPort } from '../doors/index.js';
import { DRAIN_GRACE_MS } from '../server.js';
import { WorkerMetrics } from './metrics-aggregate.js';
import { isMessage, type FromPrimary, type FromWorker } from './protocol.js';

/** A worker that ran less than this (or never became ready) failed quickly: its replacement waits. */
export const MIN_UPTIME_MS = 10_000;
/** Wait before replacing a worker after its first quick failure; doubles after each further one. */
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
/** Quick failures in a row, on every slot at once, after which the primary gives up. */
export const GIVE_UP_AFTER = 5;
/** After SIGTERM, how long workers get to drain before they are killed: their own bound, plus a margin. */
const STOP_GRACE_MS = DRAIN_GRACE_MS + 15_000;
/** How long a metrics collection waits for workers; one that is late counts with its previous figures. */
const COLLECT_TIMEOUT_MS = 2_000;

export interface PrimaryOptions {
  /**
   * Round-robin distribution of connections by the primary (NODE_CLUSTER_SCHED_POLICY=rr, for
   * comparison) instead of the default, where workers accept on the shared socket themselves.
   */
  roundRobin?: boolean;
}

/** One worker position (1..workers): the worker in it, and its failure history. */
interface Slot {
  readonly n: number;
  worker: Worker | undefined;
  startedAt: number;
  ready: boolean;
  /** Quick failures in a row (reset once a worker of this slot stayed up MIN_UPTIME_MS). */
  quickFailures: number;
  restartTimer?: NodeJS.Timeout;
  stableTimer?: NodeJS.Timeout;
}

/**
 * Runs the primary: loads or creates the CA, clears the spools, forks `config.workers` workers
 * and supervises them until SIGTERM/SIGINT, then exits the process (0 when every worker drained
 * and exited by itself). Also exits (1) when a worker fails before the first start completed, or
 * when every slot keeps failing right after starting.
 * @throws when the CA cannot be loaded or created, or the data directory cannot be prepared.
 */
export async function runPrimary(config: Config, log: Logger, opts: PrimaryOptions = {}): Promise<void> {
  await mkdir(config.paths.dataDir, { recursive: true, mode: 0o750 });
  // Created here, once, so that workers starting together never race to create it (two CAs, one
  // of them on disk, the other in a worker's memory signing leaves nobody trusts).
  const ca = await CertificateAuthority.load(config, { log });
  // Start-up cleanup, once, before any worker runs. Each worker owns `spool/<n>` (and, for fs blob
  // storage, `_tmp/<n>`), which it wipes when it starts, as a single process wipes `spool`: a
  // replacement worker clears what its dead predecessor left and never touches the downloads of
  // the workers still running. Cleaning everything in every worker instead would delete live
  // workers' spools each time one restarts; cleaning only here would leak a dead worker's files
  // until the next full restart.
  await rm(config.paths.spool, { recursive: true, force: true });
  if (config.storage.driver === 'fs') await rm(config.paths.blobsTmp, { recursive: true, force: true });
  // One set of TLS session ticket keys for every worker: a ticket resumes on whichever accepts.
  const ticketKeys = randomBytes(48);
  /** Registries offline now, for the whole instance: the config's, as switched since through any worker's admin API. */
  const offlineNow = new Set(Object.values(config.registries).filter((r) => r.offline).map((r) => r.name));
  // The DNS door's native fast path binds a socket of its own in each worker (SO_REUSEPORT), not
  // one the cluster shares, so with port 0 the workers would each get another port: pick it here.
  const dnsListen = config.listen.dns?.port === 0 ? { ...config.listen.dns, port: await pickDnsPort(config.listen.dns.host) } : config.listen.dns;

  // SCHED_NONE: every worker accepts on the shared listening socket itself. Round-robin has the
  // primary accept each connection and pass it to a worker over IPC: one more hop, a file
  // descriptor sent through a pipe, and the primary's single thread in the path of every
  // connection. Measured (2 cores shared with the clients and other load, 2 workers, full TLS
  // handshakes from 4 openssl s_time clients, 6 runs each, medians): round-robin cost 0.97 ms of
  // server CPU (primary + workers) per handshake against 0.61 ms, and made ~930 handshakes/s
  // against ~1290. The kernel's spread over workers is uneven while they idle (a burst of
  // connections may all go to one), even enough once they are busy, which is when it matters.
  cluster.schedulingPolicy = opts.roundRobin ? cluster.SCHED_RR : cluster.SCHED_NONE;
  cluster.setupPrimary({ serialization: 'advanced' });

  const metrics = new WorkerMetrics();
  const slots: Slot[] = Array.from({ length: config.workers }, (_, i) => ({ n: i + 1, worker: undefined, startedAt: 0, ready: false, quickFailures: 0 }));
  const slotOf = new Map<number, Slot>();
  let started = false; // every slot was ready once
  let stopping = false;
  let exitCode = 0;
  let stopTimer: NodeJS.Timeout | undefined;
  log.info('starting workers', { workers: config.workers, scheduling: opts.roundRobin ? 'round-robin' : 'none', ca: ca.fingerprint });

  const send = (w: Worker, msg: FromPrimary): boolean => {
    if (!w.isConnected()) return false;
    try {
      w.send(msg);
      return true;
    } catch {
      return false; // the channel closed in between: the exit handler deals with it
    }
  };

  const live = (): Worker[] => slots.flatMap((s) => (s.worker ? [s.worker] : []));

  const fork = (slot: Slot): void => {
    slot.restartTimer = undefined;
    if (stopping) return;
    const w = cluster.fork();
    slot.worker = w;
    slot.startedAt = Date.now();
    slot.ready = false;
    slotOf.set(w.id, slot);
    log.info('worker started', { worker: slot.n, pid: w.process.pid });
  };

  const workerConfig = (slot: Slot): Config => ({
    ...config,
    // The admin API keeps per-process state (prefetch jobs, downloads in progress, the offline
    // switch): one worker serves it, so a job started by one request is found by the next.
    listen: { ...config.listen, dns: dnsListen, admin: slot.n === 1 ? config.listen.admin : null },
    paths: { ...config.paths, spool: join(config.paths.spool, String(slot.n)), blobsTmp: join(config.paths.blobsTmp, String(slot.n)) },
  });

  // Metrics: a worker that got a scrape asks; the primary collects from every ready worker.
  const collections = new Map<number, { waiting: Set<number>; finish: () => void }>();
  let collectSeq = 0;
  const collect = async (): Promise<string> => {
    const id = ++collectSeq;
    const targets = slots.flatMap((s) => (s.worker && s.ready ? [s.worker] : []));
    await new Promise<void>((resolve) => {
      const waiting = new Set<number>();
      const finish = (): void => {
        clearTimeout(timer);
        collections.delete(id);
        resolve();
      };
      const timer = setTimeout(finish, COLLECT_TIMEOUT_MS);
      collections.set(id, { waiting, finish });
      for (const w of targets) if (send(w, { type: 'pullthrough:metrics-collect', id })) waiting.add(w.id);
      if (waiting.size === 0) finish();
    });
    return metrics.text(live().map((w) => w.id));
  };
  const answered = (workerId: number): void => {
    for (const c of collections.values()) {
      c.waiting.delete(workerId);
      if (c.waiting.size === 0) c.finish();
    }
  };

  cluster.on('message', (w: Worker, msg: unknown) => {
    if (!isMessage<FromWorker>(msg)) return;
    const slot = slotOf.get(w.id);
    if (!slot) return;
    switch (msg.type) {
      case 'pullthrough:hello':
        send(w, { type: 'pullthrough:start', slot: slot.n, config: workerConfig(slot), ticketKeys, offline: [...offlineNow] });
        return;
      case 'pullthrough:ready': {
        slot.ready = true;
        log.info('worker ready', { worker: slot.n, pid: w.process.pid, ms: Date.now() - slot.startedAt });
        clearTimeout(slot.stableTimer);
        slot.stableTimer = setTimeout(() => {
          if (slot.worker === w) slot.quickFailures = 0;
        }, MIN_UPTIME_MS);
        slot.stableTimer.unref();
        if (!started && slots.every((s) => s.ready)) {
          started = true;
          log.info('workers ready', { workers: slots.length });
        }
        return;
      }
      case 'pullthrough:metrics-collected':
        metrics.record(w.id, msg.metrics);
        answered(w.id);
        return;
      case 'pullthrough:offline': {
        // Only a change is passed on, so a worker applying it (and reporting it back) ends there.
        if (offlineNow.has(msg.registry) === msg.offline) return;
        if (msg.offline) offlineNow.add(msg.registry);
        else offlineNow.delete(msg.registry);
        for (const other of live()) if (other !== w) send(other, { type: 'pullthrough:offline', registry: msg.registry, offline: msg.offline });
        return;
      }
      case 'pullthrough:metrics':
        collect().then(
          (text) => send(w, { type: 'pullthrough:metrics-text', id: msg.id, text }),
          (err: Error) => send(w, { type: 'pullthrough:metrics-text', id: msg.id, error: err.message }),
        );
        return;
    }
  });

  const finishIfDone = (): void => {
    if (!stopping || live().length > 0) return;
    clearTimeout(stopTimer);
    log.info('stopped', { exitCode });
    process.exit(exitCode);
  };

  /** Stops every worker (SIGTERM: they drain) and exits with `code` once they are gone. */
  const stopAll = (code: number): void => {
    stopping = true;
    exitCode = Math.max(exitCode, code);
    for (const s of slots) {
      clearTimeout(s.restartTimer);
      clearTimeout(s.stableTimer);
    }
    for (const w of live()) w.process.kill('SIGTERM');
    stopTimer ??= setTimeout(() => {
      const left = live();
      log.error('workers did not exit in time; killing them', { pids: left.map((w) => w.process.pid), graceMs: STOP_GRACE_MS });
      exitCode = 1;
      for (const w of left) w.process.kill('SIGKILL');
    }, STOP_GRACE_MS);
    finishIfDone();
  };

  cluster.on('exit', (w: Worker, code: number | null, signal: string | null) => {
    const slot = slotOf.get(w.id);
    slotOf.delete(w.id);
    metrics.retire(w.id);
    answered(w.id);
    if (!slot || slot.worker !== w) return;
    slot.worker = undefined;
    clearTimeout(slot.stableTimer);
    const wasReady = slot.ready;
    slot.ready = false;
    const uptimeMs = Date.now() - slot.startedAt;
    const fields = { worker: slot.n, pid: w.process.pid, code, signal, uptimeMs };
    if (stopping) {
      log.info('worker exited', fields);
      if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGINT') exitCode = 1;
      finishIfDone();
      return;
    }
    if (!started) {
      // Like a single process that cannot start: stop, and let the orchestrator (or the operator) see it.
      log.error('worker failed to start; stopping', fields);
      process.stderr.write(`pullthrough: worker ${slot.n} exited (${signal ?? `code ${code}`}) before it was ready; stopping\n`);
      stopAll(1);
      return;
    }
    const quick = !wasReady || uptimeMs < MIN_UPTIME_MS;
    slot.quickFailures = quick ? slot.quickFailures + 1 : 0;
    if (slots.every((s) => s.quickFailures >= GIVE_UP_AFTER)) {
      log.error('every worker keeps dying right after it starts; giving up', { ...fields, failures: GIVE_UP_AFTER });
      process.stderr.write(
        `pullthrough: every worker died within ${MIN_UPTIME_MS / 1000} s of starting, ${GIVE_UP_AFTER} times in a row (last: worker ${slot.n}, ${signal ?? `exit code ${code}`}); giving up\n`,
      );
      stopAll(1);
      return;
    }
    const delay = slot.quickFailures === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (slot.quickFailures - 1));
    log.error('worker died; replacing it', { ...fields, restartInMs: delay });
    slot.restartTimer = setTimeout(() => fork(slot), delay);
  });

  const onSignal = (signal: string): void => {
    if (stopping) return;
    log.info('shutting down', { signal, workers: live().length });
    stopAll(0);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  for (const s of slots) fork(s);
}
