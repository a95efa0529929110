// Stream jobs end to end with real processes: a coordinator and a node agent in this process, stream scorer
// processes spawned by the agent (`@switchyard/jobs/stream-scorer`, built by `tsc -b`), events published to a
// JetStream stream and results read back from the sink stream. Predictions are compared with raw
// onnxruntime-node on the same rows; window features with a plain recomputation written here.
import { randomBytes } from "node:crypto";
import { type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { SwitchyardClient } from "@switchyard/client";
import { Coordinator } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import type { StreamJobRequest, StreamJobView } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildMlp, eventually, prng, tempDir, thrown, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";

const log = pino({ level: process.env.SY_TEST_LOG ?? "silent" });
const FEATURES = ["f0", "f1", "f2", "f3"];
const MLP = buildMlp([4, 8, 1], { seed: 9 });
const MLP2 = buildMlp([4, 8, 1], { seed: 10 });

let nc: NatsConnection;
let cluster: string;
let registry: Registry;
let coordinator: Coordinator;
let agent: NodeAgent;
let client: SwitchyardClient;
let sessions: ort.InferenceSession[];

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "stream-test" });
  cluster = `t${randomBytes(5).toString("hex")}`;
  registry = await Registry.open(nc, { cluster });
  await registerModel(registry, "mlp", writeTempModel(MLP), { alias: "champion" });
  await registerModel(registry, "mlp", writeTempModel(MLP2));
  coordinator = new Coordinator({ nc, cluster, logger: log, streamAckWaitMs: 5_000 });
  await coordinator.start();
  agent = new NodeAgent({
    nats: { servers: inject("natsUrl") },
    cluster,
    nodeId: "n1",
    threads: 2,
    cacheDir: tempDir("sy-stream-cache-"),
    logger: log,
  });
  await agent.start();
  client = SwitchyardClient.fromConnection(nc, { cluster });
  sessions = await Promise.all(
    [MLP, MLP2].map((m) => ort.InferenceSession.create(m, { intraOpNumThreads: 1 })),
  );
});
afterAll(async () => {
  await agent?.stop();
  await coordinator?.stop();
  await client?.close();
  await nc?.close();
});

const api = (op: string, body: unknown) =>
  nc.request(`${cluster}.api.${op}`, JSON.stringify(body), { timeout: 30_000 }).then((m) => ({
    error: m.headers?.get("x-switchyard-error-code") ?? null,
    body: m.json<Record<string, unknown>>(),
  }));

async function createStream(req: StreamJobRequest): Promise<StreamJobView> {
  const r = await api("streams.create", req);
  if (r.error) throw new Error(`${r.error}: ${String(r.body.message)}`);
  return r.body as unknown as StreamJobView;
}

/** A source stream `IN_<tag>` on subject `in.<tag>` and its events. */
async function sourceStream(tag: string): Promise<{ stream: string; subject: string }> {
  const jsm = await jetstreamManager(nc);
  const stream = `IN_${tag}`;
  const subject = `${cluster}in.${tag}`;
  await jsm.streams.add({ name: stream, subjects: [subject] });
  return { stream, subject };
}

function events(n: number, seed: number): Array<Record<string, unknown>> {
  const rand = prng(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: `e${i}`,
    ...Object.fromEntries(FEATURES.map((f) => [f, Math.round((rand() * 4 - 2) * 1000) / 1000])),
  }));
}

async function publish(subject: string, evs: Array<Record<string, unknown> | string>): Promise<void> {
  const js = jetstream(nc);
  for (const e of evs) await js.publish(subject, typeof e === "string" ? e : JSON.stringify(e));
}

/** Every message on `subject` of `stream`, in order, as JSON. */
async function readAllOf(
  stream: string,
  subject: string,
): Promise<Array<{ data: Record<string, unknown>; msg: JsMsg }>> {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream, { subjects_filter: subject });
  const total = info.state.subjects?.[subject] ?? 0;
  if (total === 0) return [];
  const c = await js.consumers.get(stream, { filter_subjects: [subject] });
  const out: Array<{ data: Record<string, unknown>; msg: JsMsg }> = [];
  while (out.length < total) {
    const batch = await c.fetch({ max_messages: Math.min(500, total - out.length), expires: 2_000 });
    for await (const m of batch) out.push({ data: m.json(), msg: m });
  }
  return out;
}

async function reference(evs: Array<Record<string, unknown>>, which = 0): Promise<number[]> {
  const data = Float32Array.from(evs.flatMap((e) => FEATURES.map((f) => e[f] as number)));
  const out = await sessions[which]!.run({ input: new ort.Tensor("float32", data, [evs.length, 4]) });
  return Array.from(Object.values(out)[0]!.data as Float32Array);
}

describe("stream jobs", () => {
  it("scores every event of a subject exactly once, with the model version and source of each", async () => {
    const { stream, subject } = await sourceStream("basic");
    const evs = events(1_000, 1);
    await publish(subject, evs.slice(0, 400));
    const sink = `${cluster}out.basic`;
    await createStream({
      name: "basic",
      model: "models:/mlp@champion",
      source_stream: stream,
      sink_subject: sink,
      key: ["id"],
    });
    await publish(subject, evs.slice(400));
    const view = await eventually(
      async () => {
        const v = (await api("streams.get", { name: "basic" })).body as unknown as StreamJobView;
        expect(v.status.results).toBe(1_000);
        expect(v.status.lag).toBe(0);
        expect(v.status.model).toEqual({ name: "mlp", version: 1 });
        return v;
      },
      "1,000 results",
      60_000,
    );
    expect(view.state).toBe("RUNNING");
    const results = await readAllOf(view.sink.kind === "subject" ? view.sink.stream : "", sink);
    expect(results.length).toBe(1_000);
    const want = await reference(evs);
    const byId = new Map(results.map((r) => [r.data.id, r.data]));
    expect(byId.size).toBe(1_000);
    evs.forEach((e, i) => {
      const r = byId.get(e.id)!;
      expect(r.prediction as number).toBeCloseTo(want[i]!, 5);
      expect(r.model).toEqual({ name: "mlp", version: 1 });
      expect(r.source).toEqual({ stream, seq: i + 1 });
      expect(r.event_time).toBeNull();
    });
  });
});
