#!/usr/bin/env bash
# Makes the two base images the Dockerfile builds on (NODE_IMAGE, BUILD_IMAGE) offline, without
# Docker Hub: a Debian bookworm minbase root filesystem from Debian's mirror (mmdebstrap), Node.js
# (the version in .node-version, from the npm registry's node-linux-* package) in /usr/local, npm,
# a `node` user with uid 1000, and the host's npm registry settings and CA bundle, so that `npm ci`
# inside the build reaches the registry the way this machine does. The build image adds gcc, g++,
# make, libc6-dev and python3.
#
# Usage: base-images.sh   prints the cache directory holding runtime.tar and build.tar (root
# filesystem tarballs for `docker import`). Cached under $PULLTHROUGH_IMAGE_CACHE
# (/var/cache/pullthrough-test) keyed by everything that goes in, so a second run is instant.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${PULLTHROUGH_IMAGE_CACHE:-/var/cache/pullthrough-test}
node_version=$(tr -d ' \n' < "$repo/.node-version")
node_bin=$(bash "$repo/scripts/node24.sh")
npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
npm_version=$(node -p "require('$npm_dir/package.json').version")
bundle=/etc/ssl/certs/ca-certificates.crt

# The host's npm settings, minus anything secret and anything about host paths.
npmrc=$(
  { cat /etc/npmrc "$HOME/.npmrc" 2>/dev/null || true; } \
    | grep -v -i -E '^\s*(;|#)|_auth|token|password|username|nodedir|^\s*cafile|^\s*prefix|^\s*cache' || true
  echo "registry=$(npm config get registry)"
  echo "cafile=$bundle"
)
key=$( { cat "$0"; echo "$node_version $npm_version"; echo "$npmrc"; cat "$bundle"; } | sha256sum | cut -c1-16)
out="$cache/base-$key"
if [ -f "$out/runtime.tar" ] && [ -f "$out/build.tar" ]; then echo "$out"; exit 0; fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.work-XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$npmrc" > "$work/npmrc"
# One hook puts Node, npm, the npm settings and the CA bundle into the root filesystem ($1).
cat > "$work/hook.sh" <<HOOK
#!/bin/sh
set -e
root=\$1
mkdir -p "\$root/usr/local/bin" "\$root/usr/local/include" "\$root/usr/local/lib/node_modules" "\$root/usr/local/etc" "\$root/etc/ssl/certs"
cp "$node_bin/node" "\$root/usr/local/bin/node"
cp -a "$node_bin/../include/node" "\$root/usr/local/include/node"
cp -a "$npm_dir" "\$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "\$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "\$root/usr/local/bin/npx"
cp "$work/npmrc" "\$root/usr/local/etc/npmrc"
cp "$bundle" "\$root/etc/ssl/certs/ca-certificates.crt"
chroot "\$root" groupadd --gid 1000 node
chroot "\$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
HOOK
chmod +x "$work/hook.sh"

mm() {
  mmdebstrap --quiet --variant=minbase --include=passwd"$1" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --customize-hook="$work/hook.sh \"\$1\"" \
    bookworm "$2" >"$2.log" 2>&1 || { cat "$2.log" >&2; return 1; }
}
# Both at once: mostly waiting on the mirror.
mm '' "$work/runtime.tar" & r=$!
mm ',gcc,g++,make,libc6-dev,python3' "$work/build.tar" & b=$!
wait $r; wait $b
mkdir -p "$out"
mv "$work/runtime.tar" "$work/build.tar" "$out/"
# Bases made from other inputs are never used again (~1 GB each): only the current one is kept.
find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$key" -exec rm -rf {} +
echo "$out"
