/**
 * The native DNS fast path against the JavaScript door it stands in for: the same queries (every
 * served name in mixed case, every type and flag that matters, EDNS, other classes, other names,
 * and mutated packets), from an allowed and a refused source, over IPv4 and a dual-stack IPv6
 * socket, must get byte-identical answers or the same silence. The DNS door suite
 * (dns-door-suite.ts) covers each behaviour on its own, with both. And a build without it (no C
 * compiler) still answers, through dgram, unless dns.fastPath: on asks for it.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket, type SocketType } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../../src/config/index.js';
import { hijackedNames } from '../../src/config/served-names.js';
import { startDnsDoor, type DnsDoor } from '../../src/doors/dns-server.js';
import { freePort, run, tempDir } from '../helpers/process.js';
import { buildWithoutNative, metricValue, NODE_FLAGS, startPullthrough } from '../helpers/pullthrough.js';
import { testConfig } from '../helpers/config.js';
import { query } from './dns-door-suite.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let resolvConf: string;

before(async () => {
  tmp = await tempDir();
  // No resolver at all: other names from allowed sources get SERVFAIL at once, from both doors.
  resolvConf = join(tmp.path, 'resolv.conf');
  writeFileSync(resolvConf, '# none\n');
});

after(async () => {
  await tmp?.cleanup();
});

async function door(host: string, fastPath: 'on' | 'off', name: string): Promise<{ door: DnsDoor; config: Config }> {
  const port = await freePort();
  const config = testConfig(
    tmp.path,
    {
      listen: { dns: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` },
      dns: { answer: ['127.0.0.10', '127.0.0.11', 'fd00::10'], allow: ['127.0.0.1/32', '::1'], ttl: 300, fastPath },
      tls: { extraNames: ['mirror.internal', '127.0.0.5'] },
    },
    name,
  );
  return { door: await startDnsDoor(config, { resolvConf }), config };
}

/** A JavaScript-only door and a fast-path door on `host`, closed when the test ends. */
async function doorPair(t: TestContext, host: string, name: string): Promise<{ js: DnsDoor; fast: DnsDoor; config: Config }> {
  const js = await door(host, 'off', `${name}-js.yaml`);
  t.after(() => js.door.close());
  const fast = await door(host, 'on', `${name}-fast.yaml`);
  t.after(() => fast.door.close());
  return { js: js.door, fast: fast.door, config: fast.config };
}

/**
 * Sends `packets` to both doors from `from` and asserts the fast path answered exactly the
 * queries the JavaScript door answered, with the same bytes. Returns the JavaScript door's answers.
 */
async function assertSameAnswers(pair: { js: DnsDoor; fast: DnsDoor }, type: SocketType, from: string, to: string, packets: Buffer[]): Promise<Map<number, Buffer>> {
  const want = await exchange(type, from, to, pair.js.bound.port, packets);
  const got = await exchange(type, from, to, pair.fast.bound.port, packets);
  const ids = (m: Map<number, Buffer>): number[] => [...m.keys()].sort((a, b) => a - b);
  assert.deepEqual(ids(got), ids(want), `${from}: the same queries answered`);
  for (const [id, answer] of want) assert.ok(got.get(id)!.equals(answer), `${from}: answer ${id} differs: ${got.get(id)!.toString('hex')} vs ${answer.toString('hex')}`);
  return want;
}

/** Sends `packets` (ids 0..n-1, one window at a time) from `from` and returns each answer by id. */
async function exchange(type: SocketType, from: string, to: string, port: number, packets: Buffer[]): Promise<Map<number, Buffer>> {
  const sock = createSocket(type);
  const got = new Map<number, Buffer>();
  sock.on('message', (m) => {
    if (m.length >= 2) got.set(m.readUInt16BE(0), m);
  });
  await new Promise<void>((r) => sock.bind(0, from, r));
  for (let i = 0; i < packets.length; i += 100) {
    for (const p of packets.slice(i, i + 100)) sock.send(p, port, to);
    await new Promise((r) => setTimeout(r, 30));
  }
  await new Promise((r) => setTimeout(r, 300));
  sock.close();
  return got;
}

/** The queries: served names in every case and type, flag and EDNS variants, and mutations. */
function corpus(names: string[]): Buffer[] {
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >> 8) % n;
  };
  const out: Buffer[] = [];
  const mixCase = (s: string): string => [...s].map((c) => (rand(2) ? c.toUpperCase() : c)).join('');
  const edns = Buffer.from([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]); // OPT, 4096-byte payload
  for (const name of [...names, 'example.test', 'cdn.quay.io', 'quay.io.example']) {
    for (const type of [1, 28, 255, 65, 15, 5]) {
      const q = query(0, mixCase(name), type);
      out.push(q);
      const flags = Buffer.from(q);
      flags[2] = 0x00; // RD off
      flags[3] = 0x30; // AD, CD on
      out.push(flags);
      const withEdns = Buffer.concat([q, edns]);
      withEdns.writeUInt16BE(1, 10);
      out.push(withEdns);
    }
    const chaos = query(0, name, 1);
    chaos.writeUInt16BE(3, chaos.length - 2); // class CH
    out.push(chaos);
  }
  // Mutations of served queries: one to three bytes after the id changed at random.
  const base = out.slice(0, names.length * 18);
  for (let i = 0; i < 600; i++) {
    const m = Buffer.from(base[rand(base.length)]!);
    for (let k = 0, n = 1 + rand(3); k < n; k++) m[2 + rand(m.length - 2)] = rand(256);
    out.push(rand(10) === 0 ? m.subarray(0, 2 + rand(m.length - 2)) : m);
  }
  return out.map((p, i) => {
    const b = Buffer.from(p);
    if (b.length >= 2) b.writeUInt16BE(i, 0);
    return b;
  });
}

test('the fast path answers exactly as the JavaScript door: same bytes, same silence, from allowed and refused sources', async (t) => {
  const pair = await doorPair(t, '127.0.0.1', 'v4');
  assert.equal(pair.fast.fastPath, true);
  assert.equal(pair.js.fastPath, false);
  const packets = corpus(hijackedNames(pair.config));
  for (const from of ['127.0.0.1', '127.0.0.2']) {
    const want = await assertSameAnswers(pair, 'udp4', from, '127.0.0.1', packets);
    assert.ok(want.size > packets.length / 2, `the JavaScript door answered ${want.size} of ${packets.length}`);
  }
  const s = pair.fast.stats();
  const j = pair.js.stats();
  assert.equal(s.answered, j.answered);
  assert.ok(s.answeredByFastPath > 0 && s.answeredByFastPath === s.answered, `every served answer came from the fast path: ${JSON.stringify(s)}`);
  assert.equal(j.answeredByFastPath, 0);
  assert.deepEqual({ ...s, answered: 0, answeredByFastPath: 0 }, { ...j, answered: 0, answeredByFastPath: 0 }, 'refused, failed, malformed, dropped agree');
});

test('on a dual-stack socket the fast path answers IPv4 and IPv6 clients as the JavaScript door does', async (t) => {
  const pair = await doorPair(t, '::', 'dual');
  const packets = corpus(['quay.io', 'mirror.internal']).slice(0, 200);
  for (const [type, from, to] of [['udp4', '127.0.0.1', '127.0.0.1'], ['udp4', '127.0.0.2', '127.0.0.1'], ['udp6', '::1', '::1']] as const) {
    const want = await assertSameAnswers(pair, type, from, to, packets);
    assert.ok(want.size > 100, `${from}: the JavaScript door answered ${want.size}`);
  }
  // IPv4 peers arrive as ::ffff:127.0.0.1 and still match dns.allow's 127.0.0.1/32 (RA set).
  const [ra] = [...(await exchange('udp4', '127.0.0.1', '127.0.0.1', pair.fast.bound.port, [query(1, 'quay.io')])).values()];
  assert.equal(ra![3]! & 0x80, 0x80);
  assert.ok(pair.fast.stats().answeredByFastPath > 0);
});

test('a listen address with an IPv6 zone (::1%lo) binds with and without the fast path, and both answer alike', async (t) => {
  const pair = await doorPair(t, '::1%lo', 'zone');
  const want = await assertSameAnswers(pair, 'udp6', '::1', '::1', [query(1, 'quay.io'), query(2, 'quay.io', 28), query(3, 'example.test')]);
  assert.equal(want.size, 3);
  assert.equal(pair.fast.stats().answeredByFastPath, 2);
});

test('closing frees the port at once, twice is harmless, and a closed door stays closed', async () => {
  const dgram = await door('127.0.0.1', 'off', 'reopen-dgram.yaml');
  await dgram.door.close();
  await dgram.door.close();
  const first = await door('127.0.0.1', 'on', 'reopen.yaml');
  const port = first.door.bound.port;
  await first.door.close();
  await first.door.close();
  const again = await startDnsDoor(first.config, { resolvConf });
  try {
    assert.equal(again.bound.port, port);
    const got = await exchange('udp4', '127.0.0.1', '127.0.0.1', port, [query(5, 'quay.io')]);
    assert.equal(got.get(5)?.readUInt16BE(6), 2, 'two A records');
  } finally {
    await again.close();
  }
  const silent = await exchange('udp4', '127.0.0.1', '127.0.0.1', port, [query(6, 'quay.io')]);
  assert.equal(silent.size, 0);
});

test('a burst while JavaScript is busy: 4096 datagrams wait for it, the rest are dropped and counted, and the door answers on', async () => {
  const fast = await door('127.0.0.1', 'on', 'burst.yaml');
  try {
    // spawnSync holds this thread (the door's JavaScript) while the child sends 6000 queries for
    // another name from a refused source; only the native thread reads them meanwhile.
    const sender = `
      const s = require('node:dgram').createSocket('udp4');
      s.bind(0, '127.0.0.2', async () => {
        const q = Buffer.from('000001000001000000000000076578616d706c65047465737400000100 01'.replace(/ /g, ''), 'hex');
        for (let i = 0; i < 6000; i++) { q.writeUInt16BE(i & 0xffff, 0); s.send(Buffer.from(q), ${fast.door.bound.port}, '127.0.0.1'); if (i % 500 === 499) await new Promise((r) => setImmediate(r)); }
        setTimeout(() => process.exit(0), 300);
      });`;
    const r = spawnSync(process.execPath, ['-e', sender], { timeout: 20_000 });
    assert.equal(r.status, 0, String(r.stderr));
    // The queued datagrams reach JavaScript in batches once it is free again: wait until every one
    // of the 6000 is either handled or counted as dropped (on a busy machine that takes a while).
    const deadline = Date.now() + 20_000;
    while (fast.door.stats().refused + fast.door.stats().dropped < 6000 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    const s = fast.door.stats();
    assert.equal(s.refused, 4096, JSON.stringify(s));
    assert.ok(s.dropped > 0 && s.dropped <= 6000 - 4096, JSON.stringify(s));
    const got = await exchange('udp4', '127.0.0.1', '127.0.0.1', fast.door.bound.port, [query(3, 'quay.io'), query(4, 'example.test')]);
    assert.equal(got.get(3)?.readUInt16BE(6), 2, 'served name answered');
    assert.equal(got.get(4)![3]! & 0x0f, 2, 'other name handed to JavaScript: SERVFAIL (no resolver)');
  } finally {
    await fast.door.close();
  }
});

test('a build without the fast path: auto warns and answers through dgram; on refuses to start, naming dns.fastPath', async (t) => {
  const build = buildWithoutNative();
  t.after(() => build.cleanup());
  const main = build.main;
  const dns = { answer: ['127.0.0.10'], forwarders: ['127.0.0.1:9'] };

  const pt = await startPullthrough({ listen: { mirror: '127.0.0.1:0', dns: '127.0.0.1:0' }, dns }, { main });
  try {
    assert.ok(pt.logs().some((l) => l.level === 'warn' && /native fast path is not built/.test(String(l.msg))), 'a warning says why');
    assert.equal(pt.logs().find((l) => l.msg === 'DNS door forwarding')?.fastPath, false);
    const got = await exchange('udp4', '127.0.0.1', '127.0.0.1', pt.ports.dns!, [query(9, 'quay.io')]);
    assert.equal(got.get(9)?.readUInt16BE(6), 1, 'quay.io answered');
    const metrics = await pt.metrics();
    assert.equal(metricValue(metrics, 'pullthrough_dns_queries_total', { result: 'answered' }), 1);
    assert.equal(metricValue(metrics, 'pullthrough_dns_fast_path_answers_total'), 0);
  } finally {
    await pt.cleanup();
  }

  const configFile = join(tmp.path, 'on.yaml');
  writeFileSync(configFile, stringify({ dataDir: join(tmp.path, 'on-data'), listen: { mirror: '127.0.0.1:0', dns: '127.0.0.1:0' }, dns: { ...dns, fastPath: 'on' } }));
  const r = await run(process.execPath, [...NODE_FLAGS, main, 'serve', '--config', configFile], { allowFail: true, timeoutMs: 20_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /dns\.fastPath is on, but the native DNS fast path is not built/);
});
