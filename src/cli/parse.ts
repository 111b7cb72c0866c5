/**
 * The command-line parser: a command table in, the chosen command with its options and arguments
 * out, or a UsageError (exit 2) that names the option, argument or command at fault.
 *
 * Why Node's own `util.parseArgs` and not an npm parser such as commander (decided for issue 17):
 * - it has what the coming admin subcommands need once it is given a command table: `--opt=value`
 *   and `--opt value`, short flags, repeated options (`multiple`), `--`, unknown-option and
 *   missing-value errors that name the option (`Unknown option '--x'`, `Option '-c, --config
 *   <value>' argument missing`); this file adds subcommands with their own options, global options
 *   before or after the subcommand, positional checks and per-command `--help`, in ~200 lines;
 * - no dependency: nothing to audit or keep current, nothing the container image has to carry;
 * - commander 15 (the current release) requires Node >= 22.12, so it would not run under the
 *   Node 20 some machines still have, and its errors ("error: unknown option") and default exit
 *   status (1) differ from what this CLI already promises: usage errors exit 2, with the messages
 *   the tests and users already see. Keeping them would take an override of each default.
 *
 * This module reads neither process.argv nor process.env (src/main.ts passes them in) and never
 * exits: it throws, and main.ts decides what the user sees.
 */
import { parseArgs } from 'node:util';
import { PullthroughError } from '../util/errors.js';

/** One option as `util.parseArgs` knows it, plus what help prints. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** May be given more than once; the value is then an array in the order given. */
  multiple?: boolean;
  /** The value's name in help, e.g. FILE (string options). */
  value?: string;
  /** One line for help. */
  description: string;
}

/** One positional argument of a command, in order. */
export interface ArgSpec {
  /** Its name in help, e.g. CLIENT. */
  name: string;
  required?: boolean;
  /** Takes every remaining argument (last only). */
  variadic?: boolean;
  /** The only values it accepts; with `noun`, errors read "unknown client x: a, b". */
  choices?: readonly string[];
  noun?: string;
}

export type OptionValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

/** What a command's handler gets: the parsed command line and the environment (passed in by main.ts). */
export interface Invocation {
  command: string;
  values: OptionValues;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** One subcommand: a new subcommand is one of these in the table (src/cli/commands.ts). */
export interface Command {
  name: string;
  /** Help lines; the first is the summary in the command list. */
  summary: readonly string[];
  args?: readonly ArgSpec[];
  /** Options of this command only (global options apply to every command). */
  options?: Readonly<Record<string, OptionSpec>>;
  /** Resolves when the command has done its work (`serve`: once it is running). Throws CliError. */
  run(inv: Invocation): Promise<void> | void;
}

/** A command failed; main.ts prints the message and exits with exitCode: 2 for the command line or configuration, 1 otherwise. */
export class CliError extends PullthroughError {
  readonly code: string = 'ERR_CLI';
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

/** The command line is wrong (exit 2): an unknown option, command or argument, a missing value; main.ts prints the usage after the message. */
export class UsageError extends CliError {
  override readonly code: string = 'ERR_USAGE';
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** What parse() found: run a command, or (for --help, --version or no command) print help (for one command, or all) or the version. */
export type Parsed =
  | { kind: 'run'; command: Command; invocation: Invocation }
  | { kind: 'help'; command?: Command }
  | { kind: 'version' };

/** The table a CLI is made of: global options and subcommands. */
export interface CommandTable {
  program: string;
  globalOptions: Readonly<Record<string, OptionSpec>>;
  commands: readonly Command[];
  /** Said after the list of commands (e.g. exit statuses). */
  footer: string;
}

type ParseArgsOptions = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

function toParseArgs(specs: Readonly<Record<string, OptionSpec>>): ParseArgsOptions {
  const out: ParseArgsOptions = {};
  for (const [name, s] of Object.entries(specs)) out[name] = { type: s.type, ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}) };
  return out;
}

/** The options that take a value, by every name they can be written with, so the first pass can step over their values. */
function allOptions(table: CommandTable): ParseArgsOptions {
  const out = toParseArgs(table.globalOptions);
  for (const c of table.commands) Object.assign(out, toParseArgs(c.options ?? {}));
  return out;
}

/** Strict parse of args with these options; a parseArgs error becomes a UsageError with its own message (it names the option). */
function strict(args: string[], options: ParseArgsOptions, prefix: string): { values: OptionValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as OptionValues, positionals };
  } catch (err) {
    throw new UsageError(`${prefix}: ${(err as Error).message}`);
  }
}

/**
 * Parses argv (without node and the script) against the table. Global options may come before or
 * after the subcommand; `--` ends options. Throws UsageError naming an unknown option, a missing
 * option value, an unknown command, a missing, unknown or unexpected argument.
 */
export function parse(table: CommandTable, argv: string[], env: NodeJS.ProcessEnv): Parsed {
  // First pass, lenient: which word is the command? Options are stepped over with their values.
  const { tokens } = parseArgs({ args: argv, options: allOptions(table), allowPositionals: true, strict: false, tokens: true });
  const first = tokens.find((t) => t.kind === 'positional');
  const name = first?.kind === 'positional' ? first.value : undefined;
  const command = name === undefined ? undefined : table.commands.find((c) => c.name === name);
  const globals = toParseArgs(table.globalOptions);

  if (!command) {
    const { values } = strict(argv, globals, table.program);
    if (values.version) return { kind: 'version' };
    if (values.help || name === undefined) return { kind: 'help' };
    throw new UsageError(`${table.program}: unknown command ${name}`);
  }

  const prefix = `${table.program} ${command.name}`;
  const { values, positionals } = strict(argv, { ...globals, ...toParseArgs(command.options ?? {}) }, prefix);
  const args = positionals.slice(1);
  if (values.version) return { kind: 'version' };
  if (values.help) return { kind: 'help', command };
  checkArgs(command, args, prefix);
  return { kind: 'run', command, invocation: { command: command.name, values, args, env } };
}

function checkArgs(command: Command, args: string[], prefix: string): void {
  const specs = command.args ?? [];
  specs.forEach((spec, i) => {
    const given = spec.variadic ? args.slice(i) : args[i] === undefined ? [] : [args[i]];
    if (given.length === 0) {
      if (!spec.required) return;
      throw new UsageError(spec.choices ? `${prefix}: name a ${spec.noun ?? spec.name}: ${spec.choices.join(', ')}` : `${prefix}: missing argument ${spec.name}`);
    }
    for (const v of given) {
      if (spec.choices && !spec.choices.includes(v)) throw new UsageError(`${prefix}: unknown ${spec.noun ?? spec.name} ${v}: ${spec.choices.join(', ')}`);
    }
  });
  const takes = specs.some((s) => s.variadic) ? Infinity : specs.length;
  if (args.length > takes) throw new UsageError(`${prefix}: unexpected argument ${args[takes]}`);
}

function synopsis(c: Command): string {
  return [c.name, ...(c.args ?? []).map((a) => (a.required ? a.name : `[${a.name}]`) + (a.variadic ? '…' : ''))].join(' ');
}

function optionLines(specs: Readonly<Record<string, OptionSpec>>): string[] {
  return Object.entries(specs).map(([name, s]) => {
    const flag = `${s.short ? `-${s.short}, ` : '    '}--${name}${s.type === 'string' ? ` ${s.value ?? 'VALUE'}` : ''}`;
    return `  ${flag.padEnd(21)} ${s.description}${s.multiple ? ' (repeatable)' : ''}`;
  });
}

/** The help for all commands (`pullthrough --help`). */
export function usage(table: CommandTable): string {
  const lines = [`usage: ${table.program} <command> [options]`, '', 'commands:'];
  for (const c of table.commands) {
    const [head, ...more] = c.summary;
    lines.push(`  ${synopsis(c).padEnd(21)} ${head}`, ...more.map((m) => `${' '.repeat(24)}${m}`));
  }
  lines.push('', 'options:', ...optionLines(table.globalOptions), '', `${table.program} COMMAND --help: that command's own help.`, '', table.footer);
  return lines.join('\n') + '\n';
}

/** The help for one command (`pullthrough setup --help`). */
export function commandUsage(table: CommandTable, c: Command): string {
  const opts = { ...(c.options ?? {}), ...table.globalOptions };
  return [`usage: ${table.program} ${synopsis(c)} [options]`, '', ...c.summary, '', 'options:', ...optionLines(opts), '', table.footer].join('\n') + '\n';
}
