// Process entry of one replica (package export `@switchyard/replica/main`) with env SWITCHYARD_REPLICA (JSON
// ReplicaLaunch), spawned by a node agent; or, with env SWITCHYARD_SPARE, a warm spare that connects and opens the
// cluster's buckets first and becomes a replica when its agent hands it an assignment. Exit codes: 0 after a drain
// (or a spare never used), EXIT_LOAD_FAILED (3) when the model cannot be served (FAILED written with the reason),
// 1 for anything else (the agent restarts it).
import { openBucket } from "@switchyard/nats";
import { clusterNames, REPLICA_ENV, ReplicaLaunch, SPARE_ENV } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { preloadOnnxRuntime, runChild, WarmPool, WORKER_FILE } from "@switchyard/runtime";
import { Replica } from "./replica.js";

runChild({
  env: REPLICA_ENV,
  launch: ReplicaLaunch,
  spareEnv: SPARE_ENV,
  name: (l) => `replica-${l.spec.replica_id}`,
  logFields: (l) => ({
    endpoint: l.spec.endpoint,
    servedModel: l.spec.served_model,
    replicaId: l.spec.replica_id,
  }),
  prepare: async (base, nc) => {
    const [clusterKv, registry] = await Promise.all([
      openBucket(nc, clusterNames(base.cluster), "cluster"),
      Registry.open(nc, { cluster: base.cluster }),
    ]);
    return { clusterKv, registry };
  },
  // The model's worker threads boot and import onnxruntime, and the main thread initialises onnxruntime's
  // process-wide environment (so each thread's session takes milliseconds), while the replica connects and reads
  // its model; a spare has all of it done before its assignment exists.
  early: (threads) => {
    // A failure here shows again, with the model's name, when the model loads.
    void preloadOnnxRuntime().catch(() => {});
    return new WarmPool(threads, WORKER_FILE);
  },
  start: (l, nc, log, { marks, prepared, early }) =>
    Replica.start({
      nc,
      spec: l.spec,
      cluster: l.cluster,
      nodeId: l.node_id,
      cacheDir: l.cache_dir,
      logger: log,
      marks,
      ...prepared,
      ...(early ? { warmPool: early } : {}),
    }),
});
