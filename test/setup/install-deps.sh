#!/usr/bin/env bash
# Installs the real parts the test suite runs against, when missing (Debian, as root).
set -euo pipefail
need=()
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check docker-registry docker-registry
check skopeo skopeo
check podman podman
check containerd containerd
check ctr containerd
check dockerd docker.io
check redis-server redis-server
check nginx nginx
check dig dnsutils
check ip iproute2
check htpasswd apache2-utils
check curl curl
check shellcheck shellcheck
check unshare util-linux
check update-ca-certificates ca-certificates
check openssl openssl
check redis-cli redis-tools
# rootful podman wants the id-mapping helpers present even with the vfs driver
check newuidmap uidmap
# the container image test (test/image.test.ts): offline base images, rendering the Kubernetes
# manifests, a real Compose parser
check mmdebstrap mmdebstrap
check kubectl kubernetes-client
check docker-compose docker-compose
check nsenter util-linux
# the CLI's progress bars are drawn only on a terminal: test/cli/admin-cli.test.ts runs it under script(1)
check script bsdutils
# the status page is tested in a real browser (driven by puppeteer-core, which downloads none), the
# monitoring artefacts against a real Prometheus and promtool (test/admin, test/observability)
check chromium chromium
check prometheus prometheus
check promtool prometheus
# the build compiles the DNS door's fast path (src/native), which its tests require
check cc gcc
[ -f /usr/include/stdio.h ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing test dependencies (${need[*]}); run as root or install them: apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing test dependencies: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi
