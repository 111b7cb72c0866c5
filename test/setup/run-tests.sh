#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs every test file with node's runner.
# Usage: npm test [-- PATTERN]   (PATTERN filters test files by substring)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash test/setup/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
pattern="${1:-}"
mapfile -t files < <(find dist/test -name '*.test.js' | sort | grep -F -- "$pattern")
if [ ${#files[@]} -eq 0 ]; then echo "no test files match '$pattern'" >&2; exit 1; fi
exec node --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout=600000 "${files[@]}"
