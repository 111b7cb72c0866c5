/**
 * The health of one entry of an upstream chain (docs/upstream-chains.md#health): whether the
 * chain asks it now. Pure policy over an injected clock and probe, so it is tested without
 * sockets; chain-remote.ts feeds it the outcome of every call.
 *
 * - `failures` consecutive failures (connect error, timeout, 5xx) skip the entry for `coolDown`;
 *   then `probe()` (`GET /v2/`) runs every `probeInterval` until it answers, and the entry is
 *   taken back. A success in between resets the count.
 * - A 429 skips it at once for its Retry-After (seconds or an HTTP date; `coolDown` when absent),
 *   at most `maxRetryAfter`; after that it is taken back without a probe (the upstream said when).
 *
 * State lives in this process only: each worker and replica learns it from its own calls.
 */

/** `upstream.health` of the config. All durations in milliseconds. */
export interface HealthOptions {
  readonly failures: number;
  readonly coolDown: number;
  readonly probeInterval: number;
  readonly probeTimeout: number;
  readonly maxRetryAfter: number;
}

/** Time and timers, injectable for tests. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimer: (t) => clearTimeout(t as NodeJS.Timeout),
};

/** What a probe found: the entry answers, is rate limiting (with its Retry-After), or does not answer. */
export type ProbeResult = { readonly alive: true } | { readonly alive: false; readonly reason: string; readonly retryAfter?: string };

/** Told when the entry is skipped and when it is taken back (for logs and metrics). */
export interface HealthEvents {
  skipped(reason: string, forMs: number): void;
  takenBack(how: 'probe' | 'retry-after'): void;
}

/**
 * Milliseconds a Retry-After header asks for: delta-seconds or an HTTP date; undefined when
 * absent or unreadable. Never negative.
 */
export function retryAfterMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/[a-z]/i.test(v)) return undefined; // Date.parse would read plain numbers like "1.5" as dates
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

type State = { readonly kind: 'up' } | { readonly kind: 'failed'; readonly probing: boolean } | { readonly kind: 'rate-limited'; readonly until: number };

export class UpstreamHealth {
  private state: State = { kind: 'up' };
  private consecutive = 0;
  private timer: unknown;
  private closed = false;
  /** Bumped on every change of state, so a probe that answers after one is ignored. */
  private epoch = 0;

  constructor(
    private readonly opts: HealthOptions,
    private readonly probe: (signal: AbortSignal) => Promise<ProbeResult>,
    private readonly events: HealthEvents,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Whether the chain asks this entry now. */
  available(): boolean {
    if (this.state.kind === 'rate-limited' && this.clock.now() >= this.state.until) this.takeBack('retry-after');
    return this.state.kind === 'up';
  }

  /** Consecutive failures counted so far (0 after any success). */
  get failures(): number {
    return this.consecutive;
  }

  /** The entry answered (any answer but 5xx or 429, including 401/403/404). */
  succeeded(): void {
    this.consecutive = 0;
  }

  /** A connect error, timeout or 5xx. */
  failed(reason: string): void {
    this.consecutive++;
    if (this.state.kind !== 'up' || this.consecutive < this.opts.failures) return;
    this.skip({ kind: 'failed', probing: false }, `${this.consecutive} failures in a row, last: ${reason}`, this.opts.coolDown);
  }

  /** A 429; `retryAfter` is the upstream's header. */
  rateLimited(retryAfter: string | undefined): void {
    const now = this.clock.now();
    const ms = Math.min(retryAfterMs(retryAfter, now) ?? this.opts.coolDown, this.opts.maxRetryAfter);
    // A later 429 may extend a skip, never shorten it.
    if (this.state.kind === 'rate-limited' && this.state.until >= now + ms) return;
    if (this.state.kind === 'failed') return;
    this.skip({ kind: 'rate-limited', until: now + ms }, `429 rate limited${retryAfter !== undefined ? ` (Retry-After ${retryAfter.slice(0, 40)})` : ''}`, ms);
  }

  /** Stops the timers (the chain is closing). */
  close(): void {
    this.closed = true;
    this.clock.clearTimer(this.timer);
  }

  private skip(state: State, reason: string, forMs: number): void {
    this.epoch++;
    this.state = state;
    this.clock.clearTimer(this.timer);
    this.events.skipped(reason, forMs);
    if (this.closed) return;
    if (state.kind === 'rate-limited') {
      // The timer itself takes the entry back, without comparing the clock: Node counts a timer
      // from the event loop's cached time, which lags Date.now() while a callback runs, so it can
      // fire before `until`; a check here would then leave the entry skipped (and
      // pullthrough_upstream_up at 0) until some request happened to ask. Every change of state
      // clears this timer, so when it fires the entry is still in this skip.
      this.timer = this.clock.setTimer(() => this.takeBack('retry-after'), forMs);
    } else this.timer = this.clock.setTimer(() => void this.runProbe(), forMs);
  }

  private takeBack(how: 'probe' | 'retry-after'): void {
    this.epoch++;
    this.state = { kind: 'up' };
    this.consecutive = 0;
    this.clock.clearTimer(this.timer);
    this.events.takenBack(how);
  }

  private async runProbe(): Promise<void> {
    if (this.closed || this.state.kind !== 'failed') return;
    const epoch = ++this.epoch;
    this.state = { kind: 'failed', probing: true };
    let result: ProbeResult;
    try {
      result = await this.probe(AbortSignal.timeout(this.opts.probeTimeout));
    } catch (err) {
      result = { alive: false, reason: (err as Error).message };
    }
    if (this.closed || epoch !== this.epoch) return;
    if (result.alive) return this.takeBack('probe');
    if (result.retryAfter !== undefined) {
      // Answering 429 is answering; it is rate limiting, though: wait as long as it says.
      this.state = { kind: 'up' };
      return this.rateLimited(result.retryAfter);
    }
    this.state = { kind: 'failed', probing: false };
    this.timer = this.clock.setTimer(() => void this.runProbe(), this.opts.probeInterval);
  }
}
