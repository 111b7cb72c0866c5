/**
 * One JSON object per line on stdout, written by pino through an asynchronous destination: a
 * request's log line is formatted on the request path and written off it (the synchronous
 * `JSON.stringify` + `process.stdout.write` it replaced cost more per request; figures in
 * docs/performance.md). Callers pass fields explicitly: nothing logs headers.
 *
 * Lines keep the shape tests, docs and log pipelines rely on: `level` as a name (`info`, not 30),
 * `time` as an ISO string, `msg`, the logger's base fields (a worker's `worker` number), then the
 * call's fields; undefined fields are left out.
 */
import { pino, type DestinationStream } from 'pino';
import { LineBatch } from './line-batch.js';

/** With log.flushMs, lines are written once this many characters are gathered (below SonicBoom's 16 KiB write size). */
const LOG_BATCH_CHARS = 8192;

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
  let dest: DestinationStream;
  let sonic: ReturnType<typeof pino.destination> | undefined;
  let batch: LineBatch | undefined;
  if (out === process.stdout) {
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
        // pino's own exit hook writes what SonicBoom holds; this hands over what the batch holds
        // first, or writes it after, whichever hook runs first.
        b.handOver();
        s.flushSync();
      });
      dest = { write: (line: string) => b.add(line) };
    } else dest = { write: send };
  } else dest = out as unknown as DestinationStream;
  const p = pino(
    {
      level,
      base: base ?? null,
      timestamp: () => isoTime(),
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  return {
    debug: (m, f) => p.debug(f ?? {}, m),
    info: (m, f) => p.info(f ?? {}, m),
    warn: (m, f) => p.warn(f ?? {}, m),
    error: (m, f) => p.error(f ?? {}, m),
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
