// Process entry of one replica (package export `@switchyard/replica/main`) with env SWITCHYARD_REPLICA (JSON
// ReplicaLaunch), spawned by a node agent. Exit codes: 0 after a drain, EXIT_LOAD_FAILED (3) when the model
// cannot be served (FAILED written with the reason), 1 for anything else (the agent restarts it).
import { REPLICA_ENV, ReplicaLaunch } from "@switchyard/protocol";
import { runChild } from "@switchyard/runtime";
import { Replica } from "./replica.js";

runChild({
  env: REPLICA_ENV,
  launch: ReplicaLaunch,
  name: (l) => `replica-${l.spec.replica_id}`,
  logFields: (l) => ({
    endpoint: l.spec.endpoint,
    servedModel: l.spec.served_model,
    replicaId: l.spec.replica_id,
  }),
  start: (l, nc, log) =>
    Replica.start({
      nc,
      spec: l.spec,
      cluster: l.cluster,
      nodeId: l.node_id,
      cacheDir: l.cache_dir,
      logger: log,
    }),
});
