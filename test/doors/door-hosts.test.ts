/**
 * The TLS door (and TLS inside CONNECT tunnels, and the proxy door's absolute URIs) routes only
 * names it serves (issue 15, part 5): a served registry on a port it is not served on, a name it
 * does not serve, or a Host that differs from the TLS server name gets `403 DENIED` naming the
 * host, and defaultRegistry's upstream never hears of it. Real pullthrough, real sockets.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { startPullthrough, type Pullthrough } from '../helpers/pullthrough.js';
import { randomLoopback } from '../helpers/hijack.js';
import { sha256 } from '../helpers/images.js';

const MT = 'application/vnd.oci.image.manifest.v1+json';
const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('{}'), size: 2 }, layers: [] }));

let hub: FaultUpstream; // defaultRegistry (docker.io): where a misrouted request would land
let quay: FaultUpstream;
let local: FaultUpstream; // registry.local:5000
let pt: Pullthrough;
let ip: string;
let ca: string;

interface Answer {
  status: number;
  body: { errors?: Array<{ code: string; message: string }> } & Record<string, unknown>;
}

const parse = (status: number, text: string): Answer => {
  try {
    return { status, body: JSON.parse(text) as Answer['body'] };
  } catch {
    return { status, body: { text } };
  }
};

/** A GET on the TLS door with the given SNI and Host (optionally over an existing socket: a tunnel). */
function tlsGet(servername: string, host: string, path: string, socket?: Socket): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: ip, port: 443, servername, path, headers: { host, accept: MT }, ca, agent: false, ...(socket ? { createConnection: () => socket } : {}) },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(parse(res.statusCode ?? 0, text)));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A CONNECT through the proxy door; resolves with the tunnel socket once it is established. */
function tunnel(target: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(pt.ports.proxy!, '127.0.0.1', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    s.once('data', (b: Buffer) => (b.toString('latin1').startsWith('HTTP/1.1 200') ? resolve(s) : reject(new Error(b.toString('latin1')))));
    s.once('error', reject);
  });
}

function assertDenied(a: Answer, pattern: RegExp): void {
  assert.equal(a.status, 403, JSON.stringify(a.body));
  assert.equal(a.body.errors?.[0]?.code, 'DENIED');
  assert.match(a.body.errors![0]!.message, pattern);
}

before(async () => {
  [hub, quay, local] = await Promise.all([startFaultUpstream(), startFaultUpstream(), startFaultUpstream()]);
  for (const u of [hub, quay, local]) u.addManifest(u === hub ? 'library/app' : 'team/app', 'v1', manifest, MT);
  ip = randomLoopback();
  pt = await startPullthrough({
    listen: { mirror: '127.0.0.1:0', tls: `${ip}:443`, proxy: '127.0.0.1:0' },
    tls: { extraNames: ['mirror.internal'] },
    registries: {
      'docker.io': { upstream: hub.url, aliases: ['registry-1.docker.io', 'index.docker.io'] },
      'quay.io': { upstream: quay.url },
      'registry.local:5000': { upstream: local.url },
    },
  });
  ca = await readFile(join(pt.dataDir, 'ca', 'ca.crt'), 'utf8');
});

after(async () => {
  await pt?.cleanup();
  await Promise.all([hub?.close(), quay?.close(), local?.close()]);
});

test('TLS door: a served name with no port or :443 is that registry', async () => {
  for (const host of ['quay.io', 'quay.io:443', 'QUAY.io']) {
    const a = await tlsGet('quay.io', host, '/v2/team/app/manifests/v1');
    assert.equal(a.status, 200, `${host}: ${JSON.stringify(a.body)}`);
    assert.equal(a.body.mediaType, MT);
  }
  assert.ok(quay.count('GET /v2/team/app/manifests/v1') + quay.count('HEAD /v2/team/app/manifests/v1') >= 1);
});

test('TLS door: a served name on an unserved port, an unserved name, or a Host unlike the SNI is 403 DENIED naming the host', async () => {
  hub.log.length = 0;
  assertDenied(await tlsGet('quay.io', 'quay.io:50759', '/v2/team/app/manifests/v1'), /quay\.io is served on port 443, not 50759/);
  assertDenied(await tlsGet('quay.io', 'evil.example', '/v2/team/app/manifests/v1'), /does not serve evil\.example/);
  assertDenied(await tlsGet('quay.io', 'docker.io', '/v2/library/app/manifests/v1'), /Host docker\.io does not match the TLS server name quay\.io/);
  assertDenied(await tlsGet('quay.io', 'registry.local', '/v2/team/app/manifests/v1'), /does not serve registry\.local|served on port 5000/);
  assertDenied(await tlsGet('quay.io', 'quay.io:50759', '/v2/'), /not 50759/);
  assert.deepEqual(hub.log, [], 'nothing went to defaultRegistry');
});

test('TLS door: pullthrough\'s own names (tls.extraNames) route like the mirror, on any port', async () => {
  const prefixed = await tlsGet('mirror.internal', 'mirror.internal', '/v2/quay.io/team/app/manifests/v1');
  assert.equal(prefixed.status, 200, JSON.stringify(prefixed.body));
  const dflt = await tlsGet('mirror.internal', 'mirror.internal:8443', '/v2/app/manifests/v1');
  assert.equal(dflt.status, 200, JSON.stringify(dflt.body));
  assert.ok(hub.count('GET /v2/library/app/manifests/v1') + hub.count('HEAD /v2/library/app/manifests/v1') >= 1);
});

test('CONNECT tunnels: the same rule for the TLS inside; registry.local:5000 only with its port', async () => {
  hub.log.length = 0;
  assertDenied(await tlsGet('quay.io', 'quay.io:50759', '/v2/team/app/manifests/v1', await tunnel('quay.io:443')), /not 50759/);
  const ok = await tlsGet('registry.local', 'registry.local:5000', '/v2/team/app/manifests/v1', await tunnel('registry.local:5000'));
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assertDenied(await tlsGet('registry.local', 'registry.local', '/v2/team/app/manifests/v1', await tunnel('registry.local:5000')), /registry\.local:5000 is served on port 5000, not 443/);
  assert.deepEqual(hub.log, [], 'nothing went to defaultRegistry');
});

test('proxy door: an absolute URI for a served name on another port is refused, not sent to defaultRegistry', async () => {
  hub.log.length = 0;
  const a = await new Promise<Answer>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: pt.ports.proxy, path: 'http://quay.io:50759/v2/team/app/manifests/v1', headers: { host: 'quay.io:50759', accept: MT } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve(parse(res.statusCode ?? 0, text)));
    });
    req.on('error', reject);
    req.end();
  });
  assertDenied(a, /not 50759/);
  assert.deepEqual(hub.log, []);
});
