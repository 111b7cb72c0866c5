/**
 * The error families: every error class in src/ descends from PullthroughError with its own
 * stable code, and src/http/error-mapping.ts gives each one that can reach a request a specific
 * OCI answer. The class list is read from the source, so a new error class without an entry
 * here fails this test instead of going unnoticed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PullthroughError } from '../src/util/errors.js';
import { toOciError } from '../src/http/error-mapping.js';
import { OciError, OCI_ERROR_TABLE, type OciErrorCode } from '../src/oci/errors.js';
import { BodyTooLargeError, UpstreamAddressRefusedError, UpstreamManifestInvalidError, UpstreamTagListError, UpstreamIntegrityError, UpstreamStatusError, UpstreamTooLargeError, UpstreamUnavailableError } from '../src/upstream/errors.js';
import { BlobNotFoundError, StorageUnavailableError } from '../src/storage/errors.js';
import { AccessDeniedError, AuthenticationRequiredError, RateLimitedError, TokenRequestError } from '../src/auth/errors.js';
import { ConfigError } from '../src/config/errors.js';
import { PkiError } from '../src/pki/errors.js';
import { SetupError } from '../src/setup/errors.js';
import { DnsEndpointError } from '../src/net/dns-endpoints.js';
import { InvalidTokenError } from '../src/auth/tokens.js';
import { HtpasswdError } from '../src/auth/htpasswd.js';
import { TokenSecretError } from '../src/auth/token-secret.js';
import { GlobSyntaxError } from '../src/util/glob.js';
import { AddressRefusedError } from '../src/net/address-guard.js';
import { CliError, UsageError } from '../src/cli/parse.js';
import { AdminRequestError } from '../src/admin/app.js';

// dist/test/errors.test.js → the repository root.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * One instance of every error class, its stable code, and what a client sees when it reaches a
 * request (`startup`: it never does — raised while loading config, files or keys, or caught by
 * its own module — and falls to INTERNAL if it somehow did).
 */
const FAMILY: Array<{ err: PullthroughError; code: string; oci: OciErrorCode | 'startup' }> = [
  { err: new UpstreamUnavailableError('r', 'connect ECONNREFUSED', { cause: new Error('low') }), code: 'ERR_UPSTREAM_UNAVAILABLE', oci: 'UNAVAILABLE' },
  { err: new UpstreamStatusError('r', 403, 'DENIED', 'no', undefined), code: 'ERR_UPSTREAM_STATUS', oci: 'DENIED' },
  { err: new UpstreamIntegrityError('r', 'bad'), code: 'ERR_UPSTREAM_INTEGRITY', oci: 'UPSTREAM_ERROR' },
  { err: new UpstreamTooLargeError('r', 'tag list of x', 10, 'tag list of x longer than 10 tags'), code: 'ERR_UPSTREAM_TOO_LARGE', oci: 'UPSTREAM_ERROR' },
  { err: new BodyTooLargeError(10), code: 'ERR_BODY_TOO_LARGE', oci: 'UPSTREAM_ERROR' },
  { err: new UpstreamManifestInvalidError('r', 'body is not JSON'), code: 'ERR_UPSTREAM_MANIFEST_INVALID', oci: 'UPSTREAM_ERROR' },
  { err: new UpstreamTagListError('r', 'Link to another origin'), code: 'ERR_UPSTREAM_TAG_LIST', oci: 'UPSTREAM_ERROR' },
  { err: new UpstreamAddressRefusedError('r', 'redirect', 'http://127.0.0.1:1', 'loopback'), code: 'ERR_UPSTREAM_ADDRESS_REFUSED', oci: 'UPSTREAM_ERROR' },
  { err: new BlobNotFoundError('k'), code: 'ERR_BLOB_NOT_FOUND', oci: 'BLOB_UNKNOWN' },
  { err: new StorageUnavailableError('redis', 'down', { cause: new Error('low') }), code: 'ERR_STORAGE_UNAVAILABLE', oci: 'UNAVAILABLE' },
  { err: new AuthenticationRequiredError('who', 'no credentials', 'Bearer realm="x"'), code: 'ERR_AUTH_REQUIRED', oci: 'UNAUTHORIZED' },
  { err: new AccessDeniedError('no', 'pull', 'r', 'a/b', null), code: 'ERR_ACCESS_DENIED', oci: 'DENIED' },
  { err: new RateLimitedError(3), code: 'ERR_RATE_LIMITED', oci: 'TOOMANYREQUESTS' },
  { err: new TokenRequestError('bad request', 'no'), code: 'ERR_TOKEN_REQUEST', oci: 'REQUEST_INVALID' },
  { err: new SetupError('no listener'), code: 'ERR_SETUP', oci: 'UNSUPPORTED' },
  { err: new ConfigError(['x: bad']), code: 'ERR_CONFIG', oci: 'startup' },
  { err: new PkiError('bad CA', { cause: new Error('low') }), code: 'ERR_PKI', oci: 'startup' },
  { err: new DnsEndpointError('bad'), code: 'ERR_DNS_ENDPOINT', oci: 'startup' },
  // The command line's: main.ts prints them and exits 1 or 2.
  { err: new CliError('cannot start', 1), code: 'ERR_CLI', oci: 'startup' },
  { err: new UsageError('unknown command x'), code: 'ERR_USAGE', oci: 'startup' },
  // The admin door's own JSON errors (src/admin/app.ts answers them); never on a registry door.
  { err: new AdminRequestError(400, 'INVALID_REFERENCE', 'not a reference'), code: 'ERR_ADMIN_REQUEST', oci: 'startup' },
  // client-auth.ts turns it into AuthenticationRequiredError / TokenRequestError.
  { err: new InvalidTokenError('expired'), code: 'ERR_INVALID_TOKEN', oci: 'startup' },
  { err: new HtpasswdError('line 2'), code: 'ERR_HTPASSWD', oci: 'startup' },
  { err: new TokenSecretError('mode'), code: 'ERR_TOKEN_SECRET', oci: 'startup' },
  { err: new GlobSyntaxError('empty'), code: 'ERR_GLOB_SYNTAX', oci: 'startup' },
  // Raised inside a connection's lookup; registry-upstream turns it into UpstreamAddressRefusedError.
  { err: new AddressRefusedError('h', '127.0.0.1', 'public'), code: 'ERR_ADDRESS_REFUSED', oci: 'startup' },
];

/** Error subclasses outside the family, and why: transport-level, carrying a system error's code. */
const OUTSIDE = new Map([
  ['ObjectReadError', 'net/object-reader.ts: a socket failure with its system code (ECONNRESET…); callers wrap it'],
  ['S3ReadError', "storage/s3-blob-store.ts: private, shaped like the AWS SDK's errors for the same handling"],
]);

/** `class X extends Y` across src/, as [X, Y]. */
function classesInSource(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/\bclass\s+(\w+)\s+extends\s+(\w+)/g)) out.push([m[1]!, m[2]!]);
    }
  };
  walk(join(ROOT, 'src'));
  return out;
}

test('every error class in src/ descends from PullthroughError and has an entry here', () => {
  const parents = new Map(classesInSource());
  const isError = (c: string | undefined): boolean => c === 'Error' || (c !== undefined && isError(parents.get(c)));
  const errorClasses = [...parents.keys()].filter((c) => isError(c) && c !== 'PullthroughError');
  const listed = new Set(FAMILY.map((f) => f.err.constructor.name));
  for (const c of errorClasses) {
    if (OUTSIDE.has(c)) continue;
    const descends = (x: string | undefined): boolean => x === 'PullthroughError' || (x !== undefined && descends(parents.get(x)));
    assert.ok(descends(c), `${c} extends ${parents.get(c)}, not PullthroughError`);
    assert.ok(listed.has(c) || c === 'OciError', `${c} has no entry in FAMILY`);
  }
  assert.ok(errorClasses.length >= FAMILY.length, 'the source scan found the classes');
});

test('each class: its own stable ERR_ code, its name, instanceof Error and PullthroughError, cause kept', () => {
  const codes = new Set<string>();
  for (const { err, code } of FAMILY) {
    assert.equal(err.code, code, err.constructor.name);
    assert.match(code, /^ERR_[A-Z_]+$/);
    assert.ok(!codes.has(code), `${code} used twice`);
    codes.add(code);
    assert.equal(err.name, err.constructor.name);
    assert.ok(err instanceof Error && err instanceof PullthroughError);
    assert.ok(err.stack?.includes(err.constructor.name));
  }
  for (const { err } of FAMILY.filter((f) => f.err instanceof UpstreamUnavailableError || f.err instanceof StorageUnavailableError || f.err instanceof PkiError)) {
    assert.equal((err.cause as Error).message, 'low');
  }
});

test('OciError is one of the family, its code an OCI table code, never an ERR_ code', () => {
  const e = new OciError('BLOB_UNKNOWN');
  assert.ok(e instanceof PullthroughError);
  assert.equal(e.code, 'BLOB_UNKNOWN');
  assert.equal(e.name, 'OciError');
  assert.equal(e.status, 404);
  for (const code of Object.keys(OCI_ERROR_TABLE)) assert.ok(!code.startsWith('ERR_'));
});

test('error-mapping gives every class that can reach a request its own OCI answer; the rest fall to INTERNAL', () => {
  for (const { err, oci } of FAMILY) {
    const mapped = toOciError(err, 'blob');
    assert.equal(mapped.code, oci === 'startup' ? 'INTERNAL' : oci, err.constructor.name);
    if (oci !== 'startup') assert.ok(mapped.status < 500 || mapped.status === 502 || mapped.status === 503, `${err.constructor.name} → ${mapped.status}`);
  }
  const oci = new OciError('NAME_INVALID');
  assert.equal(toOciError(oci, 'blob'), oci);
});
