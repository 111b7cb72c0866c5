/**
 * Ready-to-run shell scripts that point a machine's container clients at this pullthrough
 * instance (served at /setup/<client>, run as `curl -fsSL …/setup/containerd | sh`). Each script
 * trusts pullthrough's CA where its client looks for it, is idempotent, and honours
 * PULLTHROUGH_ROOT (write under a mounted host root, e.g. from a DaemonSet) and
 * PULLTHROUGH_NO_RESTART=1 (leave services alone).
 */
import { isIP } from 'node:net';
import type { Config } from '../config/index.js';
import { hijackedNames, servedNames, type NamesSettings } from '../config/served-names.js';
import { sq, writeFileCommand } from './shell.js';

export { corednsConfig } from './coredns.js';
export { SetupError } from './errors.js';
import { SetupError } from './errors.js';

export type SetupClient = 'docker' | 'containerd' | 'podman' | 'hosts' | 'systemd';
export const SETUP_CLIENTS: readonly SetupClient[] = ['docker', 'containerd', 'podman', 'hosts', 'systemd'];

/** What the setup scripts read: the doors' ports, `dns.answer` and the served names. */
export type SetupSettings = Pick<Config, 'listen' | 'dns'> & NamesSettings;

/** What a script is generated for. */
export interface SetupContext {
  config: SetupSettings;
  /** The CA certificate(s) to trust (CertificateAuthority#caPem). */
  caPem: string;
  /** The host name or IP clients reach this instance at (no scheme, no port). */
  publicHost: string;
}


/** Where clients reach this instance. */
interface Endpoints {
  /** Registry mirror base URL: publicUrl, else the TLS door, else the plain mirror port. */
  mirrorUrl: string;
  /** host[:port] of the mirror, as registries.conf and certs.d name it. */
  mirrorHost: string;
  mirrorHttps: boolean;
  proxyUrl: string | null;
}

function endpoints(config: SetupSettings, publicHost: string): Endpoints {
  const h = isIP(publicHost) === 6 ? `[${publicHost}]` : publicHost;
  let mirror: URL;
  if (config.publicUrl) mirror = new URL(config.publicUrl);
  else if (config.listen.tls) {
    // The TLS door holds certificates only for served names: clients would fail the handshake.
    if (!servedNames(config).has(publicHost)) throw new SetupError(`the TLS door has no certificate for ${publicHost}: add it to tls.extraNames, or set publicUrl`);
    mirror = new URL(`https://${h}:${config.listen.tls.port}`);
  } else mirror = new URL(`http://${h}:${config.listen.mirror?.port ?? 5000}`);
  return {
    mirrorUrl: mirror.origin,
    mirrorHost: mirror.host,
    mirrorHttps: mirror.protocol === 'https:',
    proxyUrl: config.listen.proxy ? `http://${h}:${config.listen.proxy.port}` : null,
  };
}

/** Every registry name and alias as clients write it (`host` or `host:port`), with its registry. */
function registryHosts(config: Pick<Config, 'registries'>): Array<{ host: string; registry: string; upstream: string }> {
  return Object.values(config.registries).flatMap((r) => [r.name, ...r.aliases].map((host) => ({ host, registry: r.name, upstream: r.upstream })));
}

const PREAMBLE = `set -eu
ROOT="\${PULLTHROUGH_ROOT:-}"
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then echo "pullthrough setup: run as root" >&2; exit 1; fi
# Restarts a service that is running, unless told not to or writing under another root.
restart_service() {
  if [ -n "$ROOT" ] || [ "\${PULLTHROUGH_NO_RESTART:-}" = 1 ]; then echo "pullthrough setup: restart $1 to apply"; return 0; fi
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$1"; then
    systemctl daemon-reload
    systemctl restart "$1"
    echo "pullthrough setup: restarted $1"
  fi
}
# Adds the CA to the system trust store (Debian/Ubuntu/Alpine, then Fedora/RHEL/SUSE).
trust_ca_system() {
  if [ -d "$ROOT/usr/local/share/ca-certificates" ] || command -v update-ca-certificates >/dev/null 2>&1; then
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp "$CA" "$ROOT/usr/local/share/ca-certificates/pullthrough-ca.crt"
    if [ -z "$ROOT" ]; then update-ca-certificates >/dev/null; else echo "pullthrough setup: run update-ca-certificates on the host"; fi
  elif [ -d "$ROOT/etc/pki/ca-trust/source/anchors" ]; then
    cp "$CA" "$ROOT/etc/pki/ca-trust/source/anchors/pullthrough-ca.crt"
    if [ -z "$ROOT" ]; then update-ca-trust extract; else echo "pullthrough setup: run update-ca-trust extract on the host"; fi
  else
    echo "pullthrough setup: unknown trust store; add $CA to it by hand" >&2
  fi
}
CA="$ROOT/etc/pullthrough/ca.crt"
`;

function header(client: SetupClient, what: string, e: Endpoints): string {
  return `#!/bin/sh
# pullthrough setup for ${client}: ${what}
# Mirror: ${e.mirrorUrl}${e.proxyUrl ? `  Proxy: ${e.proxyUrl}` : ''}
# Run as root. PULLTHROUGH_ROOT=/host writes under a mounted host root; PULLTHROUGH_NO_RESTART=1 restarts nothing.
`;
}

function docker(ctx: SetupContext, e: Endpoints): string {
  const hosts = registryHosts(ctx.config).map((r) => r.host);
  if (e.mirrorHttps) hosts.push(e.mirrorHost);
  return `${header('docker', 'Docker Hub through the registry mirror; the CA for every registry name', e)}${PREAMBLE}
${writeFileCommand('"$CA"', ctx.caPem)}
# Docker trusts a registry's CA from /etc/docker/certs.d/<host[:port]>/.
for h in ${hosts.map(sq).join(' ')}; do
  mkdir -p "$ROOT/etc/docker/certs.d/$h"
  cp "$CA" "$ROOT/etc/docker/certs.d/$h/ca.crt"
done

# registry-mirrors applies to Docker Hub only; other registries need the systemd (proxy) or hosts setup.
F="$ROOT/etc/docker/daemon.json"
MIRROR=${sq(e.mirrorUrl)}
INSECURE=${sq(e.mirrorHttps ? '' : e.mirrorHost)}
mkdir -p "$(dirname "$F")"
if command -v python3 >/dev/null 2>&1; then
  python3 - "$F" "$MIRROR" "$INSECURE" <<'PULLTHROUGH_PY'
import json, os, sys
path, mirror, insecure = sys.argv[1:4]
cfg = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        cfg = json.load(f)
cfg["registry-mirrors"] = [mirror] + [m for m in cfg.get("registry-mirrors", []) if m != mirror]
if insecure:
    cfg["insecure-registries"] = [insecure] + [m for m in cfg.get("insecure-registries", []) if m != insecure]
with open(path + ".pullthrough", "w") as f:
    f.write(json.dumps(cfg, indent=2) + "\\n")
os.replace(path + ".pullthrough", path)
PULLTHROUGH_PY
elif command -v jq >/dev/null 2>&1; then
  [ -s "$F" ] || echo '{}' > "$F"
  jq --arg m "$MIRROR" --arg i "$INSECURE" '.["registry-mirrors"] = ([$m] + ((.["registry-mirrors"] // []) - [$m]))
    | if $i != "" then .["insecure-registries"] = ([$i] + ((.["insecure-registries"] // []) - [$i])) else . end' "$F" > "$F.pullthrough"
  mv "$F.pullthrough" "$F"
elif [ ! -s "$F" ]; then
  if [ -n "$INSECURE" ]; then printf '{\\n  "registry-mirrors": ["%s"],\\n  "insecure-registries": ["%s"]\\n}\\n' "$MIRROR" "$INSECURE" > "$F"
  else printf '{\\n  "registry-mirrors": ["%s"]\\n}\\n' "$MIRROR" > "$F"; fi
else
  echo "pullthrough setup: add \\"registry-mirrors\\": [\\"$MIRROR\\"] to $F by hand (no python3 or jq to merge it)" >&2
  exit 1
fi
restart_service docker
echo "pullthrough setup: docker uses $MIRROR for Docker Hub"
`;
}

function containerd(ctx: SetupContext, e: Endpoints): string {
  const files = registryHosts(ctx.config)
    .map((r) => {
      // containerd asks the mirror with ?ns=<registry as written in the image name>.
      const toml = `# Written by pullthrough setup: pulls of ${r.host} go through pullthrough, then to the registry itself.
server = "${r.upstream}"

[host."${e.mirrorUrl}"]
  capabilities = ["pull", "resolve"]
${e.mirrorHttps ? '  ca = "/etc/pullthrough/ca.crt"\n' : ''}`;
      return writeFileCommand(`"$ROOT/etc/containerd/certs.d/"${sq(r.host)}"/hosts.toml"`, toml);
    })
    .join('\n');
  return `${header('containerd', 'hosts.toml per registry (CRI, nerdctl, k3s/kind with config_path)', e)}${PREAMBLE}
${writeFileCommand('"$CA"', ctx.caPem)}
${files}
# hosts.toml is read on every pull; containerd only needs config_path pointing at certs.d.
CFG="$ROOT/etc/containerd/config.toml"
if [ -f "$CFG" ] && ! grep -q 'config_path' "$CFG"; then
  echo "pullthrough setup: $CFG has no registry config_path; add under [plugins.\\"io.containerd.grpc.v1.cri\\".registry]:" >&2
  echo '  config_path = "/etc/containerd/certs.d"' >&2
  echo "and restart containerd" >&2
fi
echo "pullthrough setup: containerd pulls through ${e.mirrorUrl}"
`;
}

function podman(ctx: SetupContext, e: Endpoints): string {
  // The mirror location carries the registry as its first path segment: /v2/<registry>/<repository>/…
  const entries = registryHosts(ctx.config)
    .map((r) => `[[registry]]\nprefix = "${r.host}"\nlocation = "${r.host}"\n\n[[registry.mirror]]\nlocation = "${e.mirrorHost}/${r.registry}"\ninsecure = ${!e.mirrorHttps}\n`)
    .join('\n');
  return `${header('podman', 'registries.conf mirrors (podman, buildah, skopeo, CRI-O)', e)}${PREAMBLE}
${writeFileCommand('"$CA"', ctx.caPem)}
${e.mirrorHttps ? `mkdir -p "$ROOT/etc/containers/certs.d/"${sq(e.mirrorHost)}\ncp "$CA" "$ROOT/etc/containers/certs.d/"${sq(e.mirrorHost)}"/ca.crt"\n` : ''}
${writeFileCommand('"$ROOT/etc/containers/registries.conf.d/50-pullthrough.conf"', `# Written by pullthrough setup.\n${entries}`)}
restart_service crio
echo "pullthrough setup: podman pulls through ${e.mirrorHost}"
`;
}

function hosts(ctx: SetupContext, e: Endpoints): string {
  const c = ctx.config;
  if (c.listen.tls?.port !== 443) throw new SetupError('the hosts setup needs the TLS door on port 443 (listen.tls), where clients dial the registry names');
  const ips = c.dns.answer.length ? c.dns.answer : isIP(ctx.publicHost) ? [ctx.publicHost] : [];
  if (ips.length === 0) throw new SetupError('the hosts setup needs an address: set dns.answer, or reach pullthrough by IP');
  const block = ['# BEGIN pullthrough', ...ips.map((ip) => `${ip} ${hijackedNames(c).join(' ')}`), '# END pullthrough'].join('\n');
  return `${header('hosts', '/etc/hosts sends the registry names to pullthrough; the CA in the system trust store', e)}${PREAMBLE}
${writeFileCommand('"$CA"', ctx.caPem)}
trust_ca_system
H="$ROOT/etc/hosts"
touch "$H"
# Replace an earlier block, keep everything else.
awk '/^# BEGIN pullthrough$/{skip=1} !skip{print} /^# END pullthrough$/{skip=0}' "$H" > "$H.pullthrough"
cat >> "$H.pullthrough" <<'PULLTHROUGH_EOF'
${block}
PULLTHROUGH_EOF
cat "$H.pullthrough" > "$H"
rm -f "$H.pullthrough"
# Go programs read the system CAs once, at start.
restart_service containerd
restart_service docker
echo "pullthrough setup: registry names now resolve to ${ips.join(', ')}"
`;
}

function systemd(ctx: SetupContext, e: Endpoints): string {
  if (!e.proxyUrl) throw new SetupError('the systemd setup needs the CONNECT door (listen.proxy)');
  const noProxy = ['localhost', '127.0.0.1', '::1', ctx.publicHost].join(',');
  // HTTPS only: plain-HTTP requests to other hosts would be refused by the door (it is no open proxy).
  const dropIn = `# Written by pullthrough setup.\n[Service]\nEnvironment="HTTPS_PROXY=${e.proxyUrl}"\nEnvironment="NO_PROXY=${noProxy}"\n`;
  return `${header('systemd', 'HTTPS_PROXY for docker and containerd (as with docker-registry-proxy); the CA in the system trust store', e)}${PREAMBLE}
${writeFileCommand('"$CA"', ctx.caPem)}
trust_ca_system
for svc in docker containerd; do
${writeFileCommand('"$ROOT/etc/systemd/system/$svc.service.d/pullthrough-proxy.conf"', dropIn)}done
restart_service containerd
restart_service docker
echo "pullthrough setup: docker and containerd use ${e.proxyUrl}"
`;
}

const GENERATORS: Record<SetupClient, (ctx: SetupContext, e: Endpoints) => string> = { docker, containerd, podman, hosts, systemd };

/**
 * A POSIX shell script that sets up `client` on a machine to pull through this instance.
 * @throws TypeError for an unknown client, a publicHost that is neither a host name nor an IP (it
 *   may come from a request), or a caPem that is not PEM certificates.
 * @throws SetupError when this instance lacks what the client needs (no CONNECT door for
 *   systemd; no TLS door on 443 or no address for hosts; no certificate for publicHost when the
 *   mirror is the TLS door).
 */
export function setupScript(client: SetupClient, ctx: SetupContext): string {
  const generate = GENERATORS[client];
  if (!Object.hasOwn(GENERATORS, client) || !generate) throw new TypeError(`unknown client ${JSON.stringify(client)}; one of ${SETUP_CLIENTS.join(', ')}`);
  const publicHost = ctx.publicHost.toLowerCase();
  if (!isIP(publicHost) && !/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(publicHost)) throw new TypeError('publicHost must be a host name or an IP address');
  if (!/^(-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*)+$/.test(ctx.caPem)) throw new TypeError('caPem must be PEM certificates');
  return generate({ ...ctx, publicHost }, endpoints(ctx.config, publicHost));
}
