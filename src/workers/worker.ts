/**
 * A worker process (`workers` > 1): a full pullthrough, like a replica on the same host. It takes
 * its config from the primary (exactly what the primary validated, with the worker's own spool
 * directories) and the TLS ticket keys all workers share; it answers the primary's metrics
 * collections and asks the primary when a scrape reaches it. When the primary dies, node:cluster
 * exits the worker (the IPC channel's disconnect).
 */
import { deepFreeze } from '../config/load.js';
import type { Config } from '../config/index.js';
import type { RunningServer, ServerOptions } from '../server.js';
import { isMessage, type FromPrimary, type FromWorker } from './protocol.js';
import { OfflineSwitch } from '../upstream/offline-switch.js';

/** How long a worker waits for the primary's combined metrics before answering the scrape 503. */
const METRICS_TIMEOUT_MS = 5_000;

export interface WorkerStart {
  /** This worker's number (1..workers): its log lines' `worker` field and its spool directory. */
  slot: number;
  config: Config;
  /** For startServer: the shared ticket keys and /metrics from the primary. */
  serverOptions: ServerOptions;
  /** Tells the primary the server is up, and answers its metrics collections from then on. */
  ready(server: RunningServer): void;
}

function tell(msg: FromWorker): void {
  // Without a channel the primary is gone, and node:cluster is exiting this worker.
  if (process.connected) process.send!(msg);
}

/** Waits for the primary's start message. */
export async function joinPrimary(): Promise<WorkerStart> {
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  let seq = 0;
  let server: RunningServer | undefined;
  let offline: OfflineSwitch | undefined;

  const start = await new Promise<Extract<FromPrimary, { type: 'pullthrough:start' }>>((resolve) => {
    process.on('message', (msg: unknown) => {
      if (!isMessage<FromPrimary>(msg)) return;
      switch (msg.type) {
        case 'pullthrough:start':
          resolve(msg);
          return;
        case 'pullthrough:offline':
          // Applied quietly: set() tells this worker's listeners, which only report changes.
          offline?.set(msg.registry, msg.offline);
          return;
        case 'pullthrough:metrics-collect':
          // Not yet ready: the primary does not ask before 'ready'.
          if (!server) return;
          server.metrics.registry.getMetricsAsJSON().then(
            (metrics) => tell({ type: 'pullthrough:metrics-collected', id: msg.id, metrics }),
            () => {}, // the primary counts this worker with its previous figures
          );
          return;
        case 'pullthrough:metrics-text': {
          const p = pending.get(msg.id);
          if (!p) return;
          pending.delete(msg.id);
          if (msg.text !== undefined) p.resolve(msg.text);
          else p.reject(new Error(`the primary process could not combine the workers' metrics: ${msg.error ?? 'no reason given'}`));
          return;
        }
      }
    });
    tell({ type: 'pullthrough:hello' });
  });

  const metricsText = (): Promise<string> =>
    new Promise((resolve, reject) => {
      if (!process.connected) return reject(new Error('the primary process is gone'));
      const id = ++seq;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the primary process did not answer within ${METRICS_TIMEOUT_MS / 1000} s`));
      }, METRICS_TIMEOUT_MS);
      pending.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      tell({ type: 'pullthrough:metrics', id });
    });

  // One offline mode for the whole instance: whichever worker's admin API switches it, the primary
  // passes it on to the others, and a restarted worker starts from the current state.
  offline = new OfflineSwitch(start.offline);
  offline.onChange((registry, isOffline) => tell({ type: 'pullthrough:offline', registry, offline: isOffline }));

  return {
    slot: start.slot,
    config: deepFreeze(start.config),
    serverOptions: { ticketKeys: Buffer.from(start.ticketKeys), metricsText, offline },
    ready(s) {
      server = s;
      tell({ type: 'pullthrough:ready' });
    },
  };
}
