# One image for every Switchyard role; the command picks it:
#   docker run switchyard coordinator|node|bridge|up …   (flags and SWITCHYARD_* variables as on a host)
# BASE is any image with Node.js ≥ 20.11 and npm; a site with its own registry passes its copy of it.
ARG BASE=node:20-bookworm-slim

# The package manifests alone, at their paths: the dependency layer below is rebuilt only when one of them
# changes, not on every source change. (A stage rather than COPY --parents, which needs a newer Dockerfile
# frontend than the engine's built-in one.)
FROM ${BASE} AS manifests
WORKDIR /switchyard
COPY . .
RUN mkdir /manifests && cp --parents package.json package-lock.json packages/*/package.json /manifests

FROM ${BASE} AS build
WORKDIR /switchyard
COPY --from=manifests /manifests/ ./
# onnxruntime-node's install script downloads GPU binaries; the CPU ones ship in the package, so it is skipped
# (scripts/bootstrap.mjs does the same).
RUN ONNXRUNTIME_NODE_INSTALL=skip NPM_CONFIG_UPDATE_NOTIFIER=false npm ci --no-audit --no-fund --loglevel=error
COPY . .
# The workspace is built as on a host, then dev tools are pruned, and onnxruntime-node's binaries for other
# systems (about 250 MB of its 290) removed.
RUN node node_modules/typescript/bin/tsc -b \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && ort=node_modules/onnxruntime-node/bin/napi-v6 \
 && find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name "$(node -p process.arch)" -exec rm -rf {} +

FROM ${BASE}
# The standard title label: `docker image prune --filter label=org.opencontainers.image.title=switchyard` removes
# earlier builds left dangling without touching other images (the container tier does so after each build).
LABEL org.opencontainers.image.title=switchyard
# The roles run as an unprivileged user with a fixed uid, so a host directory mounted for them can be given to
# it (docs/deploy.md). groupadd/useradd are Debian's `passwd` package, in slim and minbase images alike. The
# directories volumes mount on belong to it: Docker gives a new named volume the ownership of the directory it
# is mounted on, so the roles can write to a fresh volume. Its home is the state directory, where onnxruntime
# keeps its small ~/.cache.
RUN groupadd --gid 10001 switchyard \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /var/lib/switchyard \
      --shell /usr/sbin/nologin switchyard \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/switchyard /data \
 && ln -s /opt/switchyard/packages/cli/bin/switchyard.js /usr/local/bin/switchyard
WORKDIR /opt/switchyard
# Owned by root: the roles read their code, they never write it.
COPY --from=build /switchyard /opt/switchyard
# Roles keep their state (model cache, a local cluster's data) here; compose mounts a volume on it.
ENV SWITCHYARD_DATA_DIR=/var/lib/switchyard
# Numeric, so an orchestrator enforcing "run as non-root" can check it without reading /etc/passwd.
USER 10001:10001
ENTRYPOINT ["switchyard"]
CMD ["--help"]
