// Open-loop publisher of the stream bench, run as its own process:
//   node bench/dist/load/stream-publisher.js --url <nats URL with credentials> --subject <s> --rate <events/s>
//        --duration <s> --prefix <id prefix> [--max-outstanding 4096]
// Sends events (bench/lib/stream-events.ts) at a fixed offered rate, whatever the consumer does: every
// millisecond it publishes what the schedule says is due. JetStream publishes are pipelined — each one's
// publish ack is awaited off the send path — with at most --max-outstanding unacked, so a slow server holds
// the publisher back (reported as `maxBehindMs`) instead of letting it queue without bound. Prints
// `{"started": <epoch ms>}` when the first event goes out, `{"finished": <epoch ms>}` after the last publish call
// (the bench measures the step between the two), then one PublisherResult JSON line once every publish is settled.
// SIGTERM ends the run early (the bench does it when the consumer falls hopelessly behind).
import { parseArgs } from "node:util";
import { jetstream } from "@nats-io/jetstream";
import { connectNats } from "@switchyard/nats";
import { eventEncoder } from "../lib/stream-events.js";
import { positiveNumber, processCpuSeconds } from "./common.js";

export interface PublisherResult {
  rate: number;
  /** Seconds from the first publish call to the last. */
  durationS: number;
  /** Events sent (ids <prefix>-0 … <prefix>-(sent-1)). */
  sent: number;
  /** Publishes the stream acknowledged (stored). */
  acked: number;
  /** Publishes that failed (timeouts, errors): stored or not, unknown. */
  errors: number;
  firstError?: string;
  /** The furthest the publisher fell behind its schedule, in ms (1 ms is the timer's granularity). */
  maxBehindMs: number;
  /** CPU seconds the publisher used from the first publish call to the last (start-up excluded). */
  cpuS: number;
  /** Whether SIGTERM ended it before the duration. */
  stoppedEarly: boolean;
}

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    subject: { type: "string" },
    rate: { type: "string" },
    duration: { type: "string" },
    prefix: { type: "string" },
    "max-outstanding": { type: "string", default: "4096" },
  },
});
if (!values.url || !values.subject || !values.prefix) {
  throw new Error(
    "usage: stream-publisher --url <nats url> --subject <s> --rate <n> --duration <s> --prefix <p>",
  );
}
const rate = positiveNumber(values.rate, "--rate");
const durationMs = positiveNumber(values.duration, "--duration") * 1000;
const maxOutstanding = positiveNumber(values["max-outstanding"], "--max-outstanding");
const subject = values.subject;
const encode = eventEncoder(values.prefix);

const nc = await connectNats({
  servers: values.url,
  name: "switchyard-bench-stream-publisher",
  reconnect: false,
});
const js = jetstream(nc);

let stopping = false;
process.on("SIGTERM", () => {
  stopping = true;
});

let sent = 0;
let acked = 0;
let errors = 0;
let firstError: string | undefined;
let outstanding = 0;
let maxBehindMs = 0;
/** Resolves the wait of the send loop when a publish ack frees a slot. */
let wake: (() => void) | undefined;
const settled = () => {
  outstanding--;
  wake?.();
};

function send(n: number): void {
  outstanding++;
  js.publish(subject, encode(n, Date.now())).then(
    () => {
      acked++;
      settled();
    },
    (err: unknown) => {
      errors++;
      firstError ??= (err as Error).message ?? String(err);
      settled();
    },
  );
}

const waitForSlot = () =>
  new Promise<void>((resolve) => {
    wake = () => {
      wake = undefined;
      resolve();
    };
  });
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

const cpu0 = processCpuSeconds();
const start = performance.now();
console.log(JSON.stringify({ started: Date.now() }));
while (!stopping) {
  const elapsed = Math.min(performance.now() - start, durationMs);
  const due = Math.floor((rate * elapsed) / 1000);
  while (sent < due && outstanding < maxOutstanding) send(sent++);
  maxBehindMs = Math.max(maxBehindMs, ((due - sent) / rate) * 1000);
  // Open loop: the run ends on time; what a slow server kept it from sending is the shortfall (sent < rate × duration).
  if (elapsed >= durationMs) break;
  await (outstanding >= maxOutstanding ? waitForSlot() : tick());
}
const durationS = (performance.now() - start) / 1000;
const cpuS = processCpuSeconds() - cpu0;
console.log(JSON.stringify({ finished: Date.now() }));
while (outstanding > 0) await waitForSlot();
await nc.close();
const result: PublisherResult = {
  rate,
  durationS: Math.round(durationS * 1000) / 1000,
  sent,
  acked,
  errors,
  ...(firstError === undefined ? {} : { firstError }),
  maxBehindMs: Math.round(maxBehindMs * 10) / 10,
  cpuS: Math.round(cpuS * 1000) / 1000,
  stoppedEarly: stopping,
};
console.log(JSON.stringify(result));
