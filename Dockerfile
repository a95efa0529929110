# One image for every Switchyard role; the command picks it:
#   docker run switchyard coordinator|node|bridge|up …   (flags and SWITCHYARD_* variables as on a host)
# BASE is any image with Node.js ≥ 20.11 and npm; a site with its own registry passes its copy of it.
ARG BASE=node:20-bookworm-slim

FROM ${BASE} AS build
WORKDIR /switchyard
COPY . .
# onnxruntime-node's install script downloads GPU binaries; the CPU ones ship in the package, so it is skipped
# (scripts/bootstrap.mjs does the same). The workspace is built as on a host, then dev tools are pruned, and
# onnxruntime-node's binaries for other systems (about 250 MB of its 290) removed.
RUN ONNXRUNTIME_NODE_INSTALL=skip NPM_CONFIG_UPDATE_NOTIFIER=false npm ci --no-audit --no-fund --loglevel=error \
 && node node_modules/typescript/bin/tsc -b \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && ort=node_modules/onnxruntime-node/bin/napi-v6 \
 && find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name "$(node -p process.arch)" -exec rm -rf {} +

FROM ${BASE}
WORKDIR /opt/switchyard
COPY --from=build /switchyard /opt/switchyard
RUN ln -s /opt/switchyard/packages/cli/bin/switchyard.js /usr/local/bin/switchyard
# Roles keep their state (model cache, a local cluster's data) here; compose mounts a volume on it.
ENV SWITCHYARD_DATA_DIR=/var/lib/switchyard
ENTRYPOINT ["switchyard"]
CMD ["--help"]
