// Batch before the hop, end to end: `switchyard up` with real replica processes, a router in this process (as the
// SDK runs it) and the bridge's invoke actor for raw NATS clients. Requests for one served model made in the same
// event-loop turn travel in one envelope; each keeps its own reply, error, headers and deadline. References come
// from raw onnxruntime-node or are computed by hand, never from Switchyard code.
import path from "node:path";
import { type Msg, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { type InvokeOutcome, type InvokeResult, Router } from "@switchyard/client";
import { connectNats } from "@switchyard/nats";
import { clusterNames, ERROR_CATALOG, type ErrorCode, H, SwitchyardError } from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";
import { cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

const LR = buildLinear({ inputs: 3, sigmoid: true, bias: [0.25] });
const COLUMNS = ["f1", "f2", "f3"];
const utf8 = new TextEncoder();
const text = new TextDecoder();

/** What became of one request: its result or its error, and when (ms after the turn it was made in). */
interface Settled {
  result?: InvokeResult;
  error?: SwitchyardError;
  at: number;
}

interface Call {
  body: unknown;
  deadlineMs?: number;
  requestId?: string;
}

describe("coalesced requests through switchyard up", () => {
  let up: Up;
  let nc: NatsConnection;
  let router: Router;
  let replicaPids: ReturnType<typeof clusterClient>["replicaPids"];
  const observed = new Map<string, number>();
  /** Raw onnxruntime-node on the LR's bytes: the reference predictions. */
  let reference: ort.InferenceSession;
  const lrReference = async (rows: number[][]): Promise<number[]> => {
    const x = new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, COLUMNS.length]);
    return Array.from((await reference.run({ input: x })).output!.data as Float32Array);
  };

  /** Makes every call in one turn through the in-process router, so they leave in one envelope. */
  const inOneTurn = (endpoint: string, calls: Call[]): Promise<Settled[]> => {
    const t0 = Date.now();
    return Promise.all(
      calls.map((c) => {
        const h = natsHeaders();
        h.set(H.contentType, "application/json");
        if (c.requestId) h.set(H.requestId, c.requestId);
        return router
          .invoke(endpoint, utf8.encode(JSON.stringify(c.body)), h, {
            deadlineMs: c.deadlineMs ?? Date.now() + 20_000,
          })
          .then(
            (result): Settled => ({ result, at: Date.now() - t0 }),
            (err: unknown): Settled => ({ error: SwitchyardError.from(err), at: Date.now() - t0 }),
          );
      }),
    );
  };

  /** Every message on the route subject of `endpoint`'s one served model, from now on. */
  const watchRoute = async (endpoint: string) => {
    const routes = await router.lookup(endpoint);
    const subject = routes!.routes[0]!.subject;
    const seen: (string | undefined)[] = [];
    const sub = nc.subscribe(subject, {
      callback: (_err, msg: Msg) => {
        seen.push(msg.headers?.get(H.batch) || undefined);
      },
    });
    await nc.flush();
    return { seen, stop: () => sub.unsubscribe() };
  };

  const json = (s: Settled) => JSON.parse(text.decode(s.result!.data));
  const predictions = (s: Settled) => {
    expect(s.error).toBeUndefined();
    expect(s.result!.errorCode).toBeUndefined();
    return json(s).predictions as number[];
  };

  beforeAll(async () => {
    reference = await ort.InferenceSession.create(LR);
    up = await startUp(path.join(tempDir("sy-coalesce-"), "data"));
    const env = { SWITCHYARD_DATA_DIR: up.dataDir };
    const client = clusterClient(up);
    replicaPids = client.replicaPids;
    const lr = await cli(["models", "register", "lr", writeTempModel(LR), "--json"], env);
    expect(lr.code).toBe(0);
    const echo = await cli(
      ["models", "register", "echo", copyFixture("shape-echo"), "--flavor", "custom", "--json"],
      env,
    );
    expect(echo.code).toBe(0);
    for (const [name, entity] of [
      ["lr-ep", "lr"],
      ["echo-ep", "echo"],
      ["kill-ep", "echo"],
    ]) {
      const r = await client.call("POST", "/api/2.0/serving-endpoints", {
        name,
        config: { served_entities: [{ entity_name: entity, entity_version: "1" }] },
      });
      expect(r.status).toBe(200);
    }
    for (const name of ["lr-ep", "echo-ep", "kill-ep"]) await client.waitReady(name);
    nc = await connectNats({ servers: up.info().natsUrl, name: "coalesce-test" });
    router = await Router.start(nc, {
      cluster: up.info().cluster,
      observers: [
        { observe: (o: InvokeOutcome) => observed.set(o.requestId, (observed.get(o.requestId) ?? 0) + 1) },
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await reference?.release();
    await router?.close();
    await nc?.close();
    if (up) expect(await up.stop()).toBe(0);
  });

  it("sends the requests of one turn as one envelope, each answered with its own predictions and headers", async () => {
    const rows = Array.from({ length: 8 }, (_, i) => [i / 3 - 1, Math.sin(i), (i % 4) - 1.5]);
    const want = await lrReference(rows);
    const route = await watchRoute("lr-ep");
    const got = await inOneTurn(
      "lr-ep",
      rows.map((r, i) => ({
        body: { dataframe_split: { columns: COLUMNS, data: [r] } },
        requestId: `lr-${i}`,
      })),
    );
    route.stop();
    expect(route.seen).toEqual(["8"]);
    got.forEach((s, i) => {
      const p = predictions(s);
      expect(p).toHaveLength(1);
      expect(Math.abs(p[0]! - want[i]!)).toBeLessThan(1e-5);
      const h = s.result!.headers!;
      expect(h.get(H.requestId)).toBe(`lr-${i}`);
      expect(h.get(H.servedModel)).toBe("lr-1");
      expect(h.get(H.modelName)).toBe("lr");
      expect(h.get(H.modelVersion)).toBe("1");
      expect(h.get(H.errorCode)).toBe("");
      expect(Number(h.get(H.batchSize))).toBeGreaterThanOrEqual(1);
      expect(s.result!.requestId).toBe(`lr-${i}`);
    });
  });

  it("keeps the one-request protocol for raw NATS clients, which get coalescing behind the invoke actor", async () => {
    const rows = Array.from({ length: 16 }, (_, i) => [i / 5, -i / 7, 1 - i / 9]);
    const want = await lrReference(rows);
    const route = await watchRoute("lr-ep");
    const client = await connectNats({ servers: up.info().natsUrl, name: "raw-client" });
    try {
      const subject = clusterNames(up.info().cluster).subjects.invoke("lr-ep");
      // Published back to back and flushed together: the invoke actor reads them in one go.
      const replies = rows.map((r) =>
        client.request(subject, JSON.stringify({ dataframe_split: { columns: COLUMNS, data: [r] } }), {
          timeout: 20_000,
        }),
      );
      const got = await Promise.all(replies);
      got.forEach((m, i) => {
        expect(m.headers?.get(H.batch) ?? "").toBe("");
        expect(m.headers?.get(H.errorCode) ?? "").toBe("");
        const p = m.json<{ predictions: number[] }>().predictions;
        expect(p).toHaveLength(1);
        expect(Math.abs(p[0]! - want[i]!)).toBeLessThan(1e-5);
      });
    } finally {
      await client.close();
      route.stop();
    }
    expect(route.seen.length).toBeLessThan(rows.length);
    expect(route.seen.some((n) => n !== undefined)).toBe(true);
  });

  it("fails one bad request of a batch alone, with its own code, while the others get their predictions", async () => {
    const rows = [
      [0.1, 0.2, 0.3],
      [1, -1, 0.5],
      [-0.4, 0.9, 2],
    ];
    const want = await lrReference(rows);
    const route = await watchRoute("lr-ep");
    const got = await inOneTurn("lr-ep", [
      { body: { dataframe_split: { columns: COLUMNS, data: [rows[0]] } } },
      { body: "{not json" },
      { body: { dataframe_split: { columns: COLUMNS, data: [rows[1]] } } },
      { body: { dataframe_split: { columns: ["f1", "f2"], data: [[1, 2]] } } },
      { body: { dataframe_split: { columns: COLUMNS, data: [rows[2]] } } },
    ]);
    route.stop();
    expect(route.seen).toEqual(["5"]);
    const codes = got.map((s) => s.result?.errorCode);
    expect(codes).toEqual([undefined, "BAD_REQUEST", undefined, "INVALID_PARAMETER_VALUE", undefined]);
    for (const i of [1, 3]) {
      const code = codes[i] as ErrorCode;
      expect(ERROR_CATALOG[code].status).toBe(400);
      expect(got[i]!.result!.headers!.get(H.errorCode)).toBe(code);
      expect(json(got[i]!).error_code).toBe(code);
    }
    expect(json(got[3]!).message).toMatch(/takes 3 columns per row .* the request has 2/);
    [0, 2, 4].forEach((i, k) => {
      expect(Math.abs(predictions(got[i]!)[0]! - want[k]!)).toBeLessThan(1e-5);
    });
  });

  it("never runs requests of different shapes or params together", async () => {
    const calls: { body: unknown; want: number[] }[] = [
      { body: { dataframe_split: { columns: ["a"], data: [[1]] } }, want: [1001] },
      { body: { dataframe_split: { columns: ["a", "b"], data: [[1, 2]] } }, want: [2003] },
      {
        body: {
          dataframe_split: {
            columns: ["a", "b", "c"],
            data: [
              [1, 2, 3],
              [4, 5, 6],
            ],
          },
        },
        want: [3006, 3015],
      },
      { body: { dataframe_split: { columns: ["a"], data: [[5]] }, params: { scale: 10 } }, want: [1050] },
      {
        body: { dataframe_split: { columns: ["a", "b"], data: [[3, 4]] }, params: { scale: -1 } },
        want: [1993],
      },
      { body: { dataframe_split: { columns: ["a"], data: [[7]] } }, want: [1007] },
    ];
    const route = await watchRoute("echo-ep");
    const got = await inOneTurn(
      "echo-ep",
      calls.map((c) => ({ body: c.body })),
    );
    route.stop();
    expect(route.seen).toEqual(["6"]);
    got.forEach((s, i) => {
      expect(predictions(s)).toEqual(calls[i]!.want);
    });
  });

  it("fails a request whose deadline passes inside a batch on time, while the others of the batch succeed", async () => {
    const slow = (data: number[][]) => ({
      dataframe_split: { columns: ["a"], data },
      params: { wait_ms: 1500 },
    });
    const route = await watchRoute("echo-ep");
    const now = Date.now();
    const got = await inOneTurn("echo-ep", [
      { body: slow([[1]]), deadlineMs: now + 20_000 },
      { body: slow([[2]]), deadlineMs: now + 300 },
      { body: slow([[3]]), deadlineMs: now + 20_000 },
    ]);
    route.stop();
    expect(route.seen).toEqual(["3"]);
    expect(got[1]!.error?.code).toBe("DEADLINE_EXCEEDED");
    expect(got[1]!.at).toBeGreaterThanOrEqual(300);
    // Before the batch it rode in was answered: its own deadline, not the batch's.
    expect(got[1]!.at).toBeLessThan(got[0]!.at);
    expect(predictions(got[0]!)).toEqual([1001]);
    expect(predictions(got[2]!)).toEqual([1003]);
  });

  it("ends every request of a batch whose replica is killed within its deadline, each exactly once", async () => {
    const pids = await replicaPids("kill-ep");
    expect(pids.length).toBeGreaterThan(0);
    const route = await watchRoute("kill-ep");
    const deadlineMs = Date.now() + 4_000;
    const ids = Array.from({ length: 6 }, (_, i) => `kill-${i}`);
    const pending = inOneTurn(
      "kill-ep",
      ids.map((requestId, i) => ({
        body: { dataframe_split: { columns: ["a"], data: [[i]] }, params: { wait_ms: 2500 } },
        deadlineMs,
        requestId,
      })),
    );
    // The envelope is on its way to the replica (this subscription got its copy): kill the replica under it.
    await eventually(() => (route.seen.length > 0 ? true : undefined), "the envelope on the route subject");
    for (const pid of pids) process.kill(pid, "SIGKILL");
    const got = await pending;
    const ended = Date.now();
    route.stop();
    expect(route.seen[0]).toBe("6");
    expect(ended).toBeLessThan(deadlineMs + 1_000);
    got.forEach((s, i) => {
      if (s.error) expect(ERROR_CATALOG[s.error.code].retryable).toBe(true);
      else if (s.result!.errorCode)
        expect(ERROR_CATALOG[s.result!.errorCode as ErrorCode].retryable).toBe(true);
      else expect(predictions(s)).toEqual([1000 + i]);
    });
    // Observers saw each request end once.
    await eventually(
      () => (ids.every((id) => observed.get(id) === 1) ? true : undefined),
      "one outcome each",
    );
    for (const id of ids) expect(observed.get(id)).toBe(1);
    // The agent restarts the replica, and the endpoint serves again.
    const after = await eventually(async () => {
      const [s] = await inOneTurn("kill-ep", [
        { body: { dataframe_split: { columns: ["a"], data: [[9]] } } },
      ]);
      return s!.result && !s!.result.errorCode ? s : undefined;
    }, "kill-ep serving again");
    expect(predictions(after)).toEqual([1009]);
  });
});
