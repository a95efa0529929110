// The replica actor against a real nats-server: every body format against raw onnxruntime-node, batching
// (and never mixing shapes), admission and deadlines, bad inputs, a crashed worker thread, drain, status, and
// routers' batch envelopes (each part on its own, one reply).
import { Kvm } from "@nats-io/kv";
import { MsgHdrsImpl, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { connectNats } from "@switchyard/nats";
import type { ReplicaStatsSnapshot } from "@switchyard/protocol";
import {
  clusterNames,
  H,
  headerBlock,
  keys,
  packEnvelope,
  type ReplicaSpec,
  unpackEnvelope,
} from "@switchyard/protocol";
import { Replica } from "@switchyard/replica";
import { buildLinear, buildMlp, buildMultiInput } from "@switchyard/testkit";
import onnxProto from "onnx-proto";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import {
  CONTROL_WORKER,
  cacheDir,
  expectClose,
  type Registered,
  randomRows,
  rawRun,
  rawSession,
  registerModel,
  request,
  specFor,
} from "./helpers.js";

let nc: NatsConnection;
const running: Replica[] = [];

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "replica-test" });
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});
afterAll(async () => {
  await nc?.close();
});

async function startReplica(
  bytes: Uint8Array,
  over: Partial<ReplicaSpec> = {},
  workerFile?: string,
): Promise<{ replica: Replica; spec: ReplicaSpec; reg: Registered }> {
  const reg = await registerModel(nc, bytes);
  const spec = specFor(reg, over);
  const replica = await Replica.start({
    nc,
    spec,
    cluster: reg.cluster,
    nodeId: "n1",
    cacheDir: cacheDir(),
    registry: reg.registry,
    ...(workerFile ? { workerFile } : {}),
  });
  running.push(replica);
  return { replica, spec, reg };
}

async function statsOf(spec: ReplicaSpec, cluster: string): Promise<ReplicaStatsSnapshot> {
  const msg = await nc.request(clusterNames(cluster).subjects.replicaStats(spec.replica_id), "", {
    timeout: 5_000,
  });
  return msg.json<ReplicaStatsSnapshot>();
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const LR = { inputs: 4, sigmoid: true };

describe("replica: body formats", () => {
  it("answers every body format of the LR model with raw session.run's predictions", async () => {
    const bytes = buildLinear(LR);
    const { spec, reg } = await startReplica(bytes);
    const session = await rawSession(bytes);
    const rows = randomRows(3, 4);
    const raw = await rawRun(session, { input: { data: Float32Array.from(rows.flat()), dims: [3, 4] } });
    const expected = Array.from(raw.output!.data as Float32Array);
    const cols = ["f0", "f1", "f2", "f3"];

    const jsonBodies = [
      { dataframe_split: { columns: cols, data: rows } },
      { dataframe_records: rows.map((r) => Object.fromEntries(cols.map((c, i) => [c, r[i]]))) },
      { instances: rows },
      { inputs: rows },
      { inputs: { input: rows } },
    ];
    for (const body of jsonBodies) {
      const reply = await request(nc, spec.subject, body, { headers: { [H.requestId]: "req-1" } });
      expect(reply.header(H.errorCode)).toBeUndefined();
      const { predictions } = reply.json();
      expectClose(predictions, expected);
      expect(reply.header(H.servedModel)).toBe(spec.served_model);
      expect(reply.header(H.modelName)).toBe(reg.name);
      expect(reply.header(H.modelVersion)).toBe(String(reg.version));
      expect(reply.header(H.requestId)).toBe("req-1");
      expect(Number(reply.header(H.batchSize))).toBe(3);
      expect(Number(reply.header(H.queueUs))).toBeGreaterThanOrEqual(0);
      expect(Number(reply.header(H.computeUs))).toBeGreaterThan(0);
    }

    const csv = `${cols.join(",")}\n${rows.map((r) => r.join(",")).join("\n")}\n`;
    const csvReply = await request(nc, spec.subject, csv, { contentType: "text/csv" });
    expectClose(csvReply.json().predictions, expected);

    const mp = await request(
      nc,
      spec.subject,
      { input: [{ name: "input", dtype: "float32", shape: [3, 4], data: Float32Array.from(rows.flat()) }] },
      { contentType: "application/msgpack" },
    );
    const out = mp.msgpack().output;
    expect(out[0].name).toBe("output");
    expect(out[0].shape).toEqual([3, 1]);
    expect(out[0].data).toBeInstanceOf(Float32Array);
    expectClose(out[0].data, expected);

    const oip = await request(
      nc,
      spec.subject,
      { id: "abc", inputs: [{ name: "input", shape: [3, 4], datatype: "FP32", data: rows.flat() }] },
      { format: "oip" },
    );
    const body = oip.json();
    expect(body).toMatchObject({ model_name: reg.name, model_version: String(reg.version), id: "abc" });
    expect(body.outputs).toHaveLength(1);
    expect(body.outputs[0]).toMatchObject({ name: "output", shape: [3, 1], datatype: "FP32" });
    expectClose(body.outputs[0].data, expected);
  });

  it("answers the multi-input, multi-output model as MLflow records, msgpack tensors and OIP", async () => {
    const bytes = buildMultiInput();
    const { spec } = await startReplica(bytes);
    const session = await rawSession(bytes);
    const a = [[0.5], [-1], [2]];
    const b = [
      [1, 2],
      [0.3, -0.2],
      [-1, 0.25],
    ];
    const raw = await rawRun(session, {
      a: { data: Float32Array.from(a.flat()), dims: [3, 1] },
      b: { data: Float32Array.from(b.flat()), dims: [3, 2] },
    });
    const labels = Array.from(raw.label!.data, Number);
    const probs = Array.from(raw.probabilities!.data as Float32Array);
    expect(new Set(labels).size).toBe(2); // the rows exercise both classes

    for (const body of [{ inputs: { a, b } }, { instances: a.map((x, i) => ({ a: x, b: b[i] })) }]) {
      const { predictions } = (await request(nc, spec.subject, body)).json();
      expect(predictions).toHaveLength(3);
      predictions.forEach((p: { label: number; probabilities: number[] }, i: number) => {
        expect(Object.keys(p)).toEqual(["label", "probabilities"]);
        expect(p.label).toBe(labels[i]);
        expectClose(p.probabilities, probs.slice(2 * i, 2 * i + 2));
      });
    }

    const mp = await request(
      nc,
      spec.subject,
      {
        input: [
          { name: "b", dtype: "float32", shape: [3, 2], data: Float32Array.from(b.flat()) },
          { name: "a", dtype: "float32", shape: [3, 1], data: Float32Array.from(a.flat()) },
        ],
      },
      { contentType: "application/msgpack" },
    );
    const [label, probabilities] = mp.msgpack().output;
    expect(label).toMatchObject({ name: "label", dtype: "int64", shape: [3] });
    expect(Array.from(label.data as BigInt64Array, Number)).toEqual(labels);
    expectClose(probabilities.data, probs);

    const inputs = [
      { name: "a", shape: [3, 1], datatype: "FP32", data: a },
      { name: "b", shape: [3, 2], datatype: "FP32", data: b.flat() },
    ];
    const all = (await request(nc, spec.subject, { inputs }, { format: "oip" })).json();
    expect(all.outputs.map((o: { name: string }) => o.name)).toEqual(["label", "probabilities"]);
    expect(all.outputs[0]).toMatchObject({ datatype: "INT64", shape: [3], data: labels });
    expectClose(all.outputs[1].data, probs);
    const some = (
      await request(nc, spec.subject, { inputs, outputs: [{ name: "probabilities" }] }, { format: "oip" })
    ).json();
    expect(some.outputs.map((o: { name: string }) => o.name)).toEqual(["probabilities"]);
  });
});

/** Output = mean of each row, input `x: float32[batch, k]` with a symbolic k: trailing shapes vary by request. */
function buildRowMean(): Uint8Array {
  const { onnx } = onnxProto;
  const vi = (name: string, dims: (number | string)[]) => ({
    name,
    type: {
      tensorType: {
        elemType: 1,
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 13 }],
    graph: {
      name: "row_mean",
      node: [
        {
          opType: "ReduceMean",
          input: ["x"],
          output: ["y"],
          name: "mean",
          attribute: [
            { name: "axes", type: onnx.AttributeProto.AttributeType.INTS, ints: [1] },
            { name: "keepdims", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
          ],
        },
      ],
      input: [vi("x", ["batch", "k"])],
      output: [vi("y", ["batch", 1])],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

describe("replica: dynamic batching", () => {
  it("batches 64 concurrent one-row requests, each reply equal to its own row's raw output", async () => {
    const sizes = [16, 32, 1];
    const bytes = buildMlp(sizes, { seed: 3 });
    const { spec, reg } = await startReplica(bytes, { max_delay_us: 2_000 });
    const session = await rawSession(bytes);
    const rows = randomRows(64, 16, 11);
    const expected = await Promise.all(
      rows.map(
        async (r) =>
          (await rawRun(session, { input: { data: Float32Array.from(r), dims: [1, 16] } })).output!.data[0],
      ),
    );
    const replies = await Promise.all(rows.map((r) => request(nc, spec.subject, { inputs: [r] })));
    replies.forEach((reply, i) => {
      expectClose(reply.json().predictions, [Number(expected[i])]);
    });
    expect(replies.some((r) => Number(r.header(H.batchSize)) > 1)).toBe(true);

    const stats = await statsOf(spec, reg.cluster);
    const sizesRun = Object.entries(stats.batch_sizes).map(([k, n]) => [Number(k), n] as const);
    expect(sizesRun.reduce((s, [k, n]) => s + k * n, 0)).toBe(64);
    expect(Math.max(...sizesRun.map(([k]) => k))).toBeGreaterThan(1);
    expect(stats.batches).toBeLessThan(64);
    expect(stats).toMatchObject({
      requests: 64,
      succeeded: 64,
      rows: 64,
      errors: {},
      in_flight: 0,
      queued: 0,
    });
    expect(stats.queue_us.count).toBe(64);
    expect(stats.compute_us.count).toBe(stats.batches);
  });

  it("never mixes requests whose trailing shapes differ", async () => {
    const { spec, reg } = await startReplica(buildRowMean(), { max_delay_us: 2_000 });
    const two = randomRows(40, 2, 1); // 20 requests of 2 rows × 2 columns
    const three = randomRows(20, 3, 2); // 20 requests of 1 row × 3 columns
    const mean = (r: number[]) => r.reduce((s, x) => s + Math.fround(x), 0) / r.length;
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      const pair = [two[2 * i]!, two[2 * i + 1]!];
      jobs.push(
        request(nc, spec.subject, { inputs: { x: pair } }).then((r) => {
          expectClose(r.json().predictions, pair.map(mean));
          expect(Number(r.header(H.batchSize)) % 2).toBe(0); // only 2-row requests in its batch
        }),
      );
      const one = three[i]!;
      jobs.push(
        request(nc, spec.subject, { inputs: { x: [one] } }).then((r) => {
          expectClose(r.json().predictions, [mean(one)]);
        }),
      );
    }
    await Promise.all(jobs);
    const stats = await statsOf(spec, reg.cluster);
    expect(stats.errors).toEqual({});
    expect(stats.rows).toBe(60);
    expect(stats.batches).toBeLessThan(40);
  });
});

describe("replica: admission and deadlines", () => {
  it("refuses excess requests at once with TEMPORARILY_UNAVAILABLE and drops expired work unrun", async () => {
    const { replica, spec } = await startReplica(
      buildLinear(LR),
      { max_queue: 3, max_delay_us: 0, threads: 1 },
      CONTROL_WORKER,
    );
    const row = [[0.1, 0.2, 0.3, 0.4]];
    const slow = request(nc, spec.subject, { inputs: row, params: { sleep_ms: 1_500 } });
    await until(() => replica.snapshot().in_flight === 1, "the slow batch to run");

    // Waits behind the slow batch and its deadline passes meanwhile: dropped, never run.
    const expiring = request(nc, spec.subject, { inputs: row }, { headers: { [H.timeoutMs]: "200" } });
    const queued = request(nc, spec.subject, { inputs: row });
    await until(() => replica.snapshot().queued === 2, "two queued requests");
    const t0 = Date.now();
    const refused = await Promise.all(
      Array.from({ length: 4 }, () => request(nc, spec.subject, { inputs: row })),
    );
    expect(Date.now() - t0).toBeLessThan(1_000); // answered while the pool is still blocked
    for (const r of refused) {
      expect(r.header(H.errorCode)).toBe("TEMPORARILY_UNAVAILABLE");
      expect(r.json().error_code).toBe("TEMPORARILY_UNAVAILABLE");
    }

    // An already-passed deadline is refused on arrival.
    const late = await request(
      nc,
      spec.subject,
      { inputs: row },
      { headers: { [H.deadline]: String(Date.now() - 1) } },
    );
    expect(late.json()).toEqual({
      error_code: "DEADLINE_EXCEEDED",
      message: "the request's deadline passed before it could run",
    });

    expect((await slow).header(H.errorCode)).toBeUndefined();
    expect((await expiring).json().error_code).toBe("DEADLINE_EXCEEDED");
    expect((await queued).header(H.errorCode)).toBeUndefined();
    const s = replica.snapshot();
    expect(s.rows).toBe(2); // the slow one and the queued one; neither expired request ran
    expect(s.errors).toEqual({ TEMPORARILY_UNAVAILABLE: 4, DEADLINE_EXCEEDED: 2 });
  });
});

describe("replica: bad input", () => {
  it("answers exact error codes naming the problem, and keeps serving", async () => {
    const { spec } = await startReplica(buildMultiInput());
    const cases: [string | object, string, string | RegExp, string?][] = [
      [
        { inputs: { a: [[1]] } },
        "INVALID_PARAMETER_VALUE",
        "missing input 'b' (expected float32 [batch, 2])",
      ],
      [{ inputs: { a: [[1]], b: [[1, 2]], c: [[3]] } }, "INVALID_PARAMETER_VALUE", /^unexpected input 'c'/],
      [
        { inputs: { a: [[1], [2]], b: [[1, 2], [3]] } },
        "INVALID_PARAMETER_VALUE",
        /inputs\.b\[1\] has 1 values; expected 2/,
      ],
      [
        { dataframe_split: { columns: ["a"], data: [[1], [2, 3]] } },
        "INVALID_PARAMETER_VALUE",
        /data\[1\] has 2 values/,
      ],
      ["{not json", "BAD_REQUEST", /^Invalid input\. Ensure that input is a valid JSON formatted string/],
      [{ rows: [] }, "BAD_REQUEST", /exactly one of the input fields/],
      ["a,b\n1,2\n", "UNSUPPORTED_MEDIA_TYPE", /content type 'text\/plain'/, "text/plain"],
      [new Uint8Array([0xc1, 0xff]), "BAD_REQUEST", /msgpack/, "application/msgpack"],
    ];
    for (const [body, code, message, contentType] of cases) {
      const reply = await request(nc, spec.subject, body, contentType ? { contentType } : {});
      expect(reply.header(H.errorCode)).toBe(code);
      const err = contentType === "application/msgpack" ? reply.msgpack() : reply.json();
      expect(err.error_code).toBe(code);
      expect(err.message).toMatch(message);
      expect(err.message).not.toMatch(/\n\s+at /);
    }
    const lr = await startReplica(buildLinear(LR));
    const extra = await request(nc, lr.spec.subject, {
      dataframe_split: { columns: ["f0", "f1", "f2", "f3", "f4"], data: [[1, 2, 3, 4, 5]] },
    });
    expect(extra.json()).toEqual({
      error_code: "INVALID_PARAMETER_VALUE",
      message:
        "model input 'input' takes 4 columns per row (float32 [batch, 4]); the request has 5: f0, f1, f2, f3, f4",
    });
    const ok = await request(nc, spec.subject, { inputs: { a: [[1]], b: [[1, 2]] } });
    expect(ok.json().predictions).toHaveLength(1);
  });
});

describe("replica: faults and lifecycle", () => {
  it("writes READY once serving; a crashed worker thread fails its batch retryably and is replaced", async () => {
    const { spec, reg } = await startReplica(buildLinear(LR), { threads: 1 }, CONTROL_WORKER);
    const kv = await new Kvm(nc).open(clusterNames(reg.cluster).buckets.cluster);
    const status = (await kv.get(keys.replica(spec.replica_id)))!.json<{ state: string; pid: number }>();
    expect(status).toMatchObject({
      state: "READY",
      pid: process.pid,
      replica_id: spec.replica_id,
      node_id: "n1",
    });

    const crashed = await request(nc, spec.subject, { inputs: [[1, 2, 3, 4]], params: { crash: true } });
    expect(crashed.json().error_code).toBe("TEMPORARILY_UNAVAILABLE");
    const ok = await request(nc, spec.subject, { inputs: [[1, 2, 3, 4]] });
    expect(ok.header(H.errorCode)).toBeUndefined();
    expect(ok.json().predictions).toHaveLength(1);
  });

  it("drains on stop: in-flight requests are answered, new ones find no responders", async () => {
    const { replica, spec, reg } = await startReplica(
      buildLinear(LR),
      { threads: 1, max_delay_us: 0, max_batch_size: 2 },
      CONTROL_WORKER,
    );
    const pending = Array.from({ length: 5 }, (_, i) =>
      request(nc, spec.subject, { inputs: [[i, 0, 0, 0]], params: { sleep_ms: 200 } }),
    );
    await until(
      () => replica.snapshot().in_flight + replica.snapshot().queued === 5,
      "five admitted requests",
    );
    const stopped = replica.stop();
    const replies = await Promise.all(pending);
    for (const r of replies) expect(r.header(H.errorCode)).toBeUndefined();
    await stopped;
    running.splice(running.indexOf(replica), 1);
    const after = await nc
      .request(spec.subject, JSON.stringify({ inputs: [[1, 2, 3, 4]] }), { timeout: 2_000 })
      .then(
        () => "answered",
        (err: Error & { isNoResponders?: () => boolean }) =>
          err.isNoResponders?.() ? "no responders" : err.message,
      );
    expect(after).toBe("no responders");
    const kv = await new Kvm(nc).open(clusterNames(reg.cluster).buckets.cluster);
    expect((await kv.get(keys.replica(spec.replica_id)))!.json<{ state: string }>().state).toBe("DRAINING");
  });
});

describe("replica: batch envelopes", () => {
  const envelope = (parts: { headers: Record<string, string>; body: string }[]) => {
    const h = natsHeaders();
    h.set(H.batch, String(parts.length));
    const data = packEnvelope(
      parts.map((p) => ({
        headers: headerBlock(Object.entries(p.headers).map(([k, v]) => [k, [v]])),
        body: new TextEncoder().encode(p.body),
      })),
    );
    return { data, h };
  };

  it("answers every part on its own, in order, in one reply: bad parts fail alone", async () => {
    const { spec, reg } = await startReplica(buildLinear(LR));
    const session = await rawSession(buildLinear(LR));
    const rows = randomRows(3, 4, 11);
    const json = { "content-type": "application/json" };
    const cols = ["f0", "f1", "f2", "f3"];
    const { data, h } = envelope([
      {
        headers: { ...json, "x-request-id": "p0" },
        body: JSON.stringify({ dataframe_split: { columns: cols, data: rows.slice(0, 2) } }),
      },
      { headers: { ...json, "x-request-id": "p1" }, body: "{not json" },
      { headers: { ...json, "x-request-id": "p2" }, body: JSON.stringify({ inputs: [rows[2]] }) },
      {
        headers: { ...json, "x-request-id": "p3" },
        body: JSON.stringify({ dataframe_split: { columns: [...cols, "f4"], data: [[1, 2, 3, 4, 5]] } }),
      },
    ]);
    const before = (await statsOf(spec, reg.cluster)).requests;
    const msg = await nc.request(spec.subject, data, { headers: h, timeout: 20_000 });
    expect(msg.headers?.get(H.batch)).toBe("4");
    const parts = unpackEnvelope(msg.data, "4").map((p) => ({
      h: MsgHdrsImpl.decode(p.headers),
      body: JSON.parse(new TextDecoder().decode(p.body)),
    }));
    expect(parts.map((p) => p.h.get(H.requestId))).toEqual(["p0", "p1", "p2", "p3"]);
    expect(parts.map((p) => p.h.get(H.errorCode))).toEqual([
      "",
      "BAD_REQUEST",
      "",
      "INVALID_PARAMETER_VALUE",
    ]);
    expect(parts.map((p) => p.h.get(H.servedModel))).toEqual(Array(4).fill(spec.served_model));
    const want = await rawRun(session, { input: { data: Float32Array.from(rows.flat()), dims: [3, 4] } });
    const out = Array.from(want.output!.data as Float32Array);
    expectClose(parts[0]!.body.predictions.flat(), out.slice(0, 2));
    expectClose(parts[2]!.body.predictions.flat(), out.slice(2, 3));
    expect(parts[1]!.body.error_code).toBe("BAD_REQUEST");
    expect(parts[3]!.body.message).toMatch(/takes 4 columns per row .* the request has 5/);
    expect((await statsOf(spec, reg.cluster)).requests - before).toBe(4);
    await session.release();
  });

  it("answers a malformed envelope with one clean 400 and keeps serving", async () => {
    const { spec } = await startReplica(buildLinear(LR));
    const cases: [string, Uint8Array, RegExp][] = [
      ["3", Uint8Array.from([1, 0, 0, 0, 9]), /^malformed batch envelope: part 1 of 3 is cut short/],
      ["abc", new Uint8Array(0), /^malformed batch envelope: x-switchyard-batch must be a whole number/],
      [
        "1",
        envelope([
          { headers: {}, body: "{}" },
          { headers: {}, body: "{}" },
        ]).data,
        /bytes follow/,
      ],
    ];
    for (const [count, data, message] of cases) {
      const h = natsHeaders();
      h.set(H.batch, count);
      const msg = await nc.request(spec.subject, data, { headers: h, timeout: 20_000 });
      expect(msg.headers?.get(H.batch) ?? "").toBe("");
      expect(msg.headers?.get(H.errorCode)).toBe("BAD_REQUEST");
      expect(msg.json<{ error_code: string; message: string }>()).toMatchObject({
        error_code: "BAD_REQUEST",
      });
      expect(msg.json<{ message: string }>().message).toMatch(message);
    }
    const ok = await request(nc, spec.subject, { inputs: [[1, 2, 3, 4]] });
    expect(ok.json().predictions).toHaveLength(1);
  });
});
