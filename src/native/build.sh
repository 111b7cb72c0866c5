#!/bin/sh
# Builds the DNS door's UDP fast path (src/native/dns-fast-path.c) into dist/native, with one cc
# call against Node's own headers (node_api.h: the ABI-stable API, so one build serves every Node
# version from 20 on). Without a C compiler or the headers it says so and succeeds: the DNS door
# then answers through Node's dgram (dns.fastPath: auto), only slower.
set -u
cd "$(dirname "$0")/../.." || exit 1
out=dist/native/dns-fast-path.node
cc=${CC:-cc}
inc=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
[ -f "$inc/node_api.h" ] || inc=${npm_config_nodedir:-/usr}/include/node
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "pullthrough: no C compiler ($cc): the DNS door's fast path is not built (DNS answers go through Node's dgram)" >&2
  exit 0
fi
if [ ! -f "$inc/node_api.h" ]; then
  echo "pullthrough: Node's headers (node_api.h) not found: the DNS door's fast path is not built" >&2
  exit 0
fi
mkdir -p dist/native
if ! "$cc" -O2 -Wall -Wextra -std=gnu11 -fPIC -shared -pthread -I"$inc" -o "$out.tmp" src/native/dns-fast-path.c; then
  rm -f "$out.tmp"
  echo "pullthrough: building the DNS door's fast path failed (above): DNS answers go through Node's dgram" >&2
  exit 0
fi
mv "$out.tmp" "$out"
