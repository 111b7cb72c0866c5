/**
 * The command table: every subcommand of `pullthrough`, its arguments, options and handler. A new
 * subcommand is one entry in COMMANDS (src/cli/parse.ts parses against it and writes the help).
 */
import { loadConfig, ConfigError, type Config } from '../config/index.js';
import { publicHostOf } from '../server.js';
import { CertificateAuthority } from '../pki/index.js';
import { setupScript, corednsConfig, SetupError, SETUP_CLIENTS, type SetupClient } from '../setup/scripts.js';
import { packageVersion } from '../util/package-version.js';
import { CliError, UsageError, usage, commandUsage, type Command, type CommandTable, type Invocation, type OptionSpec } from './parse.js';
import { serve } from './serve.js';
import { adminCommands } from './admin-commands.js';

/** What `pullthrough setup` prints: a client's script, or the CoreDNS block (also `pullthrough coredns`). */
const SETUP_TARGETS: readonly string[] = [...SETUP_CLIENTS, 'coredns'];

/** Options every command accepts, before or after the command's name. */
const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  config: { type: 'string', short: 'c', value: 'FILE', description: 'YAML configuration (default: $PULLTHROUGH_CONFIG, else embedded defaults)' },
  help: { type: 'boolean', short: 'h', description: 'this text (after a command: that command\'s help)' },
  version: { type: 'boolean', short: 'V', description: 'print the version' },
};

/**
 * The validated configuration of --config (or $PULLTHROUGH_CONFIG, or the defaults).
 * @throws CliError (exit 2) naming the key when the configuration is invalid.
 */
function config(inv: Invocation): Config {
  try {
    return loadConfig({ file: inv.values.config as string | undefined, env: inv.env });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`pullthrough: ${err.message}`, 2);
    throw err;
  }
}

/** The CoreDNS block; exit 2 naming dns.answer when the config has no address for it. */
function coredns(inv: Invocation, command: string): void {
  const cfg = config(inv);
  try {
    process.stdout.write(corednsConfig(cfg));
  } catch (err) {
    throw new CliError(`pullthrough ${command}: ${(err as Error).message}`, err instanceof SetupError ? 2 : 1);
  }
}

/** Prints `pullthrough VERSION`. @throws CliError (exit 1) when package.json cannot be read. */
export function printVersion(): void {
  let version: string;
  try {
    version = packageVersion();
  } catch (err) {
    throw new CliError(`pullthrough: cannot read the version: ${(err as Error).message}`, 1);
  }
  process.stdout.write(`pullthrough ${version}\n`);
}

const COMMANDS: readonly Command[] = [
  {
    name: 'serve',
    summary: ['run the mirror (embedded defaults without --config)'],
    run: (inv) => serve(() => config(inv), inv.env),
  },
  {
    name: 'ca',
    summary: ['print the CA certificate (creating the CA under dataDir if missing)'],
    run: async (inv) => {
      const ca = await CertificateAuthority.load(config(inv));
      process.stdout.write(ca.caPem());
    },
  },
  {
    name: 'setup',
    summary: [`print a setup script for a client machine: ${SETUP_CLIENTS.join('|')}`, '(setup coredns: the same as the coredns command)'],
    args: [{ name: 'CLIENT', required: true, choices: SETUP_TARGETS, noun: 'client' }],
    run: async (inv) => {
      const client = inv.args[0];
      if (client === 'coredns') return coredns(inv, 'setup coredns');
      const cfg = config(inv);
      const ca = await CertificateAuthority.load(cfg);
      try {
        process.stdout.write(setupScript(client as SetupClient, { config: cfg, caPem: ca.caPem(), publicHost: publicHostOf(cfg, undefined) }));
      } catch (err) {
        // The configuration lacks what this client's script needs (a certificate name, an address).
        throw new CliError(`pullthrough setup ${client}: ${(err as Error).message}`, err instanceof SetupError ? 2 : 1);
      }
    },
  },
  {
    name: 'coredns',
    summary: ['print a CoreDNS hosts block for the configured registries (needs dns.answer)'],
    run: (inv) => coredns(inv, 'coredns'),
  },
  // images, usage, status, purge, pin, unpin, prefetch, offline: a running instance's admin API.
  ...adminCommands(config),
  {
    name: 'version',
    summary: ['the version (also --version)'],
    run: printVersion,
  },
  {
    name: 'help',
    summary: ['this text (help COMMAND: that command\'s help)'],
    args: [{ name: 'COMMAND' }],
    run: (inv) => {
      const about = inv.args[0] === undefined ? undefined : COMMANDS.find((c) => c.name === inv.args[0]);
      if (inv.args[0] !== undefined && !about) throw new UsageError(`pullthrough: unknown command ${inv.args[0]}`);
      process.stdout.write(about ? commandUsage(CLI, about) : usage(CLI));
    },
  },
];

/** The whole command line of `pullthrough`. */
export const CLI: CommandTable = {
  program: 'pullthrough',
  globalOptions: GLOBAL_OPTIONS,
  commands: COMMANDS,
  footer: 'Exit status: 0 ok, 1 could not run (e.g. a store is unreachable), 2 invalid command line or configuration.',
};
