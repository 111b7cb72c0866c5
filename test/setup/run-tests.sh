#!/usr/bin/env bash
# The whole test suite: installs what it needs (Debian packages, Node.js 24), builds, runs every
# test file with node's runner on Node.js 24, the runtime pullthrough supports and its image ships.
# Usage: npm test [-- PATTERN]   (PATTERN filters test files by substring)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash test/setup/install-deps.sh
# npm test may run on an older node (the machine's); everything below runs on Node.js 24.
PATH="$(sh scripts/node24.sh):$PATH"
export PATH
echo "test runtime: node $(node --version)" >&2
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
pattern="${1:-}"
mapfile -t files < <(find dist/test -name '*.test.js' | sort | grep -F -- "$pattern")
if [ ${#files[@]} -eq 0 ]; then echo "no test files match '$pattern'" >&2; exit 1; fi
exec node --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout=1800000 "${files[@]}"
