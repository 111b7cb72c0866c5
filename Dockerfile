# pullthrough: build with the dev dependencies, run with the production ones only, as a non-root
# user with no capabilities at all, on unprivileged ports, so that the image runs unchanged under
# Kubernetes' "restricted" Pod Security Standard (any uid, `capabilities.drop: [ALL]`,
# `allowPrivilegeEscalation: false`, read-only root filesystem, seccomp RuntimeDefault).
# Map 443/53 to the container's 8443/8053 outside (Service, `docker run -p`, compose): no file
# capability on node, which a container without NET_BIND_SERVICE in its bounding set cannot exec.
# The Node.js major version matches .node-version (the runtime the test suite runs on).
ARG NODE_IMAGE=node:24-bookworm-slim
# The build stage needs a C compiler for the native modules (src/native: the DNS door's fast path,
# the doors' TCP send cap, sendfile for warm blobs); the full image of the same Debian release has one, and its glibc
# matches the slim image's.
ARG BUILD_IMAGE=node:24-bookworm

FROM ${BUILD_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && test -f dist/native/dns-fast-path.node && test -f dist/native/tcp-options.node && test -f dist/native/send-file.node

FROM ${NODE_IMAGE} AS production-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
WORKDIR /app
# The image's defaults live in a config file, not in the environment: a config file of your own
# (PULLTHROUGH_CONFIG, or a file mounted over /etc/pullthrough/pullthrough.yml) replaces them
# whole, and PULLTHROUGH_* variables still override single keys.
ENV NODE_ENV=production \
    PULLTHROUGH_CONFIG=/etc/pullthrough/pullthrough.yml
COPY deploy/image/pullthrough.yml /etc/pullthrough/pullthrough.yml
COPY package.json package-lock.json ./
COPY --from=production-deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/native ./dist/native
# The data directory (blobs, metadata, the CA and its key). Owned by the image's user for a plain
# `docker run` (a named volume copies this ownership); under another uid mount a writable volume
# here or at your own dataDir (Kubernetes: an emptyDir or PVC with fsGroup).
RUN mkdir -p /var/lib/pullthrough && chown node:node /var/lib/pullthrough && chmod 0700 /var/lib/pullthrough
USER node
VOLUME ["/var/lib/pullthrough"]
# Mirror (HTTP), TLS door, CONNECT door; the DNS door (8053/udp+tcp) is off until configured.
EXPOSE 5000 8443 3128
# glibc's mmap threshold pinned and V8's young generation capped at 4 MB per semi-space (as npm
# start): see docs/operations.md, Memory.
ENV MALLOC_MMAP_THRESHOLD_=131072
CMD ["node", "--max-semi-space-size=4", "dist/src/main.js", "serve"]
