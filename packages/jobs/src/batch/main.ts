// Process entry of one batch worker (package export `@switchyard/jobs/batch-worker`) with env
// SWITCHYARD_BATCH_WORKER (JSON BatchWorkerLaunch), spawned by a node agent for a running batch job.
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { openBucket } from "@switchyard/nats";
import { BATCH_WORKER_ENV, BatchWorkerLaunch, clusterNames } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { ModelRunner, runChild } from "@switchyard/runtime";
import { scoreShard } from "../tables/score-shard.js";
import { reportRunning } from "../worker-status.js";
import { BatchWorker, type ShardScorer } from "./worker.js";

runChild({
  env: BATCH_WORKER_ENV,
  launch: BatchWorkerLaunch,
  name: (l) => `batch-${l.spec.worker_id}`,
  logFields: (l) => ({ jobId: l.spec.job_id, workerId: l.spec.worker_id }),
  async start(l, nc, log) {
    const names = clusterNames(l.cluster);
    const [jobs, cluster, registry] = await Promise.all([
      openBucket(nc, names, "jobs"),
      openBucket(nc, names, "cluster"),
      Registry.open(nc, { cluster: l.cluster }),
    ]);
    const version = await registry.getVersion(l.spec.model_name, l.spec.model_version);
    const runner = await ModelRunner.load({
      registry,
      version,
      cacheDir: l.cache_dir,
      threads: l.spec.threads,
    });
    await runner.warmUp();
    // DuckDB gets one thread: the worker's share of the node's budget is its scoring thread, and reading and
    // writing interleave with scoring rather than running beside it.
    // Scratch (shard slices, spill files) under the worker's own directory, emptied at start: a worker killed
    // with -9 leaves its scratch behind, and its replacement clears it.
    const scratchDir = join(l.cache_dir, "batch-scratch", l.spec.worker_id);
    await rm(scratchDir, { recursive: true, force: true });
    await mkdir(scratchDir, { recursive: true });
    const scorer: ShardScorer = (job, score) => scoreShard(job, score, { threads: 1, scratchDir });
    const worker = new BatchWorker({ nc, names, jobs, spec: l.spec, runner, scorer, log });
    await worker.start();
    await reportRunning(cluster, l.spec, l.node_id);
    return {
      async stop() {
        await worker.stop();
        await runner.close();
        await rm(scratchDir, { recursive: true, force: true });
      },
    };
  },
});
