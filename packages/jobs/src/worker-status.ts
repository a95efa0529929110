// What a job's process (batch worker, stream scorer) says of itself once it pulls work: RUNNING, with its pid.
import type { KV } from "@nats-io/kv";
import { readValue } from "@switchyard/nats";
import { type JobWorkerSpec, keys, WorkerStatus } from "@switchyard/protocol";

export async function reportRunning(cluster: KV, spec: JobWorkerSpec, nodeId: string): Promise<void> {
  const key = keys.worker(spec.worker_id);
  // The agent counts restarts in this record; keep its count.
  const previous = await readValue(cluster, key, WorkerStatus, "worker status").catch(() => undefined);
  const status: WorkerStatus = {
    worker_id: spec.worker_id,
    node_id: nodeId,
    job_id: spec.job_id,
    pid: process.pid,
    state: "RUNNING",
    message: "",
    restarts: previous?.value.restarts ?? 0,
    updated_at: Date.now(),
  };
  await cluster.put(key, JSON.stringify(status));
}
