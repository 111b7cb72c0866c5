#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * The command line: the only reader of argv and the environment. Loads the config, builds, starts,
 * and stops on SIGTERM/SIGINT after draining. With `workers` > 1, `serve` runs as the primary of
 * that many worker processes (src/workers/), and in each worker takes its config from the primary.
 */
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError, type Config } from './config/index.js';
import { createLogger, type Logger } from './observability/logger.js';
import { startServer, publicHostOf, type RunningServer, type ServerOptions } from './server.js';
import { runPrimary } from './workers/primary.js';
import { joinPrimary } from './workers/worker.js';
import { CertificateAuthority } from './pki/index.js';
import { setupScript, corednsConfig, SetupError, SETUP_CLIENTS, type SetupClient } from './setup/scripts.js';
import { packageVersion } from './util/package-version.js';

/** What `pullthrough setup` prints: a client's script, or the CoreDNS block (also `pullthrough coredns`). */
const SETUP_TARGETS: readonly string[] = [...SETUP_CLIENTS, 'coredns'];

const USAGE = `usage: pullthrough <command> [--config FILE]

commands:
  serve                 run the mirror (embedded defaults without --config)
  ca                    print the CA certificate (creating the CA under dataDir if missing)
  setup CLIENT          print a setup script for a client machine: ${SETUP_CLIENTS.join('|')}
                        (setup coredns: the same as the coredns command)
  coredns               print a CoreDNS hosts block for the configured registries (needs dns.answer)
  version               the version (also --version)
  help                  this text

--config FILE      YAML configuration (default: $PULLTHROUGH_CONFIG, else embedded defaults)
--version          print the version

Exit status: 0 ok, 1 could not run (e.g. a store is unreachable), 2 invalid command line or configuration.
`;

function fail(message: string, code = 2): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n');
  process.exit(code);
}

function config(file: string | undefined): Config {
  try {
    return loadConfig({ file, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) fail(`pullthrough: ${err.message}`);
    throw err;
  }
}

async function serve(file: string | undefined): Promise<void> {
  if (cluster.isWorker) {
    // A worker of `workers` > 1: the config is the one the primary validated (--config is its).
    const w = await joinPrimary();
    return run(w.config, createLogger(w.config.log.level, process.stdout, { worker: w.slot }), w.serverOptions, (server) => w.ready(server));
  }
  const cfg = config(file);
  const log = createLogger(cfg.log.level);
  if (cfg.workers > 1) {
    process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: (err as Error)?.stack ?? String(err) }));
    try {
      // Node's own variable for the cluster's scheduling policy; only `rr` changes ours.
      await runPrimary(cfg, log, { roundRobin: process.env.NODE_CLUSTER_SCHED_POLICY === 'rr' });
    } catch (err) {
      fail(`pullthrough: ${(err as Error).message}`, 1);
    }
    return;
  }
  return run(cfg, log);
}

/** Starts the server and stops it on SIGTERM/SIGINT after draining (exit 0), or exits 1 if it cannot start. */
async function run(cfg: Config, log: Logger, opts: ServerOptions = {}, started?: (server: RunningServer) => void): Promise<void> {
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: (err as Error)?.stack ?? String(err) }));
  let server: RunningServer;
  try {
    server = await startServer(cfg, log, opts);
  } catch (err) {
    fail(`pullthrough: ${(err as Error).message}`, 1);
  }
  started?.(server);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    server.close().then(
      () => process.exit(0),
      (err: Error) => {
        log.error('shutdown failed', { error: err.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Prints the CoreDNS block; exits 2 naming dns.answer when the config has no address for it. */
function coredns(file: string | undefined, command: string): void {
  try {
    process.stdout.write(corednsConfig(config(file)));
  } catch (err) {
    fail(`pullthrough ${command}: ${(err as Error).message}`, err instanceof SetupError ? 2 : 1);
  }
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' } },
    });
  } catch (err) {
    fail(`pullthrough: ${(err as Error).message}\n\n${USAGE}`);
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.version || command === 'version') {
    let version: string;
    try {
      version = packageVersion();
    } catch (err) {
      fail(`pullthrough: cannot read the version: ${(err as Error).message}`, 1);
    }
    process.stdout.write(`pullthrough ${version}\n`);
    return;
  }
  if (parsed.values.help || command === 'help' || command === undefined) {
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case 'serve':
      if (rest.length) fail(`pullthrough serve: unexpected argument ${rest[0]}\n\n${USAGE}`);
      return serve(parsed.values.config);
    case 'ca': {
      const ca = await CertificateAuthority.load(config(parsed.values.config));
      process.stdout.write(ca.caPem());
      return;
    }
    case 'setup': {
      const client = rest[0];
      if (!client || !SETUP_TARGETS.includes(client)) {
        fail(`pullthrough setup: ${client ? `unknown client ${client}` : 'name a client'}: ${SETUP_TARGETS.join(', ')}\n\n${USAGE}`);
      }
      if (rest.length > 1) fail(`pullthrough setup: unexpected argument ${rest[1]}\n\n${USAGE}`);
      if (client === 'coredns') return coredns(parsed.values.config, 'setup coredns');
      const cfg = config(parsed.values.config);
      const ca = await CertificateAuthority.load(cfg);
      try {
        process.stdout.write(setupScript(client as SetupClient, { config: cfg, caPem: ca.caPem(), publicHost: publicHostOf(cfg, undefined) }));
      } catch (err) {
        // The configuration lacks what this client's script needs (a certificate name, an address).
        fail(`pullthrough setup ${client}: ${(err as Error).message}`, err instanceof SetupError ? 2 : 1);
      }
      return;
    }
    case 'coredns':
      if (rest.length) fail(`pullthrough coredns: unexpected argument ${rest[0]}\n\n${USAGE}`);
      return coredns(parsed.values.config, 'coredns');
    default:
      fail(`pullthrough: unknown command ${command}\n\n${USAGE}`);
  }
}

await main(process.argv.slice(2));
