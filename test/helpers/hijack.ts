/**
 * A hermetic DNS hijack for real clients: wrapper scripts that run skopeo, podman, ctr and dockerd
 * each in a private mount namespace (`unshare -m`) where /etc/hosts maps registry names to
 * pullthrough and the system CA bundle includes pullthrough's CA. The machine's own files never
 * change. Pass `env` to the client helpers: its PATH puts the wrappers first.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir, run } from './process.js';

const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const WRAPPED = ['skopeo', 'podman', 'ctr', 'dockerd'];

export interface Hijack {
  /** Environment for the client helpers (PATH with the wrappers first). */
  readonly env: Record<string, string>;
  readonly hostsFile: string;
  readonly bundleFile: string;
  cleanup(): Promise<void>;
}

/**
 * @param names host name → IP address, as /etc/hosts lines
 * @param trustedPems extra CA certificates to add to the system bundle (empty: the CA is not trusted)
 */
export async function hijack(names: Record<string, string>, trustedPems: string[]): Promise<Hijack> {
  const dir = await tempDir('pullthrough-hijack-');
  const bin = join(dir.path, 'bin');
  await mkdir(bin);
  const hostsFile = join(dir.path, 'hosts');
  await writeFile(hostsFile, ['127.0.0.1 localhost', '::1 localhost', ...Object.entries(names).map(([n, ip]) => `${ip} ${n}`)].join('\n') + '\n');
  const bundleFile = join(dir.path, 'ca-certificates.crt');
  await writeFile(bundleFile, [await readFile(SYSTEM_BUNDLE, 'utf8'), ...trustedPems].join('\n'));
  for (const tool of WRAPPED) {
    const real = (await run('sh', ['-c', `command -v ${tool}`])).stdout.trim();
    // exec all the way down: the PID a helper stops is the client's own.
    await writeFile(
      join(bin, tool),
      `#!/bin/sh\nexec unshare -m /bin/sh -c 'mount --bind "$0" /etc/hosts && mount --bind "$1" ${SYSTEM_BUNDLE} && shift && exec "$@"' ${hostsFile} ${bundleFile} ${real} "$@"\n`,
    );
    await chmod(join(bin, tool), 0o755);
  }
  return {
    env: { PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` },
    hostsFile,
    bundleFile,
    cleanup: () => dir.cleanup(),
  };
}

/** A random address in 127.0.0.0/8 (all of it is loopback on Linux), so a door can own port 443 there. */
export function randomLoopback(): string {
  const b = (): number => 2 + Math.floor(Math.random() * 250);
  return `127.${b()}.${b()}.${b()}`;
}
