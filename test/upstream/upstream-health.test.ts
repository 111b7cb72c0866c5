/**
 * The health policy of one chain entry (src/upstream/upstream-health.ts) over an injected clock
 * and probe: when it is skipped, when it is probed, when it is taken back. The same policy over
 * real sockets is in chain-remote.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamHealth, retryAfterMs, type Clock, type HealthOptions, type ProbeResult } from '../../src/upstream/upstream-health.js';

/** A clock whose time moves only when told; timers fire as it passes them. */
class ManualClock implements Clock {
  t = 1_000_000;
  /** How many ms before its deadline (by now()) a timer fires, as Node's can against Date.now(). */
  early = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private next = 0;
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.next;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimer(timer: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== timer);
  }
  get pending(): number {
    return this.timers.length;
  }
  /** Moves time on by `ms`, firing due timers in order (and letting their promises settle). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at - this.early;
      due.fn();
      for (let i = 0; i < 5; i++) await Promise.resolve();
      await new Promise((r) => setImmediate(r));
    }
    this.t = end;
  }
}

const OPTS: HealthOptions = { failures: 3, coolDown: 30_000, probeInterval: 10_000, probeTimeout: 5_000, maxRetryAfter: 600_000 };

function setup(answers: ProbeResult[] = []) {
  const clock = new ManualClock();
  const events: string[] = [];
  let probes = 0;
  const health = new UpstreamHealth(
    OPTS,
    async () => {
      probes++;
      return answers.shift() ?? { alive: false, reason: 'still down' };
    },
    { skipped: (reason, ms) => events.push(`skipped ${ms} ${reason}`), takenBack: (how) => events.push(`back ${how}`) },
    clock,
  );
  return { clock, events, health, probes: () => probes };
}

describe('UpstreamHealth', () => {
  it('stays in use below `failures` consecutive failures; a success in between resets the count', () => {
    const { health, events } = setup();
    health.failed('ECONNREFUSED');
    health.failed('ECONNREFUSED');
    assert.equal(health.available(), true);
    health.succeeded();
    health.failed('503');
    health.failed('503');
    assert.equal(health.available(), true);
    assert.deepEqual(events, []);
  });

  it('the third failure skips it for the cool-down; then it is probed, and taken back when the probe answers', async () => {
    const { clock, health, events, probes } = setup([{ alive: false, reason: 'ECONNREFUSED' }, { alive: true }]);
    for (let i = 0; i < 3; i++) health.failed('ECONNREFUSED');
    assert.equal(health.available(), false);
    assert.match(events[0]!, /^skipped 30000 3 failures in a row, last: ECONNREFUSED/);
    await clock.advance(29_999);
    assert.equal(probes(), 0, 'no probe before the cool-down ends');
    assert.equal(health.available(), false);
    await clock.advance(1);
    assert.equal(probes(), 1, 'probed when the cool-down ended');
    assert.equal(health.available(), false, 'a failed probe keeps it skipped');
    await clock.advance(9_999);
    assert.equal(probes(), 1);
    await clock.advance(1);
    assert.equal(probes(), 2, 'probed again after probeInterval');
    assert.equal(health.available(), true, 'taken back after a probe that answered');
    assert.deepEqual(events.slice(1), ['back probe']);
    assert.equal(health.failures, 0);
    assert.equal(clock.pending, 0, 'no timer left once it is back');
  });

  it('a 429 skips it at once for its Retry-After in seconds, then takes it back without a probe', async () => {
    const { clock, health, events, probes } = setup();
    health.rateLimited('20');
    assert.equal(health.available(), false);
    assert.match(events[0]!, /^skipped 20000 429 rate limited \(Retry-After 20\)/);
    await clock.advance(19_999);
    assert.equal(health.available(), false);
    await clock.advance(1);
    assert.equal(health.available(), true);
    assert.equal(probes(), 0);
    assert.deepEqual(events.slice(1), ['back retry-after']);
  });

  it('the Retry-After timer takes it back by itself, even when it fires before the clock reads the deadline', async () => {
    const { clock, health, events } = setup();
    health.rateLimited('5');
    // Node's setTimeout can fire before Date.now() reaches the deadline (it counts from the loop's
    // cached time): the timer fires here with the clock 1 ms short, and nothing else asks.
    clock.early = 1;
    await clock.advance(5_000);
    assert.deepEqual(events.slice(1), ['back retry-after'], 'taken back by the timer, not by the next request');
    assert.equal(health.available(), true);
    assert.equal(clock.pending, 0);
  });

  it('Retry-After as an HTTP date; absent → the cool-down; bounded by maxRetryAfter; a later, shorter 429 does not shorten the skip', async () => {
    const { clock, health, events } = setup();
    health.rateLimited(new Date(clock.now() + 45_000).toUTCString());
    assert.match(events[0]!, /^skipped 45000 /);
    health.rateLimited('1');
    assert.equal(events.length, 1, 'the shorter 429 changed nothing');
    await clock.advance(45_000);
    assert.equal(health.available(), true);
    health.rateLimited(undefined);
    assert.match(events.at(-1)!, /^skipped 30000 429 rate limited$/);
    await clock.advance(30_000);
    assert.equal(health.available(), true);
    health.rateLimited('86400');
    assert.match(events.at(-1)!, /^skipped 600000 /, 'bounded by maxRetryAfter');
  });

  it('a probe answered with 429 waits for its Retry-After before taking the entry back', async () => {
    const { clock, health, events, probes } = setup([{ alive: false, reason: 'answered 429', retryAfter: '60' }]);
    for (let i = 0; i < 3; i++) health.failed('503');
    await clock.advance(30_000);
    assert.equal(probes(), 1);
    assert.equal(health.available(), false);
    assert.match(events.at(-1)!, /^skipped 60000 429/);
    await clock.advance(60_000);
    assert.equal(health.available(), true);
    assert.equal(probes(), 1, 'no second probe: the Retry-After said when');
  });

  it('close() stops the probes', async () => {
    const { clock, health, probes } = setup();
    for (let i = 0; i < 3; i++) health.failed('503');
    health.close();
    await clock.advance(120_000);
    assert.equal(probes(), 0);
  });

  it('retryAfterMs reads delta-seconds and HTTP dates, and nothing else', () => {
    const now = Date.parse('Sat, 05 Dec 2026 23:00:00 GMT');
    assert.equal(retryAfterMs('120', now), 120_000);
    assert.equal(retryAfterMs('Sat, 05 Dec 2026 23:01:30 GMT', now), 90_000);
    assert.equal(retryAfterMs('Sat, 05 Dec 2026 22:00:00 GMT', now), 0, 'a date past is now');
    assert.equal(retryAfterMs('1.5', now), undefined);
    assert.equal(retryAfterMs('soon', now), undefined);
    assert.equal(retryAfterMs(undefined, now), undefined);
  });
});
