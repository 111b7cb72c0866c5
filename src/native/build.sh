#!/bin/sh
# Builds the native modules into dist/native, each with one cc call against Node's own headers
# (node_api.h: the ABI-stable API, so one build serves every Node version from 20 on):
# - dns-fast-path.node: the DNS door's UDP fast path (src/native/dns-fast-path.c);
# - tcp-options.node: TCP_NOTSENT_LOWAT for the doors' sockets (src/native/tcp-options.c);
# - send-file.node: warm blobs sent to plain-TCP clients with sendfile (src/native/send-file.c).
# Without a C compiler or the headers it says so and succeeds: the DNS door then answers through
# Node's dgram (dns.fastPath: auto), sockets keep the kernel's default, and warm blobs are streamed
# by Node instead of sent by sendfile: correct, only slower.
set -u
cd "$(dirname "$0")/../.." || exit 1
cc=${CC:-cc}
inc=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
[ -f "$inc/node_api.h" ] || inc=${npm_config_nodedir:-/usr}/include/node
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "pullthrough: no C compiler ($cc): the native modules are not built (DNS answers go through Node's dgram)" >&2
  exit 0
fi
if [ ! -f "$inc/node_api.h" ]; then
  echo "pullthrough: Node's headers (node_api.h) not found: the native modules are not built" >&2
  exit 0
fi
mkdir -p dist/native
for name in dns-fast-path tcp-options send-file; do
  out=dist/native/$name.node
  if ! "$cc" -O2 -Wall -Wextra -std=gnu11 -fPIC -shared -pthread -I"$inc" -o "$out.tmp" "src/native/$name.c"; then
    rm -f "$out.tmp"
    echo "pullthrough: building src/native/$name.c failed (above): pullthrough runs without it, only slower" >&2
    continue
  fi
  mv "$out.tmp" "$out"
done
