/**
 * The last warn and error lines of the log, kept in memory for the status page's "recent errors":
 * an operator sees why pulls fail (`upstream failing`, `denied`, `internal error`) without access
 * to the log. A tap on the logger, so every warn/error anyone logs is kept, and nothing else.
 *
 * Log lines carry chosen fields only (never headers, passwords or tokens: see logger.ts); this
 * keeps primitive fields only, cut short, so one hostile value cannot grow the page. What is kept
 * is still user input (paths, upstream messages): the page shows it as text, never as markup.
 */
import type { Logger, LogLevel } from './logger.js';

/** One kept log line. */
export interface RecentEvent {
  /** ISO 8601. */
  readonly time: string;
  readonly level: LogLevel;
  readonly msg: string;
  /** The line's fields as text (primitives only, each at most MAX_FIELD_CHARS). */
  readonly fields: Readonly<Record<string, string>>;
}

const MAX_FIELD_CHARS = 300;
const MAX_FIELDS = 16;

export class RecentEvents {
  private readonly ring: RecentEvent[] = [];

  /** @param capacity lines kept (default 50); older ones go. */
  constructor(private readonly capacity = 50) {}

  /** A logger that writes every line through `log` and keeps the warn and error ones. */
  tap(log: Logger): Logger {
    return {
      debug: (m, f) => log.debug(m, f),
      info: (m, f) => log.info(m, f),
      warn: (m, f) => {
        log.warn(m, f);
        this.keep('warn', m, f);
      },
      error: (m, f) => {
        log.error(m, f);
        this.keep('error', m, f);
      },
    };
  }

  /** Kept lines, newest first (copies). */
  list(): RecentEvent[] {
    return [...this.ring].reverse();
  }

  private keep(level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): void {
    try {
      const kept: Record<string, string> = {};
      let n = 0;
      for (const [k, v] of Object.entries(fields ?? {})) {
        if (n >= MAX_FIELDS) break;
        if (v === undefined || v === null || (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')) continue;
        kept[k.slice(0, 64)] = String(v).slice(0, MAX_FIELD_CHARS);
        n++;
      }
      this.ring.push({ time: new Date().toISOString(), level, msg: msg.slice(0, MAX_FIELD_CHARS), fields: kept });
      if (this.ring.length > this.capacity) this.ring.shift();
    } catch {
      // Keeping a line for the page must never break the logging that asked for it.
    }
  }
}
