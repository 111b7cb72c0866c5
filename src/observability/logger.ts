/**
 * One JSON object per line on stdout, written through pino's asynchronous destination (SonicBoom
 * on fd 1): a request's log line is formatted on the request path and written off it (the
 * synchronous `process.stdout.write` it replaced cost more per request; figures in
 * docs/performance.md). Callers pass fields explicitly: nothing logs headers.
 *
 * Lines keep pino's shape, which tests, docs and log pipelines rely on: `level` as a name
 * (`info`, not 30), `time` as an ISO string, the logger's base fields (a worker's `worker`
 * number), the call's fields, then `msg`; undefined fields are left out. The line is formatted
 * here, by one `JSON.stringify` of the call's fields, not by a pino logger: pino's field-by-field
 * formatting was a fifth of a new TLS connection's request line (docs/performance.md).
 */
import { pino } from 'pino';
import { LineBatch } from './line-batch.js';

/**
 * With log.flushMs, lines are written once this many characters are gathered. Each write costs
 * the event loop ~30 µs however short (a string copy and a thread-pool request), so batches of
 * ~200 request lines cost a third per line of batches of ~30 (docs/performance.md).
 */
const LOG_BATCH_CHARS = 65_536;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger whose buffered lines can be waited for (before a deliberate exit). */
export interface FlushingLogger extends Logger {
  /**
   * Resolves once every line logged so far is written, in order, or after `timeoutMs` (a stuck
   * reader must not hold up an exit; what is left is then written synchronously at exit, possibly
   * after a chunk still in flight). Never rejects.
   */
  settle(timeoutMs?: number): Promise<void>;
}

/**
 * A logger writing JSON lines at or above `level` to `out`; `base` fields (a worker's `worker`
 * number) go on every line.
 *
 * On stdout (the default) lines go through pino's asynchronous destination (SonicBoom on fd 1).
 * A deliberate exit awaits {@link FlushingLogger.settle} first (serve does after SIGTERM's drain);
 * on any exit, a crash included, what is still buffered (pino's destination, then the batch of
 * {@link LineBatch}) is written synchronously, so only SIGKILL loses lines. Any other stream is
 * written to as it is (synchronously, for tests).
 */
export function createLogger(
  level: LogLevel = 'info',
  out: NodeJS.WritableStream = process.stdout,
  base?: Record<string, unknown>,
  /** log.flushMs: on stdout, write lines in batches at least this often; 0 writes each line as it is logged. */
  flushMs = 0,
): FlushingLogger {
  let idle = true;
  let write: (line: string) => void;
  let sonic: ReturnType<typeof pino.destination> | undefined;
  let batch: LineBatch | undefined;
  if (out === process.stdout) {
    // pino's destination flushes what it holds synchronously on any exit, a crash included.
    const s = pino.destination({ dest: 1, sync: false });
    sonic = s;
    // SonicBoom emits 'drain' when a write ends and nothing is left to write.
    s.on('drain', () => (idle = true));
    const send = (text: string): void => {
      idle = false;
      s.write(text);
    };
    if (flushMs > 0) {
      // Lines gathered up to LOG_BATCH_CHARS and written together, at least every flushMs: one
      // write per line cost the request path ~0.1–0.2 ms per new TLS connection in the handshake
      // bench (an fs.write round trip per line; docs/performance.md).
      const b = new LineBatch(send, LOG_BATCH_CHARS, flushMs);
      batch = b;
      atExit(() => {
        // The destination's own exit hook writes what SonicBoom holds; this hands over what the
        // batch holds first, or writes it after, whichever hook runs first.
        b.handOver();
        s.flushSync();
      });
      write = (line) => b.add(line);
    } else write = send;
  } else write = (line) => void out.write(line);
  const threshold = LEVELS[level];
  const baseText = base && Object.keys(base).length > 0 ? `,${fieldsText(base)}` : '';
  const line = (name: LogLevel, msg: string, fields: Record<string, unknown> | undefined): void => {
    if (LEVELS[name] < threshold) return;
    const text = fields === undefined ? '' : fieldsText(fields);
    write(`{"level":"${name}"${isoTime()}${baseText}${text === '' ? '' : `,${text}`},"msg":${JSON.stringify(msg)}}\n`);
  };
  return {
    debug: (m, f) => line('debug', m, f),
    info: (m, f) => line('info', m, f),
    warn: (m, f) => line('warn', m, f),
    error: (m, f) => line('error', m, f),
    async settle(timeoutMs = 2000) {
      const s = sonic;
      if (!s) return;
      const deadline = Date.now() + timeoutMs;
      batch?.handOver();
      while (!idle && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.max(1, deadline - Date.now()));
          function done(): void {
            clearTimeout(timer);
            s!.off('drain', done);
            resolve();
          }
          s.once('drain', done);
        });
      }
    },
  };
}

/** pino's level numbers: a line is written at or above the logger's level. */
const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/**
 * `fields` as the inside of a JSON object (`"a":1,"b":"x"`), or '' when none is defined. One
 * `JSON.stringify` leaves out undefined and function values, writes non-finite numbers as null
 * and honours toJSON, as pino's formatter does; a value it cannot write (a cycle, a BigInt) is
 * written as a string instead of losing the line.
 */
function fieldsText(fields: Record<string, unknown>): string {
  let json: string;
  try {
    json = JSON.stringify(fields);
  } catch {
    json = JSON.stringify(fields, unserializable());
  }
  return json.length <= 2 ? '' : json.slice(1, -1);
}

/** A replacer for what JSON.stringify refuses: a BigInt as its digits, a cycle as "[Circular]". */
function unserializable(): (this: unknown, key: string, value: unknown) => unknown {
  const ancestors: unknown[] = [];
  return function (this: unknown, _key, value) {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value !== 'object' || value === null) return value;
    // `this` is the object holding `value`: drop the ancestors that are not on its path.
    while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
    if (ancestors.includes(value)) return '[Circular]';
    ancestors.push(value);
    return value;
  };
}

const exitHooks: Array<() => void> = [];
/** Runs `hook` when the process exits, a crash included; one 'exit' listener for every logger. */
function atExit(hook: () => void): void {
  if (exitHooks.length === 0) {
    process.on('exit', () => {
      for (const h of exitHooks) {
        try {
          h();
        } catch {
          // Nowhere left to report it: stdout is what failed.
        }
      }
    });
  }
  exitHooks.push(hook);
}

let second = -1;
let secondText = '';
/**
 * pino's `time` field as an ISO 8601 string, the date and time of day formatted once a second:
 * `new Date().toISOString()` on every line was a tenth of the request path's own CPU on a new TLS
 * connection (docs/performance.md).
 */
export function isoTime(now = Date.now()): string {
  const ms = now % 1000;
  const sec = now - ms;
  if (sec !== second) {
    second = sec;
    secondText = new Date(sec).toISOString().slice(0, 20); // 2026-12-06T04:13:45.
  }
  return `,"time":"${secondText}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
}

/** A logger that drops everything (library use, tests). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
