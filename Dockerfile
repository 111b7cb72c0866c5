# syntax=docker/dockerfile:1
# pullthrough: build with the dev dependencies, run with the production ones only, as a non-root
# user allowed nothing but binding ports below 1024 (443 for the TLS door, 53 for DNS).
ARG NODE_IMAGE=node:24-bookworm-slim
# The build stage needs a C compiler for the DNS door's native fast path (src/native); the full
# image of the same Debian release has one, and its glibc matches the slim image's.
ARG BUILD_IMAGE=node:24-bookworm

FROM ${BUILD_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && test -f dist/native/dns-fast-path.node

FROM ${NODE_IMAGE} AS production-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# File capability on the node binary: the non-root user may bind low ports, nothing more. It needs
# CAP_NET_BIND_SERVICE in the container's bounding set (Docker's default; on Kubernetes with
# `capabilities.drop: [ALL]`, add NET_BIND_SERVICE back) and is ignored under no_new_privs
# (`allowPrivilegeEscalation: false`): there, set the pod sysctl
# net.ipv4.ip_unprivileged_port_start=0 instead, or use ports >= 1024. A node with file
# capabilities also ignores NODE_OPTIONS and NODE_EXTRA_CA_CERTS (secure-execution mode); use
# registries.<name>.ca for private upstream CAs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v node)")" \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    PULLTHROUGH_DATA_DIR=/data \
    PULLTHROUGH_LISTEN_MIRROR=0.0.0.0:5000
COPY package.json package-lock.json ./
COPY --from=production-deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/native ./dist/native
# The data directory (blobs, metadata, the CA and its key) belongs to the unprivileged user.
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data
USER node
VOLUME ["/data"]
# Mirror (HTTP), TLS door, CONNECT door, DNS door; the last three are off until configured
# (PULLTHROUGH_LISTEN_TLS=0.0.0.0:443, PULLTHROUGH_LISTEN_PROXY=0.0.0.0:3128, PULLTHROUGH_LISTEN_DNS=0.0.0.0:53).
EXPOSE 5000 443 3128 53/tcp 53/udp
# V8's young generation capped at 4 MB per semi-space (as npm start): see README, Operations, Memory.
CMD ["node", "--max-semi-space-size=4", "dist/src/main.js", "serve"]
