/**
 * `pullthrough serve`: loads the config, starts, and stops on SIGTERM/SIGINT after draining. With
 * `workers` > 1 it runs as the primary of that many worker processes (src/workers/), and in each
 * worker takes its config from the primary.
 */
import cluster from 'node:cluster';
import type { Config } from '../config/index.js';
import { createLogger, type FlushingLogger } from '../observability/logger.js';
import { startServer, type RunningServer, type ServerOptions } from '../server.js';
import { runPrimary } from '../workers/primary.js';
import { joinPrimary } from '../workers/worker.js';
import { CliError } from './parse.js';

/**
 * Runs the mirror; resolves once it is serving (the process then lives until a signal).
 * @throws CliError (exit 1) when it cannot start; the loader's CliError (exit 2) for a bad config.
 */
export async function serve(loadConfig: () => Config, env: NodeJS.ProcessEnv): Promise<void> {
  if (cluster.isWorker) {
    // A worker of `workers` > 1: the config is the one the primary validated (--config is its).
    const w = await joinPrimary();
    return run(w.config, createLogger(w.config.log.level, process.stdout, { worker: w.slot }, w.config.log.flushMs), w.serverOptions, (server) => w.ready(server));
  }
  const cfg = loadConfig();
  const log = createLogger(cfg.log.level, process.stdout, undefined, cfg.log.flushMs);
  if (cfg.workers > 1) {
    process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: (err as Error)?.stack ?? String(err) }));
    try {
      // Node's own variable for the cluster's scheduling policy; only `rr` changes ours.
      await runPrimary(cfg, log, { roundRobin: env.NODE_CLUSTER_SCHED_POLICY === 'rr' });
    } catch (err) {
      throw new CliError(`pullthrough: ${(err as Error).message}`, 1);
    }
    return;
  }
  return run(cfg, log);
}

/** Starts the server and stops it on SIGTERM/SIGINT after draining (exit 0); throws CliError (exit 1) if it cannot start. */
async function run(cfg: Config, log: FlushingLogger, opts: ServerOptions = {}, started?: (server: RunningServer) => void): Promise<void> {
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: (err as Error)?.stack ?? String(err) }));
  let server: RunningServer;
  try {
    server = await startServer(cfg, log, opts);
  } catch (err) {
    throw new CliError(`pullthrough: ${(err as Error).message}`, 1);
  }
  started?.(server);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    // The log lines still buffered are written before the exit, in order.
    const exit = (code: number): void => void log.settle().then(() => process.exit(code));
    server.close().then(
      () => exit(0),
      (err: Error) => {
        log.error('shutdown failed', { error: err.message });
        exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
