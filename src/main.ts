#!/usr/bin/env node
/**
 * The command line: the only reader of argv and the environment. Loads the config, builds, starts,
 * and stops on SIGTERM/SIGINT after draining.
 */
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError, type Config } from './config/index.js';
import { createLogger } from './observability/logger.js';
import { startServer } from './server.js';

const USAGE = `usage: pullthrough <command> [--config FILE]

commands:
  serve            run the mirror (embedded defaults without --config)
  help             this text

--config FILE      YAML configuration (default: $PULLTHROUGH_CONFIG, else embedded defaults)
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
  const cfg = config(file);
  const log = createLogger(cfg.log.level);
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: (err as Error)?.stack ?? String(err) }));
  let server;
  try {
    server = await startServer(cfg, log);
  } catch (err) {
    fail(`pullthrough: ${(err as Error).message}`, 1);
  }
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

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    fail(`pullthrough: ${(err as Error).message}\n\n${USAGE}`);
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || command === 'help' || command === undefined) {
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case 'serve':
      if (rest.length) fail(`pullthrough serve: unexpected argument ${rest[0]}\n\n${USAGE}`);
      return serve(parsed.values.config);
    default:
      fail(`pullthrough: unknown command ${command}\n\n${USAGE}`);
  }
}

await main(process.argv.slice(2));
