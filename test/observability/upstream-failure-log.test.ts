/**
 * Upstream failures in the server log: the policy (one line per registry and cause, repeats
 * counted) with a fake clock, then a real pullthrough whose upstreams are a closed port and a name
 * that does not resolve, pulled from several times with skopeo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamFailureLog, scrub } from '../../src/observability/upstream-failure-log.js';
import { UpstreamStatusError, UpstreamUnavailableError } from '../../src/upstream/errors.js';
import type { Logger } from '../../src/observability/logger.js';
import { freePort } from '../helpers/process.js';
import { startPullthrough } from '../helpers/pullthrough.js';
import { startTestResolver } from '../helpers/dns-fixture.js';
import { skopeoCopy } from '../helpers/clients.js';
import { until } from '../helpers/replicas.js';

function recorder(): { log: Logger; lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push({ level, msg, fields });
  return { log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

const refused = (registry = 'docker.io') => new UpstreamUnavailableError(registry, 'connect ECONNREFUSED 127.0.0.1:9');
const notFound = (registry = 'docker.io') => new UpstreamUnavailableError(registry, 'getaddrinfo ENOTFOUND registry-1.docker.io');

test('one warn line per registry and cause; repeats are counted and reported with the next line', () => {
  let now = 1_000_000;
  const { log, lines } = recorder();
  const f = new UpstreamFailureLog(log, { quietMs: 60_000, now: () => now });
  for (let i = 0; i < 5; i++) f.note(refused());
  assert.equal(lines.length, 1);
  assert.deepEqual(lines[0], { level: 'warn', msg: 'upstream failing', fields: { registry: 'docker.io', cause: 'connect ECONNREFUSED 127.0.0.1:9', status: undefined } });
  now += 59_999;
  f.note(refused());
  assert.equal(lines.length, 1, 'still within the quiet period');
  now += 1;
  f.note(refused());
  assert.equal(lines.length, 2);
  assert.equal(lines[1]!.fields.repeated, 5, 'the four repeats after the first line and the one at 59.999 s');
  f.note(refused());
  assert.equal(lines.length, 2);
});

test('a new cause is logged at once and says how many of the previous cause went unlogged; registries are apart', () => {
  let now = 0;
  const { log, lines } = recorder();
  const f = new UpstreamFailureLog(log, { quietMs: 60_000, now: () => now });
  f.note(refused());
  f.note(refused());
  f.note(refused());
  f.note(refused('quay.io'));
  now += 1000;
  f.note(notFound());
  assert.deepEqual(
    lines.map((l) => l.fields),
    [
      { registry: 'docker.io', cause: 'connect ECONNREFUSED 127.0.0.1:9', status: undefined },
      { registry: 'quay.io', cause: 'connect ECONNREFUSED 127.0.0.1:9', status: undefined },
      { registry: 'docker.io', cause: 'getaddrinfo ENOTFOUND registry-1.docker.io', status: undefined, previousCause: 'connect ECONNREFUSED 127.0.0.1:9', previousRepeated: 2 },
    ],
  );
  f.note(notFound());
  assert.equal(lines.length, 3);
});

test('a registry whose causes alternate (a flapping upstream) logs each cause once per quiet period, not per request', () => {
  const { log, lines } = recorder();
  let now = 0;
  const f = new UpstreamFailureLog(log, { quietMs: 60_000, now: () => now });
  for (let i = 0; i < 6; i++) {
    f.note(i % 2 === 0 ? refused() : notFound());
    now += 1000;
  }
  assert.deepEqual(
    lines.map((l) => l.fields.cause),
    ['connect ECONNREFUSED 127.0.0.1:9', 'getaddrinfo ENOTFOUND registry-1.docker.io'],
  );
  now += 60_000;
  f.note(refused());
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!.fields.repeated, 2, 'the two refusals not logged in between are counted');
});

test('429 and 5xx answers count as failures; 404s, 401s and other errors do not', () => {
  const { log, lines } = recorder();
  const f = new UpstreamFailureLog(log);
  f.note(new UpstreamStatusError('ghcr.io', 404, 'MANIFEST_UNKNOWN', 'manifest unknown', undefined));
  f.note(new UpstreamStatusError('ghcr.io', 401, 'UNAUTHORIZED', 'authentication required', undefined));
  f.note(new Error('something else'));
  f.note('not even an error');
  assert.equal(lines.length, 0);
  f.note(new UpstreamStatusError('ghcr.io', 503, undefined, undefined, undefined));
  f.note(new UpstreamStatusError('ghcr.io', 503, undefined, undefined, undefined));
  f.note(new UpstreamStatusError('ghcr.io', 429, 'TOOMANYREQUESTS', 'slow down', '30'));
  assert.deepEqual(
    lines.map((l) => [l.fields.cause, l.fields.status]),
    [
      ['answered 503', 503],
      ['answered 429: TOOMANYREQUESTS slow down', 429],
    ],
  );
});

test('causes never carry credentials, query strings or tokens', () => {
  assert.equal(scrub('redirect to https://user:s3cret@cdn.example/blob?X-Amz-Signature=abc&x=1 failed'), 'redirect to https://cdn.example/blob?… failed');
  assert.equal(scrub('sent Authorization: Bearer eyJhbGciOi.payload.sig back'), 'sent Authorization: Bearer … back');
  assert.equal(scrub('Basic dXNlcjpwYXNz\nrest'), 'Basic … rest');
  const { log, lines } = recorder();
  new UpstreamFailureLog(log).note(new UpstreamUnavailableError('r.example', 'token service https://bob:pw@auth.example/token?account=bob unreachable'));
  assert.equal(lines[0]!.fields.cause, 'token service https://auth.example/token?… unreachable');
});

test('a real pullthrough: several failing pulls give exactly one warn line per registry, naming the cause', async (t) => {
  // Nothing listens on this port: connections are refused.
  const closed = await freePort();
  // pullthrough resolves upstream names through this loopback resolver, which knows no names.
  const resolver = await startTestResolver({});
  t.after(() => resolver.close());
  const pt = await startPullthrough({
    dns: { forwarders: [`127.0.0.1:${resolver.port}`] },
    registries: {
      'docker.io': { upstream: `http://127.0.0.1:${closed}`, username: 'robot', password: 'hunter2-secret' },
      'broken.invalid': { upstream: 'https://registry.pullthrough.invalid' },
    },
  });
  t.after(() => pt.cleanup());

  for (let i = 0; i < 3; i++) {
    for (const ref of [`${pt.host}/library/app:v${i}`, `${pt.host}/broken.invalid/team/app:v${i}`]) {
      const r = await skopeoCopy(ref, 'dir', { tlsVerify: false });
      await r.cleanup();
      assert.notEqual(r.code, 0, `${ref} cannot be pulled`);
    }
  }
  const failed = (registry: string) => pt.requests().filter((l) => l.registry === registry && l.status === 503 && l.error === 'UNAVAILABLE').length;
  // A request's log line is written once its response has closed, which may come a moment after
  // skopeo, the client, has exited.
  await until('three UNAVAILABLE 503s in the request log for each registry', () => failed('docker.io') >= 3 && failed('broken.invalid') >= 3, 5000);
  assert.ok(failed('docker.io') >= 3, `three or more 503s for docker.io (got ${failed('docker.io')})`);
  assert.ok(failed('broken.invalid') >= 3, `three or more 503s for broken.invalid (got ${failed('broken.invalid')})`);

  const warns = pt.logs().filter((l) => l.level === 'warn');
  const failing = warns.filter((l) => l.msg === 'upstream failing');
  assert.equal(failing.length, 2, JSON.stringify(failing));
  const hub = failing.find((l) => l.registry === 'docker.io');
  const broken = failing.find((l) => l.registry === 'broken.invalid');
  assert.match(String(hub?.cause), new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${closed}`));
  assert.match(String(broken?.cause), /ENOTFOUND registry\.pullthrough\.invalid/);
  // No other warn line repeats the cause per request, and no line carries the password.
  assert.equal(warns.filter((l) => JSON.stringify(l).includes('ECONNREFUSED')).length, 1);
  assert.equal(warns.filter((l) => JSON.stringify(l).includes('ENOTFOUND')).length, 1);
  assert.ok(!pt.proc.output().includes('hunter2-secret'), 'the upstream password is never logged');
});
