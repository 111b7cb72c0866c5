/**
 * The DNS door with dig and raw packets on loopback: served names answered from dns.answer over UDP
 * and TCP, other names forwarded to a loopback resolver (dns2), REFUSED for sources outside
 * dns.allow, malformed and truncated packets survived, a 10k-query flood answered. One suite, run
 * with UDP through Node's dgram (dns-door-dgram.test.ts) and through the native fast path
 * (dns-door-fast-path.test.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../src/config/index.js';
import { startDnsDoor, type DnsDoor } from '../../src/doors/dns-server.js';
import { doorForwarders, DnsEndpointError } from '../../src/net/dns-endpoints.js';
import { freePort, run, tempDir } from '../helpers/process.js';
import { testConfig } from '../helpers/config.js';
import { startTestResolver, type TestResolver } from '../helpers/dns-fixture.js';

export const status = (out: string): string | undefined => /status: (\w+)/.exec(out)?.[1];
export const answers = (out: string): string[] =>
  out.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/).filter(Boolean).join(' '));

/** A query for `name`/`type` as bytes. */
export function query(id: number, name: string, type = 1): Buffer {
  const parts = [Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const label of name.split('.')) parts.push(Buffer.from([label.length]), Buffer.from(label, 'latin1'));
  parts.push(Buffer.from([0, type >> 8, type & 0xff, 0, 1]));
  return Buffer.concat(parts);
}

/** Sends each packet over UDP and collects whatever comes back within `waitMs`. */
export async function udpExchange(port: number, packets: Buffer[], waitMs = 300, from = '127.0.0.1'): Promise<Buffer[]> {
  const sock = createSocket('udp4');
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  await new Promise<void>((r) => sock.bind(0, from, r));
  for (const p of packets) sock.send(p, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, waitMs));
  sock.close();
  return got;
}

/** Registers the suite's tests for one dns.fastPath setting. */
export function dnsDoorSuite(fastPath: 'on' | 'off'): void {
  let tmp: { path: string; cleanup: () => Promise<void> };
  let resolver: TestResolver;
  let config: Config;
  let door: DnsDoor;

  const dig = async (args: string[]): Promise<string> => (await run('dig', ['+time=3', '+tries=1', '@127.0.0.1', '-p', String(door.bound.port), ...args], { allowFail: true })).stdout;
  before(async () => {
    tmp = await tempDir();
    resolver = await startTestResolver({ 'example.test': ['192.0.2.10', '2001:db8::10'], 'big.test': ['192.0.2.1'] });
    const port = await freePort();
    config = testConfig(tmp.path, {
      listen: { dns: `127.0.0.1:${port}` },
      dns: { answer: ['127.0.0.10', 'fd00::10'], forwarders: [`127.0.0.1:${resolver.port}`], allow: ['127.0.0.1/32'], ttl: 42, fastPath },
      tls: { extraNames: ['mirror.internal', '127.0.0.5'] },
    });
    door = await startDnsDoor(config);
    assert.equal(door.fastPath, fastPath === 'on');
  });

  after(async () => {
    await door?.close();
    await resolver?.close();
    await tmp?.cleanup();
  });

  test('served names get dns.answer with dns.ttl over UDP and TCP, whatever their case; other types get NOERROR and no records', async () => {
    for (const transport of ['+notcp', '+tcp']) {
      const a = await dig([transport, '+noall', '+answer', '+comments', 'QuAy.Io', 'A']);
      assert.equal(status(a), 'NOERROR');
      assert.match(a, /flags: qr aa rd ra;/);
      assert.deepEqual(answers(a), ['QuAy.Io. 42 IN A 127.0.0.10']);
      assert.deepEqual(answers(await dig([transport, '+noall', '+answer', 'registry-1.docker.io', 'AAAA'])), ['registry-1.docker.io. 42 IN AAAA fd00::10']);
      assert.deepEqual(answers(await dig([transport, '+noall', '+answer', 'mirror.internal', 'A'])), ['mirror.internal. 42 IN A 127.0.0.10']);
      const mx = await dig([transport, 'quay.io', 'HTTPS']);
      assert.equal(status(mx), 'NOERROR');
      assert.match(mx, /ANSWER: 0/);
    }
    // Subdomains of a served name are someone else's.
    assert.equal(status(await dig(['cdn01.quay.io', 'A'])), 'NXDOMAIN');
    assert.ok(!resolver.seen.has('quay.io'), 'served names are never forwarded');
  });

  test('other names are forwarded to dns.forwarders and the answer relayed, over UDP and TCP', async () => {
    assert.deepEqual(answers(await dig(['+noall', '+answer', 'example.test', 'A'])), ['example.test. 30 IN A 192.0.2.10']);
    assert.deepEqual(answers(await dig(['+tcp', '+noall', '+answer', 'example.test', 'AAAA'])), ['example.test. 30 IN AAAA 2001:db8::10']);
    assert.equal(status(await dig(['nowhere.test'])), 'NXDOMAIN');
    // 500 forwarded queries at once: every answer goes back to the query it belongs to.
    const packets = Array.from({ length: 500 }, (_, i) => query(i, i % 2 ? 'example.test' : 'big.test'));
    const got = await udpExchange(door.bound.port, packets, 1500);
    assert.equal(got.length, 500);
    for (const m of got) {
      const id = m.readUInt16BE(0);
      const name = m.toString('latin1', 13, 13 + m[12]!);
      assert.equal(name, id % 2 ? 'example' : 'big', `answer ${id} matches its question`);
      assert.equal(m.readUInt16BE(6), 1);
    }
  });

  test('sources outside dns.allow get REFUSED for other names, and still get the served names', async () => {
    for (const transport of ['+notcp', '+tcp']) {
      const refused = await dig([transport, '-b', '127.0.0.2', 'example.test', 'A']);
      assert.equal(status(refused), 'REFUSED');
      const served = await dig([transport, '-b', '127.0.0.2', '+noall', '+answer', '+comments', 'quay.io', 'A']);
      assert.deepEqual(answers(served), ['quay.io. 42 IN A 127.0.0.10']);
      assert.match(served, /flags: qr aa rd;/, 'no recursion offered to them');
    }
    assert.ok(door.stats().refused >= 2);
  });

  test('malformed and truncated packets over UDP and TCP: FORMERR, NOTIMP or silence, and the door keeps answering', async () => {
    const port = door.bound.port;
    const header = (flags: number, qd: number): Buffer => Buffer.from([0x12, 0x34, flags >> 8, flags & 0xff, 0, qd, 0, 0, 0, 0, 0, 0]);
    const formerr = [
      Buffer.concat([header(0x0100, 1), Buffer.from([10, 0x61, 0x62, 0x63])]), // label runs past the end
      Buffer.concat([header(0x0100, 1), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]), // compression pointer to itself
      Buffer.concat([header(0x0100, 2), query(0, 'quay.io').subarray(12)]), // two questions
      Buffer.concat([header(0x0100, 0)]), // no question
      Buffer.concat([header(0x0100, 1), Buffer.from([4, 0x71, 0x75, 0x61, 0x79, 0])]), // no type and class
      Buffer.concat([header(0x0100, 1), ...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])), Buffer.from([0, 0, 1, 0, 1])]), // name > 255
    ];
    const replies = await udpExchange(port, formerr);
    assert.equal(replies.length, formerr.length);
    for (const r of replies) assert.equal(r[3]! & 0x0f, 1, 'FORMERR');
    const notimp = await udpExchange(port, [Buffer.concat([header(0x1000, 1), query(0, 'quay.io').subarray(12)])]);
    assert.equal(notimp[0]![3]! & 0x0f, 4, 'NOTIMP for opcode STATUS');
    // Junk that gets no answer at all: empty, short, responses, and 300 random packets.
    let seed = 42;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) & 0xff;
    const fuzz = Array.from({ length: 300 }, (_, i) => Buffer.from(Array.from({ length: 1 + (i % 60) * 9 }, rand)));
    await udpExchange(port, [Buffer.alloc(0), Buffer.from([1, 2, 3, 4, 5]), header(0x8100, 1), ...fuzz], 300);
    // Dotted labels cannot pass for a served name: "quay.io" as one label is an other name (REFUSED to this source).
    const dotted = Buffer.concat([header(0x0100, 1), Buffer.from([7]), Buffer.from('quay.io'), Buffer.from([0, 0, 1, 0, 1])]);
    const [d] = await udpExchange(port, [dotted], 300, '127.0.0.2');
    assert.equal(d![3]! & 0x0f, 5, 'REFUSED, not answered as quay.io');

    // TCP: a garbage frame then a good one in one write, on one connection.
    const tcpAnswers = await new Promise<Buffer>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        const junk = Buffer.from([0, 5, 1, 2, 3, 4, 5]);
        const good = query(0x4242, 'quay.io');
        s.write(Buffer.concat([junk, Buffer.from([0, good.length]), good]));
      });
      const chunks: Buffer[] = [];
      s.on('data', (b) => {
        chunks.push(b);
        const all = Buffer.concat(chunks);
        if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
          s.destroy();
          resolve(all);
        }
      });
      s.on('error', reject);
    });
    assert.equal(tcpAnswers.readUInt16BE(2), 0x4242);
    // TCP frames cut short, then the client goes away.
    for (const cut of [Buffer.from([0x01]), Buffer.from([0, 100, 1, 2, 3]), Buffer.from([0xff, 0xff, ...query(1, 'quay.io')])]) {
      await new Promise<void>((resolve) => {
        const s = connect(port, '127.0.0.1', () => s.end(cut));
        s.on('close', () => resolve());
        s.on('error', () => resolve());
        s.resume();
      });
    }
    assert.deepEqual(answers(await dig(['+noall', '+answer', 'quay.io'])), ['quay.io. 42 IN A 127.0.0.10']);
    assert.deepEqual(answers(await dig(['+tcp', '+noall', '+answer', 'quay.io'])), ['quay.io. 42 IN A 127.0.0.10']);
  });

  test('a flood of 10,000 queries is answered, quickly, and the door answers afterwards', async (t) => {
    const N = 10_000;
    const WINDOW = 100;
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const names = ['quay.io', 'ghcr.io', 'registry-1.docker.io', 'registry.k8s.io'];
    const t0 = process.hrtime.bigint();
    const got = await new Promise<number>((resolve) => {
      let sent = 0;
      let received = 0;
      let receivedBefore = 0;
      const send = (): void => {
        if (sent < N) sock.send(query(sent & 0xffff, names[sent % names.length]!), door.bound.port, '127.0.0.1');
        sent++;
      };
      // Lost datagrams must not stall the window: when nothing came back for 50 ms, send a window more.
      // Once all are sent, half a second without an answer means the rest were lost (UDP): done.
      let quiet = 0;
      const pump = setInterval(() => {
        quiet = received === receivedBefore ? quiet + 1 : 0;
        if (sent >= N && quiet >= 10) return finish();
        if (received === receivedBefore) for (let i = 0; i < WINDOW; i++) send();
        receivedBefore = received;
      }, 50);
      const deadline = setTimeout(() => finish(), 20_000);
      const finish = (): void => {
        clearInterval(pump);
        clearTimeout(deadline);
        resolve(received);
      };
      sock.on('message', () => {
        received++;
        if (received >= N) finish();
        else send();
      });
      for (let i = 0; i < WINDOW; i++) send();
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    sock.close();
    assert.ok(got >= N * 0.99, `answered ${got} of ${N}`);
    assert.ok(ms < 20_000, `took ${ms} ms`);
    t.diagnostic(`DNS flood: ${got} answers in ${ms.toFixed(0)} ms (${Math.round((got / ms) * 1000)} qps)`);
    assert.deepEqual(answers(await dig(['+noall', '+answer', 'quay.io'])), ['quay.io. 42 IN A 127.0.0.10']);
  });

  test('a resolver that does not answer: the next one is asked; none answering gives SERVFAIL', async () => {
    const dead = await freePort();
    const port = await freePort();
    const cfg = testConfig(tmp.path, {
      listen: { dns: `127.0.0.1:${port}` },
      dns: { answer: ['127.0.0.10'], forwarders: [`127.0.0.1:${dead}`, `127.0.0.1:${resolver.port}`], fastPath },
    }, 'failover.yaml');
    const d2 = await startDnsDoor(cfg);
    try {
      const q = (args: string[]) => run('dig', ['+time=5', '+tries=1', '@127.0.0.1', '-p', String(port), ...args], { allowFail: true });
      assert.deepEqual(answers((await q(['+noall', '+answer', 'example.test'])).stdout), ['example.test. 30 IN A 192.0.2.10']);
      const t0 = Date.now();
      assert.deepEqual(answers((await q(['+noall', '+answer', 'example.test'])).stdout), ['example.test. 30 IN A 192.0.2.10']);
      assert.ok(Date.now() - t0 < 1500, 'the resolver that answered is asked first');
      assert.deepEqual(answers((await q(['+tcp', '+noall', '+answer', 'example.test'])).stdout), ['example.test. 30 IN A 192.0.2.10']);
    } finally {
      await d2.close();
    }
    const cfg3 = testConfig(tmp.path, { listen: { dns: `127.0.0.1:${port}` }, dns: { answer: ['127.0.0.10'], forwarders: [`127.0.0.1:${dead}`], fastPath } }, 'dead.yaml');
    const d3 = await startDnsDoor(cfg3);
    try {
      const r = await run('dig', ['+time=5', '+tries=1', '@127.0.0.1', '-p', String(port), 'example.test'], { allowFail: true });
      assert.equal(status(r.stdout), 'SERVFAIL');
      assert.equal(d3.stats().failed, 1);
    } finally {
      await d3.close();
    }
  });

  test('default forwarders come from resolv.conf without pullthrough itself; configuring itself is an error', async () => {
    const resolv = join(tmp.path, 'resolv.conf');
    writeFileSync(resolv, '# test\nsearch example\nnameserver 10.1.1.1\nnameserver 127.0.0.1\nnameserver 192.0.2.53\nnameserver ::1\noptions ndots:5\n');
    const cfg = testConfig(tmp.path, { listen: { dns: '127.0.0.1:53' }, dns: { answer: ['10.1.1.1'] } }, 'resolv.yaml');
    assert.deepEqual(doorForwarders(cfg, resolv).map((e) => `${e.address}:${e.port}`), ['192.0.2.53:53', '::1:53']);
    const wildcard = testConfig(tmp.path, { listen: { dns: '0.0.0.0:53' }, dns: { answer: ['10.1.1.1'] } }, 'wild.yaml');
    // On a wildcard every local address is the door (::1 too, to be safe).
    assert.deepEqual(doorForwarders(wildcard, resolv).map((e) => e.address), ['192.0.2.53']);
    const self = testConfig(tmp.path, { listen: { dns: '127.0.0.1:5353' }, dns: { answer: ['10.1.1.1'], forwarders: ['127.0.0.1:5353'] } }, 'self.yaml');
    assert.throws(() => doorForwarders(self), DnsEndpointError);
    const named = testConfig(tmp.path, { dns: { forwarders: ['dns.google'] } }, 'named.yaml');
    assert.throws(() => doorForwarders(named), DnsEndpointError);
  });
}
