/**
 * The peers' certificate. pullthrough's TLS door issues EC P-256 leaves; nginx and distribution get
 * one of the same kind (forge, which the test helpers use, makes only RSA keys), so the handshake
 * figures compare servers, not key types: an RSA-2048 signature costs the server ~20 times an
 * ECDSA P-256 one.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../helpers/process.js';
import type { TestCA } from '../helpers/pki.js';

/** A certificate and key as PEM files, what nginx and distribution are configured with. */
export interface ServerCert {
  readonly certFile: string;
  readonly keyFile: string;
}

export async function issueEcServerCert(ca: TestCA, dnsNames: string[], ips: string[], stem = 'bench-ec'): Promise<ServerCert> {
  const keyFile = join(ca.dir, `${stem}-key.pem`);
  const csr = join(ca.dir, `${stem}.csr`);
  const certFile = join(ca.dir, `${stem}.pem`);
  const ext = join(ca.dir, `${stem}.ext`);
  const san = [...dnsNames.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(',');
  await writeFile(ext, `subjectAltName=${san}\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-subj', `/CN=${dnsNames[0] ?? 'bench'}`, '-out', csr]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-days', '30', '-sha256', '-extfile', ext, '-out', certFile]);
  return { certFile, keyFile };
}
