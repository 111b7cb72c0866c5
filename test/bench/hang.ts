/**
 * Figure "cached tag while the upstream hangs": each system pulls a tag once through its own relay
 * in front of the bench upstream (test/helpers/socket-relay.ts), then the relay hangs (accepts
 * connections, forwards nothing, answers nothing) and one manifest GET by that tag is timed, capped
 * at HANG_CAP_S. A system that answers shows the time and whether the digest is the cached one; one
 * that does not shows "> cap" or its error.
 *
 * Every system revalidates the tag on this GET: pullthrough revalidates tags on every request by
 * default (no `revalidate` rule), nginx (rpardini-style) never caches tags, and distribution's proxy
 * asks the remote for a tag before its local copy.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, run } from '../helpers/process.js';
import { relay, type Relay } from '../helpers/socket-relay.js';
import type { BenchUpstream } from './upstream.js';
import type { System } from './systems.js';

/** Longest the timed GET may take (curl --max-time), seconds. */
export const HANG_CAP_S = 60;

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** One system's result: the table cell and a line for the log. */
export interface HangResult {
  readonly cell: string;
  readonly detail: string;
}

/** A relay on a free loopback port in front of `up`, for one system. */
export async function hangRelay(up: BenchUpstream): Promise<{ relay: Relay; url: string }> {
  const port = await freePort();
  const r = await relay(`tcp:127.0.0.1:${port}=tcp:127.0.0.1:${up.port}`);
  return { relay: r, url: `http://127.0.0.1:${port}` };
}

/**
 * Starts `sys` (built on `relayUrl`, the relay's address), pulls the warm-up image through it with
 * `pull`, hangs the relay and times a manifest GET of the same tag. Stops the system afterwards
 * (the relay is closed first, so nothing waits on the hung connections).
 */
export async function hangFigure(
  sys: System,
  r: Relay,
  up: BenchUpstream,
  pull: (ref: string) => Promise<number>,
): Promise<HangResult> {
  const { repo, tag } = up.content.warmup;
  const run_ = await sys.startCold();
  try {
    await pull(`${run_.host}/${repo}:${tag}`);
    const expected = (await manifestGet(`http://${run_.host}/v2/${repo}/manifests/${tag}`, HANG_CAP_S)).digest;
    r.hang(true);
    const got = await manifestGet(`http://${run_.host}/v2/${repo}/manifests/${tag}`, HANG_CAP_S);
    if (got.timedOut) return { cell: `> ${HANG_CAP_S} s`, detail: `no answer within ${HANG_CAP_S} s` };
    if (got.status !== 200) return { cell: `${got.seconds.toFixed(2)} s: ${got.status || got.error}`, detail: `status ${got.status}, ${got.error}` };
    const same = got.digest === expected;
    const warning = got.warning ? `, Warning: ${got.warning}` : '';
    return {
      cell: `${got.seconds.toFixed(2)}${same ? '' : ' (other digest!)'}`,
      detail: `200 after ${got.seconds.toFixed(3)} s, ${same ? 'the cached digest' : `${got.digest} instead of ${expected}`}${warning}`,
    };
  } finally {
    await r.close();
    await run_.stop();
  }
}

interface Got {
  readonly status: number;
  readonly seconds: number;
  readonly digest: string;
  readonly warning: string;
  readonly timedOut: boolean;
  readonly error: string;
}

/** One GET with curl (its own process, so the time is not this process's event loop's). */
async function manifestGet(url: string, capS: number): Promise<Got> {
  const dir = await mkdtemp(join(tmpdir(), 'pullthrough-bench-hang-'));
  try {
    const body = join(dir, 'body');
    const headers = join(dir, 'headers');
    const r = await run(
      'curl',
      ['-sS', '--http1.1', '--max-time', String(capS), '-H', `Accept: ${ACCEPT}`, '-D', headers, '-o', body, '-w', '%{http_code} %{time_total} %{exitcode}', url],
      { allowFail: true, timeoutMs: (capS + 30) * 1000 },
    );
    const m = /^(\d+) ([\d.]+) (\d+)/.exec(r.stdout.trim());
    const exit = m ? Number(m[3]) : -1;
    const head = await readFile(headers, 'utf8').catch(() => '');
    const warning = /^warning:\s*(.*?)\r?$/im.exec(head)?.[1] ?? '';
    const bytes = await readFile(body).catch(() => undefined);
    return {
      status: m ? Number(m[1]) : 0,
      seconds: m ? Number(m[2]) : NaN,
      digest: bytes ? `sha256:${createHash('sha256').update(bytes).digest('hex')}` : '',
      warning,
      timedOut: exit === 28,
      error: exit !== 0 ? `curl exit ${exit}: ${r.stderr.trim().split('\n').at(-1) ?? ''}` : '',
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
