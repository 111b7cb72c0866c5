#!/usr/bin/env bash
# npm run bench: pullthrough side by side with nginx (rpardini-style), distribution's proxy mode and
# the static-file limit, on loopback. Prints one table (stdout); progress on stderr.
# BENCH_QUICK=1: smaller blob and fewer repetitions. BENCH_CACHE_DIR: where the generated upstream
# content is kept between runs (default ~/.cache/pullthrough-bench, ~1.3 GB).
set -euo pipefail
cd "$(dirname "$0")/../.."
# The supported runtime (Node.js 24 LTS), as npm test uses it; installed when missing.
PATH="$(sh scripts/node24.sh):$PATH"
export PATH
# The test suite's parts (docker-registry, skopeo, redis, nginx, …) plus the bench's own tools.
bash test/setup/install-deps.sh
need=()
for pair in dnsmasq:dnsmasq dnsperf:dnsperf curl:curl sha256sum:coreutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing bench tools (${need[*]}): apt-get install ${need[*]}" >&2; exit 1; fi
  echo "installing bench tools: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
exec node dist/test/bench/main.js "$@"
