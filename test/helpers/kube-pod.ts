/**
 * Kubernetes objects as a container runtime would apply them, for running the repository's image
 * exactly as deploy/kubernetes says: render the kustomization with kubectl (no cluster needed),
 * then turn the Deployment's pod spec into `docker run` arguments (user, groups, capabilities,
 * no-new-privileges, read-only root, volumes, environment from values and Secrets, grace period).
 */
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { run } from './process.js';

// Rendered objects are plain YAML data of many shapes; checks read only what they need.
export type KubeObject = Record<string, any>;

/** `kubectl kustomize DIR`, parsed. Throws when kubectl fails or a document does not parse. */
export async function renderKustomization(dir: string): Promise<KubeObject[]> {
  const r = await run('kubectl', ['kustomize', dir], { timeoutMs: 60_000 });
  return parseYamlDocuments(r.stdout, `kubectl kustomize ${dir}`);
}

/** Every document of a YAML stream; throws naming `what` on a parse error. */
export function parseYamlDocuments(text: string, what: string): KubeObject[] {
  const docs = parseAllDocuments(text, { merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) if (d.errors.length) throw new Error(`${what}: ${d.errors.map((e) => e.message).join('; ')}`);
  return list.map((d) => d.toJS() as KubeObject).filter((o) => o !== null);
}

/** The object of `kind` named `name`; throws if there is none. */
export function findObject(objs: KubeObject[], kind: string, name: string): KubeObject {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`${kind}/${name} is not among the rendered objects`);
  return o;
}

/** A Secret's value: stringData wins over (base64) data, as the API server merges them. */
export function secretValue(secret: KubeObject, key: string): string | undefined {
  if (secret.stringData && key in secret.stringData) return String(secret.stringData[key]);
  if (secret.data && key in secret.data) return Buffer.from(String(secret.data[key]), 'base64').toString('utf8');
  return undefined;
}

/** The container's environment, Secret and ConfigMap references resolved; optional missing keys stay unset. */
export function containerEnv(container: KubeObject, objs: KubeObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of (container.env ?? []) as KubeObject[]) {
    if (e.value !== undefined) {
      env[e.name] = String(e.value);
      continue;
    }
    const sref = e.valueFrom?.secretKeyRef;
    const cref = e.valueFrom?.configMapKeyRef;
    const ref = sref ?? cref;
    if (!ref) throw new Error(`env ${e.name}: only value, secretKeyRef and configMapKeyRef are supported here`);
    const obj = findObject(objs, sref ? 'Secret' : 'ConfigMap', ref.name);
    const v = sref ? secretValue(obj, ref.key) : obj.data?.[ref.key];
    if (v === undefined) {
      if (ref.optional === true) continue;
      throw new Error(`env ${e.name}: ${ref.name} has no key ${ref.key} (the pod would not start)`);
    }
    env[e.name] = String(v);
  }
  return env;
}

/** What {@link podRunArgs} prepared. */
export interface PodRun {
  /** `docker run` arguments up to (not including) the image. */
  args: string[];
  /** Host directories standing in for each emptyDir volume, by mount path. */
  emptyDirs: Record<string, string>;
  /** The pod's terminationGracePeriodSeconds (Kubernetes' default: 30). */
  graceSeconds: number;
  /** container.args, given after the image (they replace its CMD). */
  containerArgs: string[];
}

/**
 * `docker run` arguments for the first container of `pod` (a pod spec), as the kubelet would set
 * it up: runAsUser/runAsGroup, fsGroup as a supplementary group owning every emptyDir (setgid,
 * group-writable, as the kubelet makes them), capabilities dropped and added, no-new-privileges
 * for allowPrivilegeEscalation: false, a read-only root, ConfigMap volumes as read-only files.
 * Host folders for the volumes are made under `work`. Throws on a field it does not know how to
 * apply (a privileged container, hostPath, hostNetwork…), so a change to the manifests cannot
 * pass unexamined.
 */
export async function podRunArgs(pod: KubeObject, objs: KubeObject[], work: string): Promise<PodRun> {
  const c = pod.containers[0] as KubeObject;
  const psc = (pod.securityContext ?? {}) as KubeObject;
  const sc = (c.securityContext ?? {}) as KubeObject;
  for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod[k]) throw new Error(`pod.${k} is not supported`);
  if (sc.privileged) throw new Error('privileged containers are not supported');
  const args: string[] = [];
  const uid = sc.runAsUser ?? psc.runAsUser;
  const gid = sc.runAsGroup ?? psc.runAsGroup ?? 0;
  if (uid !== undefined) args.push('--user', `${uid}:${gid}`);
  const fsGroup: number | undefined = psc.fsGroup;
  if (fsGroup !== undefined) args.push('--group-add', String(fsGroup));
  for (const cap of (sc.capabilities?.drop ?? []) as string[]) args.push('--cap-drop', cap);
  for (const cap of (sc.capabilities?.add ?? []) as string[]) args.push('--cap-add', cap);
  if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  if (sc.readOnlyRootFilesystem === true) args.push('--read-only');
  const seccomp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
  // Docker applies its default seccomp profile unless told otherwise: that is RuntimeDefault.
  if (seccomp !== undefined && seccomp !== 'RuntimeDefault') throw new Error(`seccompProfile ${seccomp} is not supported`);
  const emptyDirs: Record<string, string> = {};
  for (const m of (c.volumeMounts ?? []) as KubeObject[]) {
    const vol = ((pod.volumes ?? []) as KubeObject[]).find((v) => v.name === m.name);
    if (!vol) throw new Error(`volumeMount ${m.name} has no volume`);
    const host = join(work, `vol-${m.name}`);
    await mkdir(host, { recursive: true });
    if (vol.configMap) {
      const cm = findObject(objs, 'ConfigMap', vol.configMap.name);
      for (const [file, text] of Object.entries((cm.data ?? {}) as Record<string, string>)) {
        await writeFile(join(host, file), text, { mode: 0o644 });
      }
      await chmod(host, 0o755);
      args.push('--mount', `type=bind,source=${host},target=${m.mountPath},readonly`);
    } else if (vol.secret) {
      const s = findObject(objs, 'Secret', vol.secret.secretName);
      for (const key of Object.keys({ ...(s.data ?? {}), ...(s.stringData ?? {}) })) {
        await writeFile(join(host, key), secretValue(s, key)!, { mode: 0o644 });
      }
      await chmod(host, 0o755);
      args.push('--mount', `type=bind,source=${host},target=${m.mountPath},readonly`);
    } else if (vol.emptyDir) {
      // The kubelet's emptyDir: world-writable, and with fsGroup owned by it with setgid.
      if (fsGroup !== undefined) await chown(host, 0, fsGroup);
      await chmod(host, fsGroup !== undefined ? 0o2777 : 0o777);
      emptyDirs[m.mountPath] = host;
      args.push('--mount', `type=bind,source=${host},target=${m.mountPath}${m.readOnly ? ',readonly' : ''}`);
    } else {
      throw new Error(`volume ${m.name}: only configMap, secret and emptyDir are supported here`);
    }
  }
  if (c.command) throw new Error('container.command is not supported here (the image CMD is what runs)');
  if (c.workingDir) args.push('--workdir', c.workingDir);
  return { args, emptyDirs, graceSeconds: pod.terminationGracePeriodSeconds ?? 30, containerArgs: (c.args ?? []).map(String) };
}
