#!/bin/sh
# Prints the directory holding a Node.js 24 `node` binary, installing it first when missing.
# pullthrough supports Node.js 24 LTS; a machine that has only an older Node (Debian's, or Node 20)
# gets the exact version in .node-version from the npm registry's node-linux-<arch> package (the
# official binary and headers, no npm), unpacked once into ~/.cache/pullthrough (or
# $PULLTHROUGH_NODE_CACHE). `npm start`, `npm test` and the image's base all use it.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
version=$(tr -d ' \n' < "$repo/.node-version")
major=${version%%.*}
# A node of the right major on PATH (e.g. inside the image, or a machine set up with Node 24) is used as is.
if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  dirname "$(node -p 'process.execPath')"
  exit 0
fi
case $(uname -m) in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "pullthrough: no Node.js $version package for $(uname -m); install Node.js $major yourself" >&2; exit 1 ;;
esac
dir=${PULLTHROUGH_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullthrough}/node-v$version-linux-$arch
if [ ! -x "$dir/bin/node" ]; then
  echo "pullthrough: installing Node.js $version into $dir (npm package node-linux-$arch@$version)" >&2
  mkdir -p "$(dirname "$dir")"
  tmp=$(mktemp -d "$dir.tmp-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
  tar -xzf "$tmp"/node-linux-*.tgz -C "$tmp"
  "$tmp/package/bin/node" --version >/dev/null
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
fi
echo "$dir/bin"
