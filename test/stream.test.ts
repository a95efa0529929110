// Stream jobs end to end with real processes: a coordinator and a node agent in this process, stream scorer
// processes spawned by the agent (`@switchyard/jobs/stream-scorer`, built by `tsc -b`), events published to a
// JetStream stream and results read back from the sink stream. Predictions are compared with raw
// onnxruntime-node on the same rows; window features with a plain recomputation written here.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { SwitchyardClient } from "@switchyard/client";
import { Coordinator } from "@switchyard/coordinator";
import { encode } from "@switchyard/data/codec";
import { registerModel } from "@switchyard/ingest";
import { underDataRoots } from "@switchyard/jobs";
import { connectNats, openBucket, readAll } from "@switchyard/nats";
import {
  clusterNames,
  keys,
  type StreamJobRequest,
  type StreamJobView,
  WorkerStatus,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildMlp, eventually, prng, tempDir, writeTempModel } from "@switchyard/testkit";
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
let root: string;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "stream-test" });
  cluster = `t${randomBytes(5).toString("hex")}`;
  registry = await Registry.open(nc, { cluster });
  await registerModel(registry, "mlp", writeTempModel(MLP), { alias: "champion" });
  await registerModel(registry, "mlp", writeTempModel(MLP2));
  root = tempDir("sy-stream-root-");
  coordinator = new Coordinator({
    nc,
    cluster,
    logger: log,
    streamAckWaitMs: 5_000,
    dataPath: (p, field) => underDataRoots(p, [root], field),
  });
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
    // Some events as msgpack, which their Content-Type says.
    const js = jetstream(nc);
    for (const e of evs.slice(400, 450)) {
      const h = headers();
      h.set("Content-Type", "application/msgpack");
      await js.publish(subject, encode(e), { headers: h });
    }
    await publish(subject, evs.slice(450));
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

  it("dead-letters bad events with the reason and the original payload, terminates them and scores the rest", async () => {
    const { stream, subject } = await sourceStream("dlq");
    const good = events(20, 2);
    const bad = [
      "not json{",
      "[1,2,3]",
      JSON.stringify({ id: "missing", f0: 1, f1: 2, f3: 4 }),
      JSON.stringify({ id: "typed", f0: 1, f1: "abc", f2: 3, f3: 4 }),
      JSON.stringify({ f0: 1, f1: 2, f2: 3, f3: 4 }),
    ];
    await publish(subject, [...good.slice(0, 10), ...bad, ...good.slice(10)]);
    const sink = `${cluster}out.dlq`;
    const view = await createStream({
      name: "dlq",
      model: "models:/mlp/1",
      source_stream: stream,
      sink_subject: sink,
      key: ["id"],
    });
    const sinkStream = view.sink.kind === "subject" ? view.sink.stream : "";
    await eventually(
      async () => {
        const v = (await api("streams.get", { name: "dlq" })).body as unknown as StreamJobView;
        expect([v.status.results, v.status.dlq, v.status.lag]).toEqual([20, 5, 0]);
        return v;
      },
      "20 results and 5 dead letters",
      60_000,
    );
    const letters = (await readAllOf(sinkStream, `${sink}.dlq`)).map((r) => r.data);
    expect(letters.map((l) => [l.reason, l.payload, l.source])).toEqual([
      [expect.stringMatching(/^payload: not valid JSON/), "not json{", { stream, seq: 11 }],
      ["payload: expected a JSON object of fields, got [1,2,3]", "[1,2,3]", { stream, seq: 12 }],
      ['field "f2": expected a number, got nothing', bad[2], { stream, seq: 13 }],
      ['field "f1": expected a number, got "abc"', bad[3], { stream, seq: 14 }],
      ['key field "id": expected a string or number, got nothing', bad[4], { stream, seq: 15 }],
    ]);
    const want = await reference(good);
    const results = new Map((await readAllOf(sinkStream, sink)).map((r) => [r.data.id, r.data.prediction]));
    for (const [i, e] of good.entries()) expect(results.get(e.id) as number).toBeCloseTo(want[i]!, 5);
    // Terminated, not waiting for redelivery: the consumer has nothing pending.
    const c = await (await jetstreamManager(nc)).consumers.info(stream, view.source.consumer);
    expect([c.num_pending, c.num_ack_pending]).toEqual([0, 0]);
  });

  it("computes window features and lookups as a plain recomputation does, sends late events to .late, and keeps the state across a restart", async () => {
    const { stream, subject } = await sourceStream("win");
    const bucket = `${cluster}_customers`;
    const customers = await new Kvm(nc).create(bucket);
    const limits: Record<string, number> = { c0: 100, c1: 250, c2: 50 };
    for (const [card, limit] of Object.entries(limits))
      await customers.put(card, JSON.stringify({ limit, segment: "x" }));
    // Cards c0-c2 have a customer record; c3 has none, so its lookup is null and the model cannot take it.
    const rand = prng(7);
    const base = Date.parse("2026-03-01T00:00:00Z");
    let clock = base;
    const evs = Array.from({ length: 400 }, (_, i) => {
      clock += Math.floor(rand() * 20_000);
      // Every 25th event is 40-70 s old (late, beyond 30 s of lateness); others jitter up to 10 s back.
      const t =
        i % 25 === 24 ? clock - 40_000 - Math.floor(rand() * 30_000) : clock - Math.floor(rand() * 10_000);
      return {
        card: `c${Math.floor(rand() * 4)}`,
        ts: i % 2 ? new Date(t).toISOString() : t,
        amount: Math.round(rand() * 10_000) / 100,
      };
    });
    const spec = {
      key: "card",
      event_time: "ts",
      allowed_lateness: "30s",
      windows: [
        { name: "amount_sum_5m", type: "sliding", size: "5m", agg: "sum", field: "amount" },
        { name: "tx_count_1h", type: "tumbling", size: "1h", agg: "count" },
      ],
      lookups: [{ bucket, key: "card", fields: ["limit"] }],
    };
    const sink = `${cluster}out.win`;
    const view = await createStream({
      name: "win",
      model: "models:/mlp/1",
      source_stream: stream,
      sink_subject: sink,
      columns: ["amount", "amount_sum_5m", "tx_count_1h", "limit"],
      features: spec as never,
    });
    const sinkStream = view.sink.kind === "subject" ? view.sink.stream : "";
    const status = () => api("streams.get", { name: "win" }).then((r) => r.body as unknown as StreamJobView);
    await publish(subject, evs.slice(0, 200));
    await eventually(
      async () => {
        const v = await status();
        expect(v.status.results + v.status.dlq + v.status.late).toBe(200);
        expect(v.status.lag).toBe(0);
        return v;
      },
      "the first 200 events",
      60_000,
    );
    // A restart of the scorer: the window state comes back from KV with the sequences it reflects.
    await api("streams.stop", { name: "win" });
    await eventually(
      async () => ((await status()).status.scorers.length === 0 ? true : undefined),
      "scorer stopped",
    );
    await api("streams.start", { name: "win" });
    await publish(subject, evs.slice(200));

    // The recomputation: the same rules, written out plainly over the events in publish order.
    const tms = (e: (typeof evs)[number]) => (typeof e.ts === "number" ? e.ts : Date.parse(e.ts));
    let maxSeen = Number.NEGATIVE_INFINITY;
    const accepted: Array<{ card: string; t: number; amount: number }> = [];
    const expected = evs.map((e) => {
      const t = tms(e);
      if (t < maxSeen - 30_000) return { kind: "late" as const };
      maxSeen = Math.max(maxSeen, t);
      accepted.push({ card: e.card, t, amount: e.amount });
      const same = accepted.filter((a) => a.card === e.card);
      const sum = same.filter((a) => a.t > t - 300_000 && a.t <= t).reduce((x, a) => x + a.amount, 0);
      const bucketStart = Math.floor(t / 3_600_000) * 3_600_000;
      const count = same.filter((a) => a.t >= bucketStart && a.t < bucketStart + 3_600_000).length;
      const limit = limits[e.card] ?? null;
      return { kind: limit === null ? ("dlq" as const) : ("result" as const), sum, count, limit };
    });
    const want = { late: 0, dlq: 0, result: 0 };
    for (const x of expected) want[x.kind]++;
    expect(want.late).toBeGreaterThan(5);
    expect(want.dlq).toBeGreaterThan(20);
    await eventually(
      async () => {
        const v = await status();
        expect([v.status.results, v.status.dlq, v.status.late]).toEqual([want.result, want.dlq, want.late]);
        return v;
      },
      "every event once",
      60_000,
    );

    // The state forgets the sequences the consumer acked one by one: its floor moved past the restart.
    const jobsKv = await openBucket(nc, clusterNames(cluster), "jobs");
    const snapshot = await eventually(async () => {
      const snap = (await jobsKv.get("stream.win.windows"))?.json<{ floor: number; applied: number[] }>();
      return snap && snap.floor >= 200 ? snap : undefined;
    }, "the state's floor past the restart");
    expect(snapshot!.applied.every((seq) => seq > snapshot!.floor)).toBe(true);
    const seqOf = (d: Record<string, unknown>) => (d.source as { seq: number }).seq;
    const results = new Map((await readAllOf(sinkStream, sink)).map((r) => [seqOf(r.data), r.data]));
    const late = new Set((await readAllOf(sinkStream, `${sink}.late`)).map((r) => seqOf(r.data)));
    const dlq = new Map((await readAllOf(sinkStream, `${sink}.dlq`)).map((r) => [seqOf(r.data), r.data]));
    const scoredRows: number[][] = [];
    expected.forEach((x, i) => {
      const seq = i + 1;
      if (x.kind === "late") {
        expect(late.has(seq)).toBe(true);
        return;
      }
      if (x.kind === "dlq") {
        expect(dlq.get(seq)?.reason).toBe('field "limit": expected a number, got null');
        return;
      }
      const r = results.get(seq)!;
      expect(r.card).toBe(evs[i]!.card);
      expect(r.event_time).toEqual(evs[i]!.ts);
      const f = r.features as Record<string, number>;
      expect(f.amount_sum_5m).toBeCloseTo(x.sum, 6);
      expect(f.tx_count_1h).toBe(x.count);
      expect(f.limit).toBe(x.limit);
      scoredRows.push([evs[i]!.amount, x.sum, x.count, x.limit!]);
    });
    const data = Float32Array.from(scoredRows.flat());
    const out = await sessions[0]!.run({ input: new ort.Tensor("float32", data, [scoredRows.length, 4]) });
    const ref = Array.from(Object.values(out)[0]!.data as Float32Array);
    const got = expected.flatMap((x, i) =>
      x.kind === "result" ? [results.get(i + 1)!.prediction as number] : [],
    );
    for (const [i, p] of got.entries()) expect(p).toBeCloseTo(ref[i]!, 4);
  }, 180_000);

  it("switches to the version an alias moves to at a batch boundary, and records the version of each result", async () => {
    const { stream, subject } = await sourceStream("alias");
    await registry.setAlias("mlp", "challenger", 1);
    const sink = `${cluster}out.alias`;
    const view = await createStream({
      name: "alias",
      model: "models:/mlp@challenger",
      source_stream: stream,
      sink_subject: sink,
      key: ["id"],
    });
    const status = () =>
      api("streams.get", { name: "alias" }).then((r) => r.body as unknown as StreamJobView);
    const evs = events(600, 3);
    await publish(subject, evs.slice(0, 300));
    await eventually(
      async () => ((await status()).status.results === 300 ? true : undefined),
      "300 results",
      60_000,
    );
    await registry.setAlias("mlp", "challenger", 2);
    // The scorer loads version 2 beside version 1; until it switches, results keep coming from version 1.
    let published = 300;
    await eventually(
      async () => {
        if (published < 600) {
          await publish(subject, evs.slice(published, published + 10));
          published += 10;
        }
        const v = await status();
        return v.status.model?.version === 2 ? true : undefined;
      },
      "the switch to version 2",
      60_000,
    );
    await publish(subject, evs.slice(published));
    await eventually(
      async () => ((await status()).status.results === 600 ? true : undefined),
      "600 results",
      60_000,
    );
    const results = (await readAllOf(view.sink.kind === "subject" ? view.sink.stream : "", sink)).map(
      (r) => r.data,
    );
    const [v1, v2] = await Promise.all([reference(evs, 0), reference(evs, 1)]);
    const versions = results.map((r) => (r.model as { version: number }).version);
    // Versions never go back once switched: the switch happens between batches.
    expect(versions).toEqual([...versions].sort());
    expect(versions.filter((v) => v === 1).length).toBeGreaterThanOrEqual(300);
    expect(versions.filter((v) => v === 2).length).toBeGreaterThan(0);
    for (const r of results) {
      const i = Number(String(r.id).slice(1));
      const want = (r.model as { version: number }).version === 1 ? v1[i]! : v2[i]!;
      expect(r.prediction as number).toBeCloseTo(want, 5);
    }
  });

  it("scores through a serving endpoint with --endpoint", async () => {
    await api("endpoints.create", {
      name: "stream-ep",
      config: { served_entities: [{ entity_name: "mlp", entity_version: "2", workload_size: "Small" }] },
    });
    await eventually(
      async () => {
        const r = await api("endpoints.get", { name: "stream-ep" });
        return (r.body.state as { ready?: string })?.ready === "READY" ? true : undefined;
      },
      "endpoint READY",
      60_000,
    );
    const { stream, subject } = await sourceStream("ep");
    const evs = events(300, 4);
    await publish(subject, evs);
    const sink = `${cluster}out.ep`;
    const view = await createStream({
      name: "ep",
      endpoint: "stream-ep",
      source_stream: stream,
      sink_subject: sink,
      key: ["id"],
      batch: 64,
    });
    await eventually(
      async () => {
        const v = (await api("streams.get", { name: "ep" })).body as unknown as StreamJobView;
        return v.status.results === 300 ? true : undefined;
      },
      "300 results",
      60_000,
    );
    const results = (await readAllOf(view.sink.kind === "subject" ? view.sink.stream : "", sink)).map(
      (r) => r.data,
    );
    const want = await reference(evs, 1);
    expect(results.length).toBe(300);
    for (const r of results) {
      expect(r.model).toEqual({ name: "mlp", version: 2 });
      expect(r.prediction as number).toBeCloseTo(want[Number(String(r.id).slice(1))]!, 5);
    }
    await api("streams.delete", { name: "ep" });
    await api("endpoints.delete", { name: "stream-ep" });
  });

  it("runs a custom model over a stream", async () => {
    await registerModel(registry, "sentiment", copyFixture("sentiment"), { flavor: "custom" });
    const { stream, subject } = await sourceStream("custom");
    const texts = ["Good day", "bad day", "so GOOD", "meh"];
    await publish(
      subject,
      texts.map((text, i) => ({ id: `t${i}`, text })),
    );
    const sink = `${cluster}out.custom`;
    const view = await createStream({
      name: "custom",
      model: "models:/sentiment/1",
      source_stream: stream,
      sink_subject: sink,
      key: ["id"],
    });
    await eventually(
      async () => {
        const v = (await api("streams.get", { name: "custom" })).body as unknown as StreamJobView;
        return v.status.results === 4 ? true : undefined;
      },
      "4 results",
      60_000,
    );
    const results = (await readAllOf(view.sink.kind === "subject" ? view.sink.stream : "", sink)).map(
      (r) => r.data,
    );
    expect(results.map((r) => [r.id, r.prediction])).toEqual([
      ["t0", "OK"],
      ["t1", "BAD"],
      ["t2", "OK"],
      ["t3", "BAD"],
    ]);
    await api("streams.delete", { name: "custom" });
  });

  it("refuses bad requests with the field named, and answers unknown jobs with 404", async () => {
    const { stream } = await sourceStream("bad");
    const create = (body: Record<string, unknown>) =>
      api("streams.create", body).then((r) => [r.error, r.body.message]);
    const ok = {
      name: "bad",
      model: "models:/mlp/1",
      source_stream: stream,
      sink_subject: `${cluster}out.bad`,
    };
    expect(await create({ ...ok, endpoint: "x" })).toEqual([
      "INVALID_PARAMETER_VALUE",
      "model: expected exactly one of model, endpoint (what scores the events), got model and endpoint",
    ]);
    expect(await create({ ...ok, source_stream: "NOPE" })).toEqual([
      "INVALID_PARAMETER_VALUE",
      "source_stream: stream 'NOPE' does not exist",
    ]);
    expect(await create({ ...ok, batch: 0 })).toEqual([
      "INVALID_PARAMETER_VALUE",
      "batch: Too small: expected number to be >0",
    ]);
    expect(
      await create({
        ...ok,
        parallelism: 2,
        features: {
          key: "k",
          event_time: "t",
          allowed_lateness: "1s",
          windows: [{ name: "n", type: "tumbling", size: "1m", agg: "count" }],
        },
      }),
    ).toEqual([
      "INVALID_PARAMETER_VALUE",
      "parallelism: a job with windows runs one scorer (its keyed state is in one place); expected 1",
    ]);
    expect(await create({ ...ok, model: "models:/nope/1" })).toEqual([
      "RESOURCE_DOES_NOT_EXIST",
      expect.stringContaining("nope"),
    ]);
    expect(await create({ ...ok, source_dir: "/tmp" })).toEqual([
      "INVALID_PARAMETER_VALUE",
      "source_stream: expected exactly one of source_stream, source_dir (where the events come from), got source_stream and source_dir",
    ]);
    await createStream(ok as StreamJobRequest);
    expect(await create(ok)).toEqual(["RESOURCE_ALREADY_EXISTS", "stream job 'bad' already exists"]);
    expect((await api("streams.get", { name: "nope" })).error).toBe("RESOURCE_DOES_NOT_EXIST");
    expect((await api("streams.stop", { name: "bad" })).body.state).toBe("STOPPED");
    expect(await api("streams.stop", { name: "bad" }).then((r) => [r.error, r.body.message])).toEqual([
      "RESOURCE_CONFLICT",
      "stream job 'bad' is already stopped",
    ]);
    expect((await api("streams.delete", { name: "bad" })).body).toEqual({});
    expect((await api("streams.get", { name: "bad" })).error).toBe("RESOURCE_DOES_NOT_EXIST");
  });

  it("reads a landing directory once per file across a restart, rows in file order, and writes each result once", async () => {
    const dir = path.join(root, "landing");
    mkdirSync(dir);
    const evs = events(90, 5);
    const csv = (rows: Array<Record<string, unknown>>) =>
      `id,${FEATURES.join(",")}\n${rows.map((e) => [e.id, ...FEATURES.map((f) => e[f])].join(",")).join("\n")}\n`;
    writeFileSync(path.join(dir, "a.csv"), csv(evs.slice(0, 30)));
    writeFileSync(
      path.join(dir, "b.jsonl"),
      `${evs
        .slice(30, 50)
        .map((e) => JSON.stringify(e))
        .join("\n")}\n`,
    );
    const sink = `${cluster}out.landing`;
    const view = await createStream({
      name: "landing",
      model: "models:/mlp/1",
      source_dir: dir,
      sink_subject: sink,
      key: ["id"],
    });
    const status = () =>
      api("streams.get", { name: "landing" }).then((r) => r.body as unknown as StreamJobView);
    await eventually(
      async () => ((await status()).status.results === 50 ? true : undefined),
      "50 results",
      60_000,
    );
    await api("streams.stop", { name: "landing" });
    // Written while the job is stopped, one of them the atomic way (a .tmp name renamed into place).
    writeFileSync(path.join(dir, "c.csv"), csv(evs.slice(50, 70)));
    writeFileSync(path.join(dir, "d.csv.tmp"), csv(evs.slice(70, 90)));
    renameSync(path.join(dir, "d.csv.tmp"), path.join(dir, "d.csv"));
    // The same content as a.csv under another name: already in the ledger.
    writeFileSync(path.join(dir, "a-copy.csv"), csv(evs.slice(0, 30)));
    await api("streams.start", { name: "landing" });
    await eventually(
      async () => {
        const v = await status();
        return v.status.results === 90 && v.status.lag === 0 ? true : undefined;
      },
      "90 results",
      60_000,
    );
    const results = (await readAllOf(view.sink.kind === "subject" ? view.sink.stream : "", sink)).map(
      (r) => r.data,
    );
    expect(results.length).toBe(90);
    const want = await reference(evs);
    const seen = new Map<string, number[]>();
    for (const r of results) {
      const { file, row } = r.source as { file: string; row: number };
      seen.set(path.basename(file), [...(seen.get(path.basename(file)) ?? []), row]);
      expect(r.prediction as number).toBeCloseTo(want[Number(String(r.id).slice(1))]!, 5);
    }
    const rows = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    expect(Object.fromEntries([...seen].sort())).toEqual({
      "a.csv": rows(30),
      "b.jsonl": rows(20),
      "c.csv": rows(20),
      "d.csv": rows(20),
    });
    await api("streams.delete", { name: "landing" });
  });

  it("writes part files to a sink directory with exactly one row per input across a kill -9 of the scorer", async () => {
    const { stream, subject } = await sourceStream("dirsink");
    const out = path.join(root, "scored");
    const evs = events(3_000, 6);
    await publish(subject, evs.slice(0, 1_500));
    await createStream({
      name: "dirsink",
      model: "models:/mlp/1",
      source_stream: stream,
      sink_dir: out,
      sink_format: "parquet",
      key: ["id"],
      batch: 100,
    });
    const status = () =>
      api("streams.get", { name: "dirsink" }).then((r) => r.body as unknown as StreamJobView);
    const cl = await openBucket(nc, clusterNames(cluster), "cluster");
    const scorerPid = async () => {
      const all = await readAll(cl, keys.workers, WorkerStatus, "worker status", { invalid: "skip" });
      return (
        all.find((w) => w.value.job_id === "dirsink" && w.value.state === "RUNNING")?.value.pid ?? undefined
      );
    };
    const pid = await eventually(
      async () => {
        const v = await status();
        return v.status.results > 0 ? scorerPid() : undefined;
      },
      "the first part committed",
      60_000,
    );
    process.kill(pid, "SIGKILL");
    await publish(subject, evs.slice(1_500));
    await eventually(
      async () => {
        const v = await status();
        return v.status.results === 3_000 && v.status.lag === 0 ? true : undefined;
      },
      "3,000 rows",
      90_000,
    );
    const db = await DuckDBInstance.create(":memory:");
    const c = await db.connect();
    const got = (
      await c.runAndReadAll(`SELECT id, prediction FROM read_parquet('${out}/part-*.parquet') ORDER BY id`)
    ).getRowObjectsJS() as Array<{ id: string; prediction: number }>;
    c.closeSync();
    db.closeSync();
    expect(got.length).toBe(3_000);
    expect(new Set(got.map((r) => r.id)).size).toBe(3_000);
    const want = await reference(evs);
    for (const r of got) expect(r.prediction).toBeCloseTo(want[Number(r.id.slice(1))]!, 5);
    expect(readdirSync(path.join(out, "_tmp")).filter((f) => !f.startsWith("."))).toEqual([]);
    await api("streams.delete", { name: "dirsink" });
  }, 120_000);
});
