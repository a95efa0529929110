// The control plane with real replica processes: a coordinator and a node agent (in this process) drive
// `packages/replica/dist/main.js` (built by `tsc -b`). Create → READY → predictions equal the reference;
// update v1→v2 flips routes and the old replica exits; an alias move rolls out; a model that cannot load
// fails the update while the old config keeps serving. References come from testkit's plain-JS predictor.
import { randomBytes } from "node:crypto";
import { type KV, Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { Coordinator } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import { type ApiOp, clusterNames, EndpointRoutes, H, keys, ReplicaStatus } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { alive, buildLinear, eventually, linearPredict, writeTempModel } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const log = pino({ level: process.env.SY_TEST_LOG ?? "silent" });
const LR1 = { inputs: 2, weights: [0.5, -1.5], bias: [0.25], sigmoid: true };
const LR2 = { inputs: 2, weights: [2, 1], bias: [-0.5], sigmoid: true };
const ROWS = [
  [1, 2],
  [0.5, -3],
  [-2, 0.25],
];

let nc: NatsConnection;
let cluster: string;
let registry: Registry;
let coordinator: Coordinator;
let agent: NodeAgent;
let kv: KV;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "control-plane-test" });
  cluster = `t${randomBytes(5).toString("hex")}`;
  registry = await Registry.open(nc, { cluster });
  await registerModel(registry, "lr", writeTempModel(buildLinear(LR1)), { alias: "champion" });
  await registerModel(registry, "lr", writeTempModel(buildLinear(LR2)));
  coordinator = new Coordinator({ nc, cluster, logger: log });
  await coordinator.start();
  agent = new NodeAgent({
    nats: { servers: inject("natsUrl") },
    cluster,
    nodeId: "n1",
    threads: 4,
    logger: log,
  });
  await agent.start();
  kv = await new Kvm(nc).open(clusterNames(cluster).buckets.cluster);
});
afterAll(async () => {
  await agent?.stop();
  await coordinator?.stop();
  await nc?.close();
});

async function api(op: ApiOp, body: unknown) {
  const m = await nc.request(clusterNames(cluster).subjects.api(op), JSON.stringify(body), {
    timeout: 10_000,
  });
  return { code: m.headers?.get(H.errorCode) || undefined, body: m.json<Record<string, any>>() };
}

const settled = <T>(what: string, f: () => Promise<T | undefined>, ms = 60_000) => eventually(f, what, ms);

async function routesOf(endpoint: string): Promise<EndpointRoutes | undefined> {
  const e = await kv.get(keys.routes(endpoint));
  return e?.operation === "PUT" ? EndpointRoutes.parse(e.json()) : undefined;
}

async function predict(subject: string): Promise<{ predictions: number[]; version: string | undefined }> {
  const h = natsHeaders();
  h.set(H.contentType, "application/json");
  h.set(H.deadline, String(Date.now() + 10_000));
  const body = { dataframe_split: { columns: ["a", "b"], data: ROWS } };
  const m = await nc.request(subject, JSON.stringify(body), { timeout: 10_000, headers: h });
  const err = m.headers?.get(H.errorCode);
  if (err) throw new Error(`${err}: ${m.string()}`);
  return {
    predictions: m.json<{ predictions: number[] }>().predictions,
    version: m.headers?.get(H.modelVersion),
  };
}

const expectClose = (got: number[], want: number[][]) => {
  expect(got).toHaveLength(want.length);
  for (const [i, w] of want.flat().entries()) expect(got[i]).toBeCloseTo(w, 5);
};

async function readyState(name: string) {
  return settled(`${name} settled`, async () => {
    const g = await api("endpoints.get", { name });
    return g.body.state?.config_update !== "IN_PROGRESS" ? g.body : undefined;
  });
}

async function replicaStatuses(endpoint: string): Promise<ReplicaStatus[]> {
  const out: ReplicaStatus[] = [];
  for await (const k of await kv.keys("replica.*")) {
    const e = await kv.get(k);
    if (e?.operation === "PUT") {
      const s = ReplicaStatus.parse(e.json());
      if (s.endpoint === endpoint) out.push(s);
    }
  }
  return out;
}

describe("endpoint lifecycle with real replicas", () => {
  it("creates an endpoint that becomes READY and serves the model's predictions", async () => {
    const created = await api("endpoints.create", {
      name: "lr-ep",
      config: {
        served_entities: [{ name: "main", entity_name: "lr", entity_version: "1", workload_size: "Small" }],
      },
    });
    expect(created.code).toBeUndefined();
    const body = await readyState("lr-ep");
    expect(body.state).toEqual({ ready: "READY", config_update: "NOT_UPDATING" });
    expect(body.config.served_entities[0]).toMatchObject({
      entity_version: "1",
      state: { deployment: "DEPLOYMENT_READY" },
    });
    const routes = (await routesOf("lr-ep"))!;
    expect(routes.routes).toHaveLength(1);
    expect(routes.routes[0]).toMatchObject({
      served_model_name: "main",
      traffic_percentage: 100,
      model_version: 1,
    });
    expect(routes.routes[0]!.subject).toMatch(new RegExp(`^${cluster}\\.rt\\.lr-ep\\.main\\.[0-9a-f]{12}$`));
    const out = await predict(routes.routes[0]!.subject);
    expectClose(out.predictions, linearPredict(LR1, ROWS));
  });

  it("updates v1 → v2: routes flip to the new generation and the old replica process exits", async () => {
    const before = (await routesOf("lr-ep"))!;
    const [old] = await replicaStatuses("lr-ep");
    expect(old?.pid).toBeTypeOf("number");
    const upd = await api("endpoints.update", {
      name: "lr-ep",
      config: {
        served_entities: [{ name: "main", entity_name: "lr", entity_version: "2", workload_size: "Small" }],
      },
    });
    expect(upd.code).toBeUndefined();
    expect(upd.body.state.config_update).toBe("IN_PROGRESS");
    const body = await readyState("lr-ep");
    expect(body.state).toEqual({ ready: "READY", config_update: "NOT_UPDATING" });
    expect(body.config).toMatchObject({ config_version: 2, served_entities: [{ entity_version: "2" }] });
    const after = (await routesOf("lr-ep"))!;
    expect(after.routes[0]!.subject).not.toBe(before.routes[0]!.subject);
    expect(after.routes[0]!.model_version).toBe(2);
    expectClose((await predict(after.routes[0]!.subject)).predictions, linearPredict(LR2, ROWS));
    await settled("old replica exits", async () =>
      !alive(old!.pid!) && !(await replicaStatuses("lr-ep")).some((s) => s.replica_id === old!.replica_id)
        ? true
        : undefined,
    );
  });

  it("follows an alias: moving it rolls the endpoint to the new version", async () => {
    await api("endpoints.create", {
      name: "alias-ep",
      config: { served_entities: [{ name: "champ", entity_name: "lr", entity_version: "@champion" }] },
    });
    const body = await readyState("alias-ep");
    expect(body.config.served_entities[0]).toMatchObject({ entity_version: "1", entity_alias: "champion" });
    const r1 = (await routesOf("alias-ep"))!;
    expectClose((await predict(r1.routes[0]!.subject)).predictions, linearPredict(LR1, ROWS));

    await registry.setAlias("lr", "champion", 2);
    const r2 = await settled("alias rollout", async () => {
      const r = await routesOf("alias-ep");
      return r?.routes[0]?.model_version === 2 ? r : undefined;
    });
    expectClose((await predict(r2.routes[0]!.subject)).predictions, linearPredict(LR2, ROWS));
    const got = await api("endpoints.get", { name: "alias-ep" });
    expect(got.body.config.served_entities[0]).toMatchObject({
      entity_version: "2",
      entity_alias: "champion",
    });
    expect(got.body.state).toEqual({ ready: "READY", config_update: "NOT_UPDATING" });
  });

  it("fails an update whose model cannot load, with the reason, and keeps the old config serving", async () => {
    const v3 = await registerModel(registry, "lr", writeTempModel(buildLinear(LR1)));
    const os = await new Objm(nc).open(clusterNames(cluster).buckets.artifacts);
    await os.put({ name: v3.artifacts[0]!.object }, toStream(new TextEncoder().encode("not an onnx model")));

    const before = (await routesOf("lr-ep"))!;
    const upd = await api("endpoints.update", {
      name: "lr-ep",
      config: { served_entities: [{ name: "main", entity_name: "lr", entity_version: String(v3.version) }] },
    });
    expect(upd.code).toBeUndefined();
    const body = await readyState("lr-ep");
    expect(body.state.ready).toBe("READY");
    expect(body.state.config_update).toBe("UPDATE_FAILED");
    expect(body.state.message).toMatch(/served model .main.: .*corrupted/);
    expect(body.config).toMatchObject({ config_version: 2, served_entities: [{ entity_version: "2" }] });
    expect(await routesOf("lr-ep")).toEqual(before);
    expectClose((await predict(before.routes[0]!.subject)).predictions, linearPredict(LR2, ROWS));
    await settled("failed replica unassigned", async () =>
      (await replicaStatuses("lr-ep")).every(
        (s) => s.generation === before.routes[0]!.subject.split(".").at(-1),
      )
        ? true
        : undefined,
    );
  });

  it("deletes an endpoint: routes, then replicas, then the record", async () => {
    expect((await api("endpoints.delete", { name: "alias-ep" })).code).toBeUndefined();
    expect(await routesOf("alias-ep")).toBeUndefined();
    await settled("replicas gone", async () =>
      (await replicaStatuses("alias-ep")).length === 0 ? true : undefined,
    );
    expect((await api("endpoints.get", { name: "alias-ep" })).code).toBe("RESOURCE_DOES_NOT_EXIST");
  });
});

function toStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes);
      c.close();
    },
  });
}
