// Process entry of a coordinator: `node packages/coordinator/dist/main.js [--nats URL] [--creds FILE]
// [--cluster NAME] [--id ID]` (or env SWITCHYARD_NATS_URL, SWITCHYARD_NATS_CREDS, SWITCHYARD_CLUSTER,
// SWITCHYARD_COORDINATOR_ID). Runs until SIGTERM/SIGINT, then gives up the lease and exits 0.
import { parseArgs } from "node:util";
import { DEFAULT_CLUSTER } from "@switchyard/protocol";
import { pino } from "pino";
import { Coordinator } from "./coordinator.js";

const { values } = parseArgs({
  options: {
    nats: { type: "string" },
    creds: { type: "string" },
    cluster: { type: "string" },
    id: { type: "string" },
    "rollout-timeout-ms": { type: "string" },
  },
});
const env = process.env;
const log = pino({ name: "coordinator" });
const url = values.nats ?? env.SWITCHYARD_NATS_URL ?? "nats://127.0.0.1:4222";
const creds = values.creds ?? env.SWITCHYARD_NATS_CREDS;
const timeout = values["rollout-timeout-ms"] ?? env.SWITCHYARD_ROLLOUT_TIMEOUT_MS;

const coordinator = new Coordinator({
  nats: { servers: url, ...(creds ? { creds } : {}) },
  cluster: values.cluster ?? env.SWITCHYARD_CLUSTER ?? DEFAULT_CLUSTER,
  ...((values.id ?? env.SWITCHYARD_COORDINATOR_ID) ? { id: values.id ?? env.SWITCHYARD_COORDINATOR_ID } : {}),
  ...(timeout ? { rolloutTimeoutMs: Number(timeout) } : {}),
  logger: log,
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "stopping");
  await coordinator.stop().catch((err: unknown) => log.error({ err }, "stop failed"));
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

try {
  await coordinator.start();
} catch (err) {
  log.fatal({ err }, "coordinator failed to start");
  process.exit(1);
}
