// The stream bench's baseline: what a user writes by hand to score a JetStream subject exactly once with
// onnxruntime-node — one message at a time from a durable pull consumer, `session.run` on it, the result published
// with a msg id (the sink stream's duplicate window drops a republished one) and its publish ack awaited, then the
// input double-acked (ackAck waits for the server's confirmation). No batching, no pipelining.
//   node bench/dist/baseline/stream-loop.js --url <nats URL> --stream <source stream> --consumer <durable>
//        --sink-subject <subject> --model <file.onnx>
// Prints `{"ready": true}` once the session is loaded and the consumer bound; on SIGTERM finishes the message in
// hand and prints `{"scored": n, "failed": n}`.
// Threads: ORT intraOpNumThreads 1 (a stream scorer's one thread from the node budget).
import { parseArgs } from "node:util";
import { jetstream } from "@nats-io/jetstream";
import { connectNats } from "@switchyard/nats";
import * as ort from "onnxruntime-node";
import { FEATURES, KEY_FIELD, SENT_FIELD } from "../lib/stream-events.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    stream: { type: "string" },
    consumer: { type: "string" },
    "sink-subject": { type: "string" },
    model: { type: "string" },
  },
});
const { url, stream, consumer: durable, model } = values;
const sink = values["sink-subject"];
if (!url || !stream || !durable || !sink || !model) {
  throw new Error(
    "usage: stream-loop --url <nats url> --stream <s> --consumer <durable> --sink-subject <s> --model <file.onnx>",
  );
}

const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const [inputName] = session.inputNames;
const [outputName] = session.outputNames;
const nc = await connectNats({ servers: url, name: "switchyard-bench-stream-baseline", reconnect: false });
const js = jetstream(nc);
const consumer = await js.consumers.get(stream, durable);

let stopping = false;
process.on("SIGTERM", () => {
  stopping = true;
});
console.log(JSON.stringify({ ready: true }));

let scored = 0;
let failed = 0;
while (!stopping) {
  const m = await consumer.next({ expires: 1_000 });
  if (!m) continue;
  try {
    const event = m.json<Record<string, unknown>>();
    const x = Float32Array.from(FEATURES, (f) => event[f] as number);
    const out = await session.run({ [inputName!]: new ort.Tensor("float32", x, [1, FEATURES.length]) });
    const seq = m.info.streamSequence;
    const result = {
      [KEY_FIELD]: event[KEY_FIELD],
      prediction: (out[outputName!]!.data as Float32Array)[0],
      event_time: event[SENT_FIELD],
      source: { stream, seq },
    };
    await js.publish(sink, JSON.stringify(result), { msgID: `baseline:${stream}:${seq}` });
    await m.ackAck();
    scored++;
  } catch (err) {
    // Left unacked: redelivered after the ack wait, and its result (if published) deduplicated then.
    failed++;
    console.error(`message ${m.info.streamSequence}: ${(err as Error).message}`);
  }
}
await nc.close();
console.log(JSON.stringify({ scored, failed }));
