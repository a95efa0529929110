// Public entry of @switchyard/cli: what `cluster.config.ts` imports, and the embedded cluster for tests.
export { type ClusterConfig, type ClusterConfigInput, defineConfig } from "@switchyard/protocol";
export { loadClusterConfig } from "./config-file.js";
export { type StartedCluster, startLocalCluster } from "./local-cluster.js";
export { buildProgram, main } from "./main.js";
