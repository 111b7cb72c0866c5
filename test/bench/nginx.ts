/**
 * nginx for the bench: an rpardini/docker-registry-proxy-style caching proxy (the same cache
 * settings, minus its CONNECT layer, its auth maps and the https upstream) and a plain static
 * server of the big blob's file, the limit of what this machine can send.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, startProcess, waitForPort, type Proc } from '../helpers/process.js';
import type { ServerCert } from './cert.js';
import { LOCAL_PATH } from './measure.js';

export interface NginxHandle {
  readonly proc: Proc;
  readonly httpPort: number;
  readonly tlsPort: number;
  stop(): Promise<void>;
}

/** Everything nginx would otherwise write under /var/lib/nginx or /var/log/nginx. */
function common(dir: string): string {
  // Workers must read the temp dirs (0700, root) and the bench cache: as root they run as root.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  return `
${user}
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
`;
}

function temps(dir: string): string {
  return `
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  access_log ${dir}/access.log;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000;
  ssl_certificate CERT;
  ssl_certificate_key KEY;
  ssl_protocols TLSv1.2 TLSv1.3;
`;
}

async function launch(dir: string, conf: string, httpPort: number, tlsPort: number): Promise<NginxHandle> {
  const file = join(dir, 'nginx.conf');
  await writeFile(file, conf);
  const proc = startProcess('nginx', ['-p', dir, '-c', file, '-e', join(dir, 'error.log'), '-g', 'daemon off;']);
  await waitForPort(httpPort, '127.0.0.1', 20_000, proc);
  await waitForPort(tlsPort, '127.0.0.1', 20_000, proc);
  return { proc, httpPort, tlsPort, stop: () => proc.stop() };
}

/**
 * The rpardini-style caching layer: blobs cached under their digest, manifests by digest under
 * their URI, everything else (tags, /v2/) proxied uncached; one upstream fetch per key thanks to
 * proxy_cache_lock (later clients wait for the first download to finish).
 */
export async function startNginxProxy(dir: string, upstream: string, cert: ServerCert): Promise<NginxHandle> {
  await mkdir(join(dir, 'cache'), { recursive: true });
  const httpPort = await freePort();
  const tlsPort = await freePort();
  const conf = `${common(dir)}
http {
${temps(dir).replace('CERT', cert.certFile).replace('KEY', cert.keyFile)}
  proxy_cache_path ${dir}/cache levels=1:2 max_size=32g inactive=60d keys_zone=cache:10m use_temp_path=off;
  server {
    listen 127.0.0.1:${httpPort};
    listen 127.0.0.1:${tlsPort} ssl;
    chunked_transfer_encoding on;
    proxy_read_timeout 900;
    proxy_cache_lock on;
    proxy_cache_lock_timeout 880s;
    proxy_cache_valid 200 206 60d;
    proxy_force_ranges on;
    proxy_ignore_client_abort on;
    proxy_cache_revalidate on;
    proxy_hide_header Set-Cookie;
    proxy_ignore_headers X-Accel-Expires Expires Cache-Control Set-Cookie;
    add_header X-Docker-Registry-Proxy-Cache-Upstream-Status "$upstream_cache_status";

    location ~ ^/v2/(.*)/blobs/sha256:(.*) {
      set $cache_key $2;
      proxy_pass ${upstream};
      proxy_cache cache;
      proxy_cache_key $cache_key;
      proxy_cache_use_stale error timeout http_500 http_502 http_504 http_429;
    }
    location ~ ^/v2/(.*)/manifests/sha256:(.*) {
      set $cache_key $uri;
      proxy_pass ${upstream};
      proxy_cache cache;
      proxy_cache_key $cache_key;
      proxy_cache_use_stale error timeout http_500 http_502 http_504 http_429;
    }
    # The handshake figure's request, answered here as pullthrough and distribution answer it.
    location = ${LOCAL_PATH} { return 404; }
    location / {
      proxy_pass ${upstream};
      proxy_cache off;
    }
  }
}
`;
  return launch(dir, conf, httpPort, tlsPort);
}

/** The big blob's file served as /big: sendfile over HTTP, OpenSSL over TLS. */
export async function startNginxStatic(dir: string, file: string, cert: ServerCert): Promise<NginxHandle> {
  await mkdir(dir, { recursive: true });
  const httpPort = await freePort();
  const tlsPort = await freePort();
  const conf = `${common(dir)}
http {
${temps(dir).replace('CERT', cert.certFile).replace('KEY', cert.keyFile)}
  server {
    listen 127.0.0.1:${httpPort};
    listen 127.0.0.1:${tlsPort} ssl;
    location = /big { alias ${file}; }
    location = ${LOCAL_PATH} { return 404; }
  }
}
`;
  return launch(dir, conf, httpPort, tlsPort);
}
