/**
 * The documentation a newcomer reads: every relative link in README.md and docs/ leads to a file
 * and heading that exist, the README stays a short page with a table of contents, and it names
 * every setup client the CLI offers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETUP_CLIENTS } from '../src/setup/scripts.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
/** Pages other work streams add; a link to one is checked once the file exists. */
const PENDING = new Set(['docs/container-image.md', 'docs/upstream-policy.md', 'docs/spec-conformance.md']);

const withoutCode = (md: string): string => md.replace(/```[\s\S]*?```/g, '');

/** GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces to -, repeats numbered. */
function anchors(file: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  for (const m of withoutCode(readFileSync(file, 'utf8')).matchAll(/^#{1,6}\s+(.*)$/gm)) {
    const text = m[1]!.trim().replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text.toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

const pages = ['README.md', ...readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`), 'coredns/README.md'];

test('every relative link in README.md and docs/ resolves to a file, and its #anchor to a heading there', () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    for (const m of withoutCode(readFileSync(join(repo, page), 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1]!;
      if (/^[a-z]+:/.test(link)) continue;
      checked++;
      const [path, anchor] = link.split('#', 2) as [string, string | undefined];
      const target = path ? normalize(join(dirname(page), path)) : page;
      if (PENDING.has(target) && !existsSync(join(repo, target))) continue;
      const abs = join(repo, target);
      if (!existsSync(abs) || relative(repo, abs).startsWith('..')) broken.push(`${page}: ${link}: no such file`);
      else if (anchor && (statSync(abs).isDirectory() || !anchors(abs).has(anchor))) broken.push(`${page}: ${link}: no heading #${anchor} in ${target}`);
    }
  }
  assert.ok(checked > 50, `found the links (${checked})`);
  assert.deepEqual(broken, []);
});

test('README.md is a short page with a table of contents linking each of its sections', () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  assert.ok(readme.split('\n').length <= 420, `README.md has ${readme.split('\n').length} lines`);
  const own = anchors(join(repo, 'README.md'));
  const sections = [...withoutCode(readme).matchAll(/^## (.*)$/gm)].map((m) => m[1]!);
  const toc = readme.slice(0, readme.indexOf('\n## '));
  for (const s of sections) {
    const slug = s.toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-');
    assert.ok(own.has(slug) && toc.includes(`](#${slug})`), `the table of contents links "## ${s}"`);
  }
  for (const client of [...SETUP_CLIENTS, 'coredns']) assert.match(readme, new RegExp(`\\| \`${client}\` \\|`), `the setup table lists ${client}`);
  assert.match(readme, /Node\.js 24 LTS/);
  assert.doesNotMatch(readme, /Node(\.js)? ?(≥ ?)?20/, 'no stale Node 20 requirement');
});
