/**
 * The subcommands that steer a running instance through its admin API: images, usage, status,
 * purge, pin, unpin, prefetch, offline. Tables on a terminal, `--json` (and anything that is not
 * a terminal, for prefetch's progress) for scripts. Exit 0 done, 1 the operation failed or the
 * instance could not be reached or refused, 2 a usage error (the API's 400s included).
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/index.js';
import { parseDuration } from '../config/index.js';
import { CliError, UsageError, type Command, type Invocation, type OptionSpec } from './parse.js';
import { adminClient, type AdminClient } from './admin-client.js';
// The API's own answer type: the CLI ships with the server, so the compiler catches a drift.
import type { ImageSummary } from '../admin/catalog.js';

/** Options every admin subcommand takes. */
const ADMIN_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  admin: { type: 'string', value: 'URL', description: 'the admin API (default: $PULLTHROUGH_ADMIN_URL, else listen.admin of the config)' },
  json: { type: 'boolean', description: 'JSON for scripts instead of tables' },
};

const PLATFORM: OptionSpec = { type: 'string', multiple: true, value: 'OS/ARCH', description: 'only this platform of an index, e.g. linux/amd64' };

/** 1536 → "1.5 KiB". */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function ago(iso: string | null): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

const short = (digest: string): string => digest.replace(/^(sha256|sha512):/, '').slice(0, 12);
const out = (s: string): void => void process.stdout.write(s);
const json = (v: unknown): void => out(JSON.stringify(v, null, 2) + '\n');

/** The admin subcommands; `loadConfig` reads --config (for listen.admin and admin.token). */
export function adminCommands(loadConfig: (inv: Invocation) => Config): Command[] {
  const client = (inv: Invocation): AdminClient => adminClient(inv.values, inv.env, () => loadConfig(inv), `pullthrough ${inv.command}`);

  return [
    {
      name: 'images',
      summary: ['list cached images (REPO-GLOB: e.g. library/*, quay.io/org/**)'],
      args: [{ name: 'REPO-GLOB' }],
      options: ADMIN_OPTIONS,
      run: async (inv) => {
        const q = inv.args[0] ? `?repo=${encodeURIComponent(inv.args[0])}` : '';
        const r = await client(inv).call<{ images: ImageSummary[] }>('GET', `/api/v1/images${q}`);
        if (inv.values.json) return json(r);
        if (r.images.length === 0) return out(inv.args[0] ? `no cached images match ${inv.args[0]}\n` : 'no cached images\n');
        out(
          table(
            ['IMAGE', 'DIGEST', 'PLATFORMS', 'SIZE', 'BLOBS', 'LAST PULLED', 'PINNED'],
            r.images.map((i) => [`${i.registry}/${i.repo}:${i.tag}`, short(i.digest), i.platforms.join(',') || '-', humanBytes(i.size), `${i.blobs.present}/${i.blobs.total}`, ago(i.lastPulled), i.pinned ? 'yes' : '']),
          ),
        );
      },
    },
    {
      name: 'usage',
      summary: ['cache usage against cache.maxSize'],
      options: ADMIN_OPTIONS,
      run: async (inv) => {
        const u = await client(inv).call<{ usedBytes: number; maxSize: number | null; blobs: number; manifests: number; images: number; pins: number; pinnedBytes: number; downloads: number }>('GET', '/api/v1/usage');
        if (inv.values.json) return json(u);
        const of = u.maxSize ? ` of ${humanBytes(u.maxSize)} (${((100 * u.usedBytes) / u.maxSize).toFixed(1)}%)` : ' (no cache.maxSize)';
        out(`used       ${humanBytes(u.usedBytes)}${of}\ncontent    ${u.images} images, ${u.manifests} manifests, ${u.blobs} blobs\npinned     ${humanBytes(u.pinnedBytes)} (${u.pins} pins)\ndownloads  ${u.downloads} in progress\n`);
      },
    },
    {
      name: 'status',
      summary: ['one image: cached or not, its blobs, downloads in progress (asks no upstream)'],
      args: [{ name: 'REF', required: true }],
      options: ADMIN_OPTIONS,
      run: async (inv) => {
        type Blob = { digest: string; size: number; present: boolean; downloading: Array<{ bytesDone: number; bytesTotal: number | null }> };
        const s = await client(inv).call<{ ref: string; digest: string | null; cached: boolean; manifestCached: boolean; image: ImageSummary | null; missingManifests: string[]; blobs: Blob[] }>('GET', `/api/v1/status?ref=${encodeURIComponent(inv.args[0]!)}`);
        if (inv.values.json) return json(s);
        const present = s.blobs.filter((b) => b.present).length;
        const state = s.cached ? 'yes' : !s.manifestCached ? 'no' : `partly (${present} of ${s.blobs.length} blobs${s.missingManifests.length ? `, ${s.missingManifests.length} platform manifests missing` : ''})`;
        let text = `${s.ref}\n  cached     ${state}\n`;
        if (s.digest) text += `  digest     ${s.digest}\n`;
        if (s.image) text += `  platforms  ${s.image.platforms.join(', ') || '-'}\n  size       ${humanBytes(s.image.size)}\n  last pulled ${ago(s.image.lastPulled)}\n  pinned     ${s.image.pinned ? 'yes' : 'no'}\n`;
        out(text);
        if (s.blobs.length) {
          out(
            '\n' +
              table(
                ['BLOB', 'SIZE', 'STATE'],
                s.blobs.map((b) => {
                  const dl = b.downloading[0];
                  const st = b.present ? 'cached' : dl ? `downloading ${humanBytes(dl.bytesDone)}${dl.bytesTotal ? ` of ${humanBytes(dl.bytesTotal)}` : ''}` : 'missing';
                  return [short(b.digest), humanBytes(b.size), st];
                }),
              ),
          );
        }
      },
    },
    {
      name: 'purge',
      summary: ['remove from the cache: REF (tag or digest), --repo R, or --older-than DURATION'],
      args: [{ name: 'REF' }],
      options: {
        repo: { type: 'string', value: 'REPO', description: 'every tag of a repository (e.g. library/alpine, quay.io/org/app)' },
        'older-than': { type: 'string', value: 'DURATION', description: 'everything not pulled for this long (e.g. 30d, 12h)' },
        'dry-run': { type: 'boolean', description: 'say what would go, remove nothing' },
        ...ADMIN_OPTIONS,
      },
      run: async (inv) => {
        const given = [inv.args[0] !== undefined, inv.values.repo !== undefined, inv.values['older-than'] !== undefined].filter(Boolean).length;
        if (given !== 1) throw new UsageError('pullthrough purge: name exactly one of REF, --repo REPO, --older-than DURATION');
        const body: Record<string, unknown> = { dryRun: inv.values['dry-run'] === true };
        if (inv.args[0] !== undefined) body.ref = inv.args[0];
        if (inv.values.repo !== undefined) body.repo = inv.values.repo;
        if (inv.values['older-than'] !== undefined) {
          const d = String(inv.values['older-than']);
          const ms = parseDuration(d);
          if (ms === null || ms <= 0) throw new UsageError(`pullthrough purge: --older-than: not a duration (e.g. 12h, 30d, 2w): ${JSON.stringify(d)}`);
          body.olderThan = d;
        }
        const r = await client(inv).call<{ dryRun: boolean; tags: string[]; manifests: string[]; blobs: string[]; bytes: number; skippedPinned: string[] }>('POST', '/api/v1/purge', body, 10 * 60_000);
        if (inv.values.json) return json(r);
        out(`${r.dryRun ? 'would purge' : 'purged'} ${r.tags.length} tags, ${r.manifests.length} manifests, ${r.blobs.length} blobs (${humanBytes(r.bytes)})\n`);
        for (const t of r.tags) out(`  ${t}\n`);
        for (const p of r.skippedPinned) out(`  kept (pinned): ${p}\n`);
      },
    },
    {
      name: 'pin',
      summary: ['keep a cached image from eviction (all platforms, or --platform)'],
      args: [{ name: 'REF', required: true }],
      options: { platform: PLATFORM, ...ADMIN_OPTIONS },
      run: async (inv) => {
        const platforms = inv.values.platform as string[] | undefined;
        const r = await client(inv).call<{ ref: string; digests: string[]; blobs: number; bytes: number }>('POST', '/api/v1/pins', { ref: inv.args[0], platforms: platforms?.length ? platforms : undefined });
        if (inv.values.json) return json(r);
        out(`pinned ${r.ref} (${r.digests.map(short).join(', ')}: ${r.blobs} blobs, ${humanBytes(r.bytes)})\n`);
      },
    },
    {
      name: 'unpin',
      summary: ['let a pinned image be evicted again'],
      args: [{ name: 'REF', required: true }],
      options: ADMIN_OPTIONS,
      run: async (inv) => {
        const r = await client(inv).call<{ ref: string }>('DELETE', `/api/v1/pins?ref=${encodeURIComponent(inv.args[0]!)}`);
        if (inv.values.json) return json(r);
        out(`unpinned ${r.ref}\n`);
      },
    },
    {
      name: 'prefetch',
      summary: ['pull images into the cache (REF…, or one per line of -f FILE), with progress'],
      args: [{ name: 'REF', variadic: true }],
      options: {
        file: { type: 'string', short: 'f', value: 'FILE', description: 'references, one per line (# comments)' },
        platform: PLATFORM,
        pin: { type: 'boolean', description: 'pin each image once fetched' },
        ...ADMIN_OPTIONS,
      },
      run: (inv) => prefetch(inv, client(inv)),
    },
    {
      name: 'offline',
      summary: ['switch a registry to offline (cache only) or back online, on this instance'],
      args: [
        { name: 'REGISTRY', required: true },
        { name: 'MODE', required: true, choices: ['on', 'off'], noun: 'mode' },
      ],
      options: ADMIN_OPTIONS,
      run: async (inv) => {
        const r = await client(inv).call<{ registry: string; offline: boolean; changed: boolean }>('PUT', `/api/v1/registries/${encodeURIComponent(inv.args[0]!)}/offline`, { offline: inv.args[1] === 'on' });
        if (inv.values.json) return json(r);
        out(`${r.registry} is ${r.offline ? 'offline (served from the cache only)' : 'online'}${r.changed ? '' : ' (unchanged)'} on this instance\n`);
      },
    },
  ];
}

interface Progress {
  ref: string;
  state: string;
  bytesDone: number;
  bytesTotal: number;
  layersDone: number;
  layersTotal: number;
  error: string | null;
}

interface Job {
  id: string;
  state: string;
  images: Progress[];
  error: string | null;
  bytesDone: number;
}

function bar(p: Progress, width = 24): string {
  const f = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : p.state === 'done' ? 1 : 0;
  const n = Math.round(f * width);
  const tail = p.state === 'failed' ? `failed: ${p.error}` : `${humanBytes(p.bytesDone)}/${humanBytes(p.bytesTotal)}  layers ${p.layersDone}/${p.layersTotal}${p.state === 'done' ? '  done' : ''}`;
  return `${p.ref}  [${'#'.repeat(n)}${'.'.repeat(width - n)}] ${String(Math.round(f * 100)).padStart(3)}%  ${tail}`;
}

async function prefetch(inv: Invocation, api: AdminClient): Promise<void> {
  const refs = [...inv.args];
  if (typeof inv.values.file === 'string') {
    let text: string;
    try {
      text = await readFile(inv.values.file, 'utf8');
    } catch (err) {
      throw new CliError(`pullthrough prefetch: -f ${inv.values.file}: ${(err as Error).message}`, 2);
    }
    for (const line of text.split('\n')) {
      const r = line.replace(/#.*/, '').trim();
      if (r) refs.push(r);
    }
  }
  if (refs.length === 0) throw new UsageError('pullthrough prefetch: name at least one REF (or -f FILE)');
  const platforms = inv.values.platform as string[] | undefined;
  let job = await api.call<Job>('POST', '/api/v1/prefetch', { refs, platforms: platforms?.length ? platforms : undefined, pin: inv.values.pin === true });
  const tty = process.stdout.isTTY === true && !inv.values.json;
  let drawn = 0;
  const last = new Map<string, string>();
  const report = (): void => {
    if (tty) {
      if (drawn) out(`\x1b[${drawn}A`);
      for (const p of job.images) out(`\x1b[2K${bar(p)}\n`);
      drawn = job.images.length;
      return;
    }
    // JSON lines: one per image whose progress changed.
    for (const p of job.images) {
      const line = JSON.stringify({ job: job.id, ref: p.ref, state: p.state, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, layersDone: p.layersDone, layersTotal: p.layersTotal, error: p.error });
      if (last.get(p.ref) !== line) out(line + '\n');
      last.set(p.ref, line);
    }
  };
  report();
  while (job.state === 'queued' || job.state === 'running') {
    await new Promise((r) => setTimeout(r, 250));
    job = await api.call<Job>('GET', `/api/v1/jobs/${job.id}`);
    report();
  }
  if (job.state === 'failed') throw new CliError(`pullthrough prefetch: ${job.error ?? 'failed'}`, 1);
}
