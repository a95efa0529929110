// HTTP load generator, run as its own process so it never shares an event loop with a server:
//   node bench/dist/load/http.js --url <invocation URL> --connections <n> --duration <s>
//        --bodies <file.jsonl> [--header "Authorization: Bearer …"]…
// autocannon 8 drives a closed loop of n connections; each request's body is drawn at random from the
// pool (setupRequest), never one repeated row. autocannon's own histogram keeps whole milliseconds, so
// latencies come from its `response` events (hrtime, fractional ms) into our recorder. Prints one
// LoadResult JSON line.
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { createRecorder, positiveNumber, processCpuSeconds, readBodies, summarize } from "./common.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    connections: { type: "string", default: "1" },
    duration: { type: "string", default: "5" },
    bodies: { type: "string" },
    header: { type: "string", multiple: true, default: [] },
  },
});
if (!values.url || !values.bodies) throw new Error("usage: http --url <url> --bodies <file.jsonl> [...]");
const connections = positiveNumber(values.connections, "--connections");
const duration = positiveNumber(values.duration, "--duration");
const bodies = readBodies(values.bodies);
const headers: Record<string, string> = { "content-type": "application/json" };
for (const h of values.header) {
  const i = h.indexOf(":");
  if (i <= 0) throw new Error(`--header: expected "name: value", got '${h}'`);
  headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
}
const url = new URL(values.url);
const rec = await createRecorder();

const instance = autocannon({
  url: url.origin,
  connections,
  duration,
  pipelining: 1,
  timeout: 30,
  headers,
  requests: [
    {
      method: "POST",
      path: url.pathname + url.search,
      setupRequest: (req) => ({ ...req, body: bodies[Math.floor(Math.random() * bodies.length)]! }),
    },
  ],
});
instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
  if (statusCode >= 200 && statusCode < 300) rec.record(responseTimeMs);
});
const result = await instance;
// The whole process, start-up included: the bench subtracts it from the machine's busy time.
const clientCpuS = processCpuSeconds();
const durationS = (result.finish.getTime() - result.start.getTime()) / 1000;
console.log(
  JSON.stringify(
    summarize(rec, {
      connections,
      durationS,
      errors: result.errors + result.timeouts,
      non2xx: result.non2xx,
      clientCpuS,
    }),
  ),
);
