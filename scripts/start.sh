#!/bin/sh
# `npm start`: pullthrough serve on Node.js 24 (scripts/node24.sh installs it when the machine has
# an older Node), compiling first only when dist/ is missing or older than the sources, or was
# built by another Node version (the DNS fast path is compiled against that version's headers).
set -eu
cd "$(dirname "$0")/.."
bin=$(sh scripts/node24.sh)
PATH=$bin:$PATH
export PATH
stamp=dist/.build-stamp
want="node $(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
  || [ -n "$(find src package.json package-lock.json tsconfig.json -newer "$stamp" -print -quit)" ]; then
  echo "pullthrough: building (dist/ is missing or older than the sources)" >&2
  npm run build --silent
fi
# glibc's mmap threshold pinned, so freed large buffers go back to the system; V8's young
# generation capped: docs/operations.md, Memory.
MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-131072}
export MALLOC_MMAP_THRESHOLD_
exec node --max-semi-space-size=4 dist/src/main.js serve "$@"
