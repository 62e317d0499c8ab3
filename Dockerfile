# syntax=docker/dockerfile:1
# Images of the three programs in this package, from one Dockerfile:
#   docker build --target operator      -t vaultpam-connector-operator .   (the default target)
#   docker build --target connector     -t vaultpam-connector .
#   docker build --target control-plane -t vaultpam-control-plane .
# An image is the programs compiled to JavaScript (dist/, by tsconfig.build.json), package.json, the
# CRDs and the production dependencies. Compiled rather than run as TypeScript: Node's type stripper
# costs each process about 30 MiB of memory (docs/performance.md, "Sixth increment"). Every image
# runs as uid 65532 and writes nothing outside its declared volume, so it runs with
# readOnlyRootFilesystem.

# The Node version the project pins (package.json devDependency `node`). For a reproducible release
# build, pin the digest too: --build-arg NODE_IMAGE=node:26.10.0-bookworm-slim@sha256:<digest>.
ARG NODE_IMAGE=node:26.10.0-bookworm-slim

FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, exactly as locked; no install scripts run (none of them needs one).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# The compiler is a devDependency, so this stage installs them all; none of it reaches an image but dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node_modules/.bin/tsc -p tsconfig.build.json

FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the runtime user: the code cannot be changed at run time.
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./dist
COPY crds ./crds
LABEL org.opencontainers.image.vendor="VaultPAM" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/vaultpam/vaultpam-connector-operator" \
      org.opencontainers.image.documentation="https://github.com/vaultpam/vaultpam-connector-operator/blob/main/docs/install.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
USER 65532:65532

# The reference connector agent. Its identity lives in /data (PAM_AGENT_DATA_DIR): mount durable
# storage there for Autonomous mode.
FROM runtime AS connector
USER 0:0
RUN mkdir -p /data && chown 65532:65532 /data && chmod 0700 /data
USER 65532:65532
ENV PAM_AGENT_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8081
LABEL org.opencontainers.image.title="vaultpam-connector" \
      org.opencontainers.image.description="Reference VaultPAM connector agent: enrolls once, keeps its identity in /data, heartbeats over mTLS."
ENTRYPOINT ["node", "dist/bin/connector.js"]

# The reference control plane: SQLite state, CA and admin credential in its data volume.
FROM runtime AS control-plane
USER 0:0
RUN mkdir -p /var/lib/vaultpam-control-plane \
  && chown 65532:65532 /var/lib/vaultpam-control-plane \
  && chmod 0700 /var/lib/vaultpam-control-plane
USER 65532:65532
ENV VAULTPAM_CP_DATA_DIR=/var/lib/vaultpam-control-plane \
    VAULTPAM_CP_LISTEN=0.0.0.0:8443
VOLUME ["/var/lib/vaultpam-control-plane"]
EXPOSE 8443
LABEL org.opencontainers.image.title="vaultpam-control-plane" \
      org.opencontainers.image.description="Reference VaultPAM control plane: enrollment, connector certificates, heartbeats, audit log."
ENTRYPOINT ["node", "dist/bin/control-plane.js"]

# The operator (last, so a plain `docker build .` produces it). It needs no writable path at all.
FROM runtime AS operator
EXPOSE 8080
LABEL org.opencontainers.image.title="vaultpam-connector-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs VaultPAM connectors and automates the connector runbook's guided recovery."
# glibc's malloc gives each thread that allocates an arena of its own (up to 8 per core), and
# keeps what was freed in each: after 1,000 Connectors converged, five arenas held 15.7 MiB of the
# operator's 130.5 MiB; with at most two, 4.5 MiB (docs/performance.md, "Twelfth increment").
# The operator's JavaScript runs on one thread; the others (libuv's pool, V8's helpers) allocate
# little, so sharing arenas costs no measurable time.
ENV MALLOC_ARENA_MAX=2
# A young generation of at most 3 x 4 MiB: V8 grows it to 3 x 16 MiB (or more) under the allocation
# bursts of many passes at once and keeps it, which was 40 MiB of the operator's RSS at 16 passes at
# once for 10 % more CPU while converging (docs/performance.md, "Fourth increment"). The scale
# benchmark runs the operator with this same command (tools/image-layout.ts reads it here).
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/bin/operator.js"]
