/**
 * The client setup scripts, run for real with sh under a temp root (PULLTHROUGH_ROOT) and
 * PULLTHROUGH_NO_RESTART=1, and the CoreDNS block, checked against the committed example.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CertificateAuthority } from '../../src/pki/index.js';
import { setupScript, corednsConfig, SetupError, type SetupClient, type SetupContext } from '../../src/setup/scripts.js';
import { run, tempDir } from '../helpers/process.js';
import { testConfig } from '../helpers/config.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let ctx: SetupContext;
let n = 0;

before(async () => {
  tmp = await tempDir();
  const config = testConfig(tmp.path, {
    listen: { tls: '0.0.0.0:443', proxy: '0.0.0.0:3128' },
    dns: { answer: ['10.0.0.5', 'fd00::5'] },
    tls: { extraNames: ['pullthrough.internal'] },
    registries: { 'registry.local:5000': { upstream: 'http://registry.local:5000' } },
  });
  const ca = await CertificateAuthority.load(config);
  ctx = { config, caPem: ca.caPem(), publicHost: 'pullthrough.internal' };
});

after(async () => tmp?.cleanup());

/** Writes the script, checks it (sh -n, shellcheck), runs it under a fresh root; returns the root and output. */
async function runScript(client: SetupClient, opts: { root?: string; path?: string; context?: SetupContext } = {}): Promise<{ root: string; stdout: string; stderr: string }> {
  const script = setupScript(client, opts.context ?? ctx);
  const file = join(tmp.path, `setup-${client}-${n++}.sh`);
  writeFileSync(file, script);
  await run('sh', ['-n', file]);
  await run('shellcheck', ['-s', 'sh', file]);
  const root = opts.root ?? join(tmp.path, `root-${n++}`);
  mkdirSync(root, { recursive: true });
  const r = await run('sh', [file], { env: { PATH: opts.path ?? process.env.PATH ?? '/usr/bin:/bin', PULLTHROUGH_ROOT: root, PULLTHROUGH_NO_RESTART: '1' } });
  return { root, stdout: r.stdout, stderr: r.stderr };
}

test('docker: CA in certs.d for every registry name and the mirror; registry-mirrors merged into daemon.json, idempotently', async () => {
  const root = join(tmp.path, 'docker-root');
  mkdirSync(join(root, 'etc/docker'), { recursive: true });
  writeFileSync(join(root, 'etc/docker/daemon.json'), JSON.stringify({ 'log-driver': 'json-file', 'registry-mirrors': ['https://old.example'] }));
  await runScript('docker', { root });
  await runScript('docker', { root });
  const daemon = JSON.parse(readFileSync(join(root, 'etc/docker/daemon.json'), 'utf8'));
  assert.deepEqual(daemon, { 'log-driver': 'json-file', 'registry-mirrors': ['https://pullthrough.internal', 'https://old.example'] });
  for (const h of ['docker.io', 'registry-1.docker.io', 'quay.io', 'registry.local:5000', 'pullthrough.internal']) {
    assert.equal(readFileSync(join(root, 'etc/docker/certs.d', h, 'ca.crt'), 'utf8'), ctx.caPem, h);
  }
  // Without python3 or jq, a fresh daemon.json is still written.
  const bin = join(tmp.path, 'bin');
  mkdirSync(bin);
  for (const tool of ['sh', 'mkdir', 'cat', 'chmod', 'cp', 'dirname', 'id', 'printf', 'echo']) {
    const found = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((p) => existsSync(p));
    if (found) symlinkSync(found, join(bin, tool));
  }
  const bare = await runScript('docker', { path: bin });
  assert.deepEqual(JSON.parse(readFileSync(join(bare.root, 'etc/docker/daemon.json'), 'utf8')), { 'registry-mirrors': ['https://pullthrough.internal'] });
});

test('containerd: one hosts.toml per registry name and alias, with the registry as server and pullthrough as the pull host', async () => {
  const root = join(tmp.path, 'containerd-root');
  mkdirSync(join(root, 'etc/containerd'), { recursive: true });
  writeFileSync(join(root, 'etc/containerd/config.toml'), 'version = 2\n');
  const { stderr } = await runScript('containerd', { root });
  const toml = readFileSync(join(root, 'etc/containerd/certs.d/docker.io/hosts.toml'), 'utf8');
  assert.match(toml, /^server = "https:\/\/registry-1\.docker\.io"$/m);
  assert.match(toml, /^\[host\."https:\/\/pullthrough\.internal"\]$/m);
  assert.match(toml, /capabilities = \["pull", "resolve"\]/);
  assert.match(toml, /ca = "\/etc\/pullthrough\/ca\.crt"/);
  assert.ok(existsSync(join(root, 'etc/containerd/certs.d/registry.local:5000/hosts.toml')));
  assert.ok(existsSync(join(root, 'etc/containerd/certs.d/index.docker.io/hosts.toml')));
  assert.equal(readFileSync(join(root, 'etc/pullthrough/ca.crt'), 'utf8'), ctx.caPem);
  assert.match(stderr, /config_path/, 'a config.toml without config_path is pointed out');
});

test('podman: registries.conf mirrors that podman itself accepts', async () => {
  const { root } = await runScript('podman');
  const conf = join(root, 'etc/containers/registries.conf.d/50-pullthrough.conf');
  const r = await run('podman', ['--log-level=error', 'info', '--format', '{{json .Registries}}'], { env: { ...process.env, CONTAINERS_REGISTRIES_CONF: conf }, timeoutMs: 60_000 });
  const registries = JSON.parse(r.stdout);
  assert.deepEqual(registries['quay.io'].Mirrors.map((m: { Location: string }) => m.Location), ['pullthrough.internal/quay.io']);
  assert.deepEqual(registries['registry-1.docker.io'].Mirrors.map((m: { Location: string }) => m.Location), ['pullthrough.internal/docker.io']);
  assert.equal(readFileSync(join(root, 'etc/containers/certs.d/pullthrough.internal/ca.crt'), 'utf8'), ctx.caPem);
});

test('hosts: one block of registry names per address, replaced on a rerun; the CA goes to the trust store', async () => {
  const root = join(tmp.path, 'hosts-root');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/hosts'), '127.0.0.1 localhost\n');
  await runScript('hosts', { root });
  await runScript('hosts', { root });
  const hosts = readFileSync(join(root, 'etc/hosts'), 'utf8');
  assert.equal(hosts.match(/# BEGIN pullthrough/g)?.length, 1);
  assert.ok(hosts.startsWith('127.0.0.1 localhost\n'));
  const line = hosts.split('\n').find((l) => l.startsWith('10.0.0.5 '))!;
  const names = line.split(' ').slice(1);
  for (const name of ['docker.io', 'registry-1.docker.io', 'index.docker.io', 'quay.io', 'pullthrough.internal']) assert.ok(names.includes(name), name);
  assert.ok(!names.some((x) => x.startsWith('registry.local')), 'a host:port registry is not hijacked');
  assert.ok(hosts.includes('\nfd00::5 '));
  const trusted = ['usr/local/share/ca-certificates/pullthrough-ca.crt', 'etc/pki/ca-trust/source/anchors/pullthrough-ca.crt'].some((p) => existsSync(join(root, p)));
  assert.ok(trusted);
});

test('systemd: HTTPS_PROXY drop-ins for docker and containerd', async () => {
  const { root } = await runScript('systemd');
  for (const svc of ['docker', 'containerd']) {
    const unit = readFileSync(join(root, `etc/systemd/system/${svc}.service.d/pullthrough-proxy.conf`), 'utf8');
    assert.match(unit, /^Environment="HTTPS_PROXY=http:\/\/pullthrough\.internal:3128"$/m);
    assert.doesNotMatch(unit, /HTTP_PROXY=/);
  }
});

test('setupScript refuses what would break or inject', () => {
  assert.throws(() => setupScript('docker', { ...ctx, publicHost: 'x.io; rm -rf /' }), TypeError);
  assert.throws(() => setupScript('docker', { ...ctx, publicHost: 'unknown.example' }), SetupError, 'no certificate for it');
  assert.throws(() => setupScript('nope' as SetupClient, ctx), TypeError);
  assert.throws(() => setupScript('docker', { ...ctx, caPem: "x'\nrm -rf /\n" }), TypeError);
  const noDoors = testConfig(tmp.path, { dns: { answer: ['10.0.0.5'] } }, 'nodoors.yaml');
  assert.throws(() => setupScript('systemd', { ...ctx, config: noDoors }), SetupError);
  assert.throws(() => setupScript('hosts', { ...ctx, config: noDoors }), SetupError);
  // Without the TLS door the mirror is the plain port, marked insecure for docker.
  const plain = setupScript('docker', { ...ctx, config: noDoors, publicHost: '10.0.0.5' });
  assert.match(plain, /MIRROR='http:\/\/10\.0\.0\.5:5000'/);
  assert.match(plain, /INSECURE='10\.0\.0\.5:5000'/);
});

test('the CoreDNS hosts block covers the hijacked names, and the committed example is current', () => {
  const block = corednsConfig(ctx.config);
  assert.match(block, /^hosts \{\n {4}10\.0\.0\.5 .*\bquay\.io\b/);
  assert.match(block, /\n {4}fd00::5 /);
  assert.match(block, /\n {4}ttl 60\n {4}no_reverse\n {4}fallthrough\n\}\n$/);
  assert.throws(() => corednsConfig(testConfig(tmp.path, {}, 'noanswer.yaml')), SetupError);

  const repo = fileURLToPath(new URL('../../../', import.meta.url));
  const example = corednsConfig(testConfig(tmp.path, { dns: { answer: ['10.96.0.53'] } }, 'example.yaml'));
  const corefile = readFileSync(join(repo, 'coredns/Corefile'), 'utf8');
  const indented = example.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
  assert.ok(corefile.includes(indented), 'coredns/Corefile holds corednsConfig() for the built-in registries and dns.answer 10.96.0.53');
});
