// NATS load generator for the SDK contender, run as its own process:
//   node bench/dist/load/nats.js --url <nats URL with credentials> --endpoint <name> [--cluster sy]
//        --connections <n> --duration <s> --bodies <file.jsonl>
// n concurrent closed loops (one NATS connection, like one SDK client) send one body each, drawn at
// random from the pool, and await the reply. Prints one LoadResult JSON line.
import { parseArgs } from "node:util";
import { connectNats } from "@switchyard/nats";
import { createRecorder, positiveNumber, processCpuSeconds, readBodies, summarize } from "./common.js";
import { makeInvoke } from "./invoke.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    endpoint: { type: "string" },
    cluster: { type: "string", default: "sy" },
    connections: { type: "string", default: "1" },
    duration: { type: "string", default: "5" },
    bodies: { type: "string" },
  },
});
if (!values.url || !values.endpoint || !values.bodies) {
  throw new Error("usage: nats --url <nats url> --endpoint <name> --bodies <file.jsonl> [...]");
}
const connections = positiveNumber(values.connections, "--connections");
const durationMs = positiveNumber(values.duration, "--duration") * 1000;
const bodies = readBodies(values.bodies);
const rec = createRecorder();
const nc = await connectNats({ servers: values.url, name: "switchyard-bench-load", reconnect: false });
const invoke = makeInvoke(nc, values.cluster, values.endpoint);

let errors = 0;
let non2xx = 0;
const cpu0 = processCpuSeconds();
const start = performance.now();
const end = start + durationMs;
async function loop(): Promise<void> {
  while (performance.now() < end) {
    const body = bodies[Math.floor(Math.random() * bodies.length)]!;
    const t0 = performance.now();
    try {
      if ((await invoke(body)).ok) rec.record(performance.now() - t0);
      else non2xx++;
    } catch {
      errors++;
    }
  }
}
await Promise.all(Array.from({ length: connections }, loop));
const durationS = (performance.now() - start) / 1000;
const runCpuS = processCpuSeconds() - cpu0;
// The whole process, start-up included: the bench subtracts it from the machine's busy time.
const clientCpuS = processCpuSeconds();
await nc.close();
console.log(JSON.stringify(summarize(rec, { connections, durationS, errors, non2xx, clientCpuS, runCpuS })));
