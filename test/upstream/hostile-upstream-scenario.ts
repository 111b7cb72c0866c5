/**
 * Runs INSIDE a network namespace of its own (see hostile-upstream.test.ts, which starts it with
 * `unshare -n` after putting 11.22.33.44 and 169.254.169.254 on the namespace's loopback):
 * nothing here can reach the machine's real network, and 169.254.169.254 is a canary of ours.
 *
 * A hostile upstream on 11.22.33.44 (public space, so its registry gets the strict rule) answers
 * with redirects, a token realm and upload Locations naming loopback, IPv6 loopback, metadata and
 * names that resolve to loopback; canaries on those addresses count every connection. pullthrough
 * (the real binary) runs in the same namespace. Prints one JSON line of observations on stdout.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { createHash } from 'node:crypto';
import { startFaultUpstream, randomBlob } from '../helpers/fault-upstream.js';
import { startTestResolver } from '../helpers/dns-fixture.js';
import { startPullthrough } from '../helpers/pullthrough.js';

const PUBLIC = '11.22.33.44';

interface Canary {
  readonly port: number;
  connections: number;
  close(): Promise<void>;
}

async function canary(host: string, port = 0): Promise<Canary> {
  const sockets = new Set<Socket>();
  const c = { port: 0, connections: 0, close: async () => {} };
  const server: Server = createServer((s) => {
    c.connections++;
    sockets.add(s);
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  c.port = (server.address() as { port: number }).port;
  c.close = () => new Promise<void>((r) => server.close(() => r()));
  return c;
}

/** Status and parsed body of a request to pullthrough. */
interface Seen {
  status: number;
  body: unknown;
  /** sha256:… of the body's bytes. */
  digest?: string;
}

async function get(url: string, init: RequestInit = {}): Promise<Seen> {
  const res = await fetch(url, { redirect: 'manual', ...init, headers: { accept: 'application/vnd.oci.image.manifest.v1+json', ...(init.headers ?? {}) } });
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  let body: unknown = text.slice(0, 2000);
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text (a blob, or an internal service's answer)
  }
  return { status: res.status, body, digest };
}

/** A request on the TLS door, SNI and Host as given (Host may differ from SNI). */
function tlsRequest(port: number, ca: string, servername: string, host: string, method: string, path: string): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername, method, path, headers: { host, 'content-length': '0' }, ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // kept as text
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const loop4 = await canary('127.0.0.1');
  const loop6 = await canary('::1');
  const metadata = await canary('169.254.169.254', 80);
  const resolver = await startTestResolver({ 'rebind.test': ['127.0.0.1'], 'mixed.test': [PUBLIC, '127.0.0.1'], 'hostile.example': [PUBLIC], 'cdn.example': [PUBLIC] }, 1);
  const hostile = await startFaultUpstream(PUBLIC);
  const onprem = await startFaultUpstream('127.0.0.1');
  const cdn = await startFaultUpstream('127.0.0.2');
  const goodBlob = randomBlob(50_000);
  const goodDigest = cdn.addBlob(goodBlob);
  // The loopback registry's own blob (another digest: a cached one would not be fetched again).
  const onpremBlob = randomBlob(50_000);
  const onpremDigest = cdn.addBlob(onpremBlob);
  onprem.addBlob(onpremBlob);
  onprem.redirectBlobsTo = cdn.url;
  const blobTo: Record<string, string> = {};
  const digestFor = (target: string): string => {
    const d = hostile.addBlob(randomBlob(1000));
    blobTo[d] = target;
    return d;
  };
  const blobs = {
    loopback: digestFor(`http://127.0.0.1:${loop4.port}/cdn/x`),
    rebind: digestFor(`http://rebind.test:${loop4.port}/cdn/x`),
    metadata: digestFor('http://169.254.169.254/latest/meta-data/iam/'),
    // A CDN by a name that resolves to a public address: what registries really do, allowed.
    publicCdn: '',
    good: goodDigest,
    onprem: onpremDigest,
  };
  blobTo[goodDigest] = `${cdn.url}/cdn/${goodDigest}`;
  // The hostile server serves /cdn/<digest> for its own blobs: the public CDN stands on it.
  blobs.publicCdn = hostile.addBlob(randomBlob(20_000));
  blobTo[blobs.publicCdn] = `http://cdn.example:${new URL(hostile.url).port}/cdn/${blobs.publicCdn}`;
  const manifestTo: Record<string, string> = {
    'to-loopback': `http://127.0.0.1:${loop4.port}/latest`,
    'to-localhost': `http://localhost:${loop4.port}/latest`,
    'to-ipv6-loopback': `http://[::1]:${loop6.port}/latest`,
    'to-mapped-loopback': `http://[::ffff:127.0.0.1]:${loop4.port}/latest`,
    'to-decimal-loopback': `http://2130706433:${loop4.port}/latest`,
    'to-metadata': 'http://169.254.169.254/latest/meta-data/',
    'to-mixed-name': `http://mixed.test:${loop4.port}/latest`,
    // A name resolving to a public address (the same server under another origin): allowed.
    'to-public-name': `http://cdn.example:${new URL(hostile.url).port}/v2/app/manifests/real`,
    // A relative redirect stays on the upstream's own origin: allowed (and then 404s there).
    'to-self': '/v2/app/manifests/nothing-here',
  };
  const MT = 'application/vnd.oci.image.manifest.v1+json';
  const cfg = Buffer.from('{}');
  const realManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${createHash('sha256').update(cfg).digest('hex')}`, size: 2 }, layers: [] }));
  const realDigest = hostile.addManifest('app', 'real', realManifest, MT);
  const respond = (method: string, path: string): { status: number; headers: Record<string, string> } | undefined => {
    if (path === '/v2/') return { status: 401, headers: { 'www-authenticate': `Bearer realm="http://127.0.0.1:${loop4.port}/token",service="hostile"` } };
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
    if (m?.[1] === 'needs-token') return { status: 401, headers: { 'www-authenticate': `Bearer realm="http://127.0.0.1:${loop4.port}/token",service="hostile",scope="repository:needs-token:pull"` } };
    if (m?.[1] === 'needs-named-token') return { status: 401, headers: { 'www-authenticate': `Bearer realm="http://rebind.test:${loop4.port}/token",service="hostile"` } };
    if (m?.[2] === 'manifests' && manifestTo[m[3]!]) return { status: 307, headers: { location: manifestTo[m[3]!]! } };
    if (m?.[2] === 'blobs' && blobTo[m[3]!]) return { status: 307, headers: { location: blobTo[m[3]!]! } };
    if (method === 'POST' && /\/blobs\/uploads\/$/.test(path)) return { status: 202, headers: { location: `http://127.0.0.1:${loop4.port}/upload/1`, 'docker-upload-uuid': '1' } };
    return undefined;
  };
  hostile.respond = respond;
  onprem.respond = (method, path) => (path === '/v2/app/manifests/to-metadata' ? { status: 302, headers: { location: manifestTo['to-metadata']! } } : undefined);

  const pt = await startPullthrough({
    listen: { mirror: '127.0.0.1:0', tls: '127.0.0.1:443' },
    dns: { forwarders: [`127.0.0.1:${resolver.port}`] },
    log: { level: 'info' },
    registries: {
      'hostile.example': { upstream: hostile.url },
      'hostile-by-name.example': { upstream: `http://hostile.example:${new URL(hostile.url).port}` },
      'opted.example': { upstream: hostile.url, allowPrivateRedirects: true },
      // Its own registry: a client remembers the last challenge and would try that realm first.
      'named-realm.example': { upstream: hostile.url },
      'onprem.example': { upstream: onprem.url },
    },
  });
  const cases: Record<string, Seen> = {};
  try {
    const v2 = (registry: string, rest: string): string => `${pt.url}/v2/${registry}/${rest}`;
    for (const tag of Object.keys(manifestTo)) cases[`manifest ${tag}`] = await get(v2('hostile.example', `app/manifests/${tag}`));
    cases['manifest to-loopback, upstream configured by name'] = await get(v2('hostile-by-name.example', 'app/manifests/to-loopback'));
    cases['blob to loopback'] = await get(v2('hostile.example', `app/blobs/${blobs.loopback}`));
    cases['blob to a name resolving to loopback'] = await get(v2('hostile.example', `app/blobs/${blobs.rebind}`));
    cases['blob to metadata'] = await get(v2('hostile.example', `app/blobs/${blobs.metadata}`));
    cases['blob to a public CDN by name, strict registry'] = await get(v2('hostile.example', `app/blobs/${blobs.publicCdn}`));
    cases['blob to a private CDN, strict registry'] = await get(v2('hostile.example', `app/blobs/${blobs.good}`));
    cases['token realm on loopback'] = await get(v2('hostile.example', 'needs-token/manifests/v1'));
    cases['token realm on a name resolving to loopback'] = await get(v2('named-realm.example', 'needs-named-token/manifests/v1'));
    cases['blob to a private CDN, allowPrivateRedirects'] = await get(v2('opted.example', `app/blobs/${blobs.good}`));
    cases['blob to a loopback CDN, loopback upstream'] = await get(v2('onprem.example', `app/blobs/${blobs.onprem}`));
    cases['manifest to metadata, loopback upstream'] = await get(v2('onprem.example', 'app/manifests/to-metadata'));
    // Through the TLS door: the token relay (realm from the upstream's /v2/ challenge) and a push.
    const ca = await (await fetch(`${pt.url}/ca.crt`)).text();
    cases['TLS door /v2/'] = await tlsRequest(443, ca, 'hostile.example', 'hostile.example', 'GET', '/v2/');
    cases['TLS door token relay'] = await tlsRequest(443, ca, 'hostile.example', 'hostile.example', 'GET', '/v2/_pullthrough/token?service=hostile&scope=repository:app:pull');
    cases['TLS door push Location'] = await tlsRequest(443, ca, 'hostile.example', 'hostile.example', 'POST', '/v2/app/blobs/uploads/');
  } finally {
    await pt.stop();
  }
  const out = {
    cases,
    canaries: { loopback: loop4.connections, ipv6Loopback: loop6.connections, metadata: metadata.connections },
    hostileLog: hostile.log,
    onpremLog: onprem.log,
    cdnLog: cdn.log,
    blobs,
    goodBlobSize: goodBlob.length,
    realDigest,
    warnings: pt.logs().filter((l) => l.level === 'warn'),
    output: pt.proc.output(),
  };
  await pt.cleanup();
  await Promise.all([loop4.close(), loop6.close(), metadata.close(), resolver.close(), hostile.close(), onprem.close(), cdn.close()]);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
