/**
 * The address rules behind the upstream URL policy, as a fast unit test with a scripted lookup
 * (in-process, beside the real-socket test in test/upstream/hostile-upstream.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupFunction } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { AddressRefusedError, checkHost, guardedLookup, refusedAddress, type AddressRule } from '../../src/net/address-guard.js';

/** A lookup answering from a fixed table, like a resolver would. */
function scripted(table: Record<string, string[]>): LookupFunction {
  return ((hostname: string, _opts: unknown, cb: (err: NodeJS.ErrnoException | null, list: LookupAddress[]) => void) => {
    const list = table[hostname];
    if (!list) return process.nextTick(cb, Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
    process.nextTick(cb, null, list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  }) as unknown as LookupFunction;
}

const call = (lookup: LookupFunction, host: string, opts: object): Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }> =>
  new Promise((resolve) => (lookup as unknown as (h: string, o: object, cb: (e: NodeJS.ErrnoException | null, a: unknown, f?: number) => void) => void)(host, opts, (err, address, family) => resolve({ err, address, family })));

test('refusedAddress: public refuses every special range, no-metadata only metadata endpoints, any nothing', () => {
  const cases: Array<[string, AddressRule, boolean]> = [
    ['127.0.0.1', 'public', true],
    ['::1', 'public', true],
    ['::ffff:127.0.0.1', 'public', true],
    ['10.1.2.3', 'public', true],
    ['100.64.0.1', 'public', true],
    ['fd12::1', 'public', true],
    ['169.254.169.254', 'public', true],
    ['11.22.33.44', 'public', false],
    ['2606:4700::1', 'public', false],
    ['10.1.2.3', 'no-metadata', false],
    ['127.0.0.1', 'no-metadata', false],
    ['169.254.169.254', 'no-metadata', true],
    ['::ffff:169.254.169.254', 'no-metadata', true],
    ['fd00:ec2::254', 'no-metadata', true],
    ['100.100.100.200', 'no-metadata', true],
    ['168.63.129.16', 'no-metadata', true],
    ['169.254.169.254', 'any', false],
  ];
  for (const [ip, rule, refused] of cases) assert.equal(refusedAddress(ip, ip, rule) !== null, refused, `${ip} under ${rule}`);
});

test('guardedLookup: a name is refused when any of its addresses breaks the rule, answered as asked otherwise', async () => {
  const inner = scripted({ 'public.test': ['11.22.33.44'], 'mixed.test': ['11.22.33.44', '127.0.0.1'], 'meta.test': ['169.254.169.254'] });
  let rule: AddressRule = 'public';
  const guarded = guardedLookup(inner, () => rule);
  const one = await call(guarded, 'public.test', {});
  assert.deepEqual([one.err, one.address, one.family], [null, '11.22.33.44', 4]);
  const all = await call(guarded, 'public.test', { all: true });
  assert.deepEqual(all.address, [{ address: '11.22.33.44', family: 4 }]);
  const mixed = await call(guarded, 'mixed.test', { all: true });
  assert.ok(mixed.err instanceof AddressRefusedError);
  assert.match(mixed.err.message, /mixed\.test resolves to 127\.0\.0\.1/);
  assert.equal((await call(guarded, 'nowhere.test', {})).err?.code, 'ENOTFOUND', 'lookup errors pass through');
  // The rule is read on every lookup.
  rule = 'no-metadata';
  assert.equal((await call(guarded, 'mixed.test', {})).err, null);
  assert.ok((await call(guarded, 'meta.test', {})).err instanceof AddressRefusedError);
});

test('checkHost: literals checked without a lookup, names resolved; resolution errors are thrown', async () => {
  const inner = scripted({ 'loop.test': ['127.0.0.1'] });
  assert.ok((await checkHost('127.0.0.1', 'public', inner)) instanceof AddressRefusedError);
  assert.equal(await checkHost('11.22.33.44', 'public', inner), null);
  assert.match((await checkHost('loop.test', 'public', inner))!.message, /loop\.test resolves to 127\.0\.0\.1/);
  assert.equal(await checkHost('loop.test', 'any', inner), null);
  await assert.rejects(checkHost('nowhere.test', 'public', inner), { code: 'ENOTFOUND' });
});
