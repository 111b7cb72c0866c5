/**
 * The logging surface the doors and the PKI write to. It has the shape of the core's JSON logger,
 * so that logger can be passed as is; callers pass fields explicitly and never headers, so no
 * credential reaches a log line by accident.
 */
export interface LogSink {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Drops everything (library use, tests). */
export const silentLog: LogSink = { debug() {}, info() {}, warn() {}, error() {} };
