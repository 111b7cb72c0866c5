/** Upstream name resolution through dns.forwarders (a loopback dns2 resolver), not the system's. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lookup as systemLookup, type LookupAddress } from 'node:dns';
import { connect, createServer, type Server } from 'node:net';
import { createUpstreamLookup, type UpstreamLookup } from '../../src/upstream/dns-lookup.js';
import { tempDir } from '../helpers/process.js';
import { testConfig } from '../helpers/config.js';
import { startTestResolver, type TestResolver } from '../helpers/dns-fixture.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let resolver: TestResolver;
let lookup: UpstreamLookup;

const resolveAll = (name: string, family = 0): Promise<LookupAddress[]> =>
  new Promise((resolve, reject) => lookup(name, { all: true, family }, (err, list) => (err ? reject(err) : resolve(list as unknown as LookupAddress[]))));
const resolveOne = (name: string, family = 0): Promise<[string, number]> =>
  new Promise((resolve, reject) => lookup(name, { family }, (err, address, fam) => (err ? reject(err) : resolve([address as string, fam!]))));

before(async () => {
  tmp = await tempDir();
  // quay.io here is what a hijacked node resolver would not say: the real upstream address.
  resolver = await startTestResolver({ 'quay.io': ['127.0.0.1', '::1'], 'v6only.test': ['::1'] });
  lookup = createUpstreamLookup(testConfig(tmp.path, { dns: { forwarders: [`127.0.0.1:${resolver.port}`] } }));
});

after(async () => {
  await resolver?.close();
  await tmp?.cleanup();
});

test('names resolve through the forwarders, all families or one, and are cached', async () => {
  assert.deepEqual(await resolveAll('quay.io'), [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]);
  assert.deepEqual(await resolveOne('quay.io', 6), ['::1', 6]);
  assert.deepEqual(await resolveOne('QUAY.IO.'), ['127.0.0.1', 4]);
  const before = resolver.seen.get('quay.io');
  await resolveAll('quay.io');
  assert.equal(resolver.seen.get('quay.io'), before, 'answered from the cache');
  assert.deepEqual(await resolveAll('v6only.test'), [{ address: '::1', family: 6 }]);
  await assert.rejects(resolveOne('v6only.test', 4), { code: 'ENOTFOUND' });
  await assert.rejects(resolveOne('missing.test'), { code: 'ENOTFOUND' });
});

test('IP literals and localhost never reach a resolver', async () => {
  assert.deepEqual(await resolveOne('192.0.2.7'), ['192.0.2.7', 4]);
  assert.deepEqual(await resolveAll('localhost'), [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]);
  assert.ok(!resolver.seen.has('localhost'));
});

test('net.connect with the lookup reaches the address the forwarders gave', async () => {
  const server: Server = createServer((s) => s.end('hello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const got = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: 'quay.io', port, lookup, family: 4 });
      let buf = '';
      s.on('data', (b) => (buf += b));
      s.on('end', () => resolve(buf));
      s.on('error', reject);
    });
    assert.equal(got, 'hello');
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('without forwarders the system resolver is used', () => {
  assert.equal(createUpstreamLookup(testConfig(tmp.path, {}, 'plain.yaml')), systemLookup);
});
