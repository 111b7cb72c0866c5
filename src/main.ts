#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=4
/**
 * The command line: the only reader of argv and the environment. Parses them against the command
 * table (src/cli/commands.ts, parser and the choice of parser in src/cli/parse.ts), runs the command,
 * and turns its CliError into a message on stderr and the exit status (2 usage/config, 1 failed).
 */
import { CLI, printVersion } from './cli/commands.js';
import { parse, usage, commandUsage, CliError, UsageError } from './cli/parse.js';

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const parsed = parse(CLI, argv, env);
  if (parsed.kind === 'version') return printVersion();
  if (parsed.kind === 'help') {
    process.stdout.write(parsed.command ? commandUsage(CLI, parsed.command) : usage(CLI));
    return;
  }
  await parsed.command.run(parsed.invocation);
}

try {
  await main(process.argv.slice(2), process.env);
} catch (err) {
  if (!(err instanceof CliError)) throw err;
  // A usage error is followed by the usage, so the user sees what the command line accepts.
  const message = err instanceof UsageError ? `${err.message}\n\n${usage(CLI)}` : err.message;
  process.stderr.write(message.endsWith('\n') ? message : message + '\n');
  process.exit(err.exitCode);
}
