// Process entry of a node agent: `node packages/agent/dist/main.js [--nats URL] [--creds FILE]
// [--cluster NAME] [--node ID] [--threads N] [--cache-dir DIR] [--replica-entry FILE]` (or env
// SWITCHYARD_NATS_URL, SWITCHYARD_NATS_CREDS, SWITCHYARD_CLUSTER, SWITCHYARD_NODE_ID,
// SWITCHYARD_THREADS, SWITCHYARD_CACHE_DIR, SWITCHYARD_REPLICA_ENTRY). SIGTERM/SIGINT stops its replicas.
import { parseArgs } from "node:util";
import { DEFAULT_CLUSTER } from "@switchyard/protocol";
import { pino } from "pino";
import { NodeAgent } from "./agent.js";

const { values } = parseArgs({
  options: {
    nats: { type: "string" },
    creds: { type: "string" },
    cluster: { type: "string" },
    node: { type: "string" },
    threads: { type: "string" },
    "cache-dir": { type: "string" },
    "replica-entry": { type: "string" },
    "drain-timeout-ms": { type: "string" },
  },
});
const env = process.env;
const log = pino({ name: "agent" });
const creds = values.creds ?? env.SWITCHYARD_NATS_CREDS;
const nodeId = values.node ?? env.SWITCHYARD_NODE_ID;
const threads = values.threads ?? env.SWITCHYARD_THREADS;
const cacheDir = values["cache-dir"] ?? env.SWITCHYARD_CACHE_DIR;
const replicaEntry = values["replica-entry"] ?? env.SWITCHYARD_REPLICA_ENTRY;
const drain = values["drain-timeout-ms"] ?? env.SWITCHYARD_DRAIN_TIMEOUT_MS;

let agent: NodeAgent;
try {
  agent = new NodeAgent({
    nats: {
      servers: values.nats ?? env.SWITCHYARD_NATS_URL ?? "nats://127.0.0.1:4222",
      ...(creds ? { creds } : {}),
    },
    cluster: values.cluster ?? env.SWITCHYARD_CLUSTER ?? DEFAULT_CLUSTER,
    ...(nodeId ? { nodeId } : {}),
    ...(threads ? { threads: Number(threads) } : {}),
    ...(cacheDir ? { cacheDir } : {}),
    ...(replicaEntry ? { replicaEntry } : {}),
    ...(drain ? { drainTimeoutMs: Number(drain) } : {}),
    logger: log,
  });
  await agent.start();
} catch (err) {
  log.fatal({ err }, "node agent failed to start");
  process.exit(1);
}

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "stopping");
  await agent.stop().catch((err: unknown) => log.error({ err }, "stop failed"));
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
