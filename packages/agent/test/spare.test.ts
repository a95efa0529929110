// The node agent's warm spare with the real replica process and a real ONNX model: an assignment made while the spare
// waits runs in the spare's process and answers with the model's predictions, a new spare follows, a model that
// cannot load is still FAILED (not restarted), and stopping the agent leaves no process behind. A replica that dies
// unasked (kill -9) is reported on `replicaDown` at once, so routers re-send what it held; one stopped or never
// loaded is not.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type KV, Kvm } from "@nats-io/kv";
import { type NatsConnection, headers as natsHeaders, type Subscription } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import {
  clusterNames,
  H,
  keys,
  LIVENESS_TTL_MS,
  ReplicaDown,
  type ReplicaSpec,
  ReplicaStatus,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import {
  alive,
  buildLinear,
  eventually,
  type LinearOptions,
  linearPredict,
  tempDir,
  writeTempModel,
} from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

const LR: LinearOptions = { inputs: 3, sigmoid: true, weights: [0.5, -1.25, 2], bias: [0.1] };
const log = pino({ level: "silent" });
let nc: NatsConnection;
const agents: NodeAgent[] = [];
const subscriptions: Subscription[] = [];

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "agent-spare-test" });
});
afterEach(async () => {
  for (const sub of subscriptions.splice(0)) sub.unsubscribe();
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});
afterAll(async () => {
  await nc?.close();
});

async function setup() {
  const cluster = `t${randomBytes(5).toString("hex")}`;
  const names = clusterNames(cluster);
  const kvm = new Kvm(nc);
  const kv = await kvm.create(names.buckets.cluster, { history: 1 });
  await kvm.create(names.buckets.liveness, { history: 1, ttl: LIVENESS_TTL_MS });
  const registry = await Registry.open(nc, { cluster });
  const agent = new NodeAgent({
    nats: { servers: inject("natsUrl") },
    cluster,
    nodeId: "n1",
    threads: 2,
    cacheDir: tempDir("sy-agent-spare-"),
    drainTimeoutMs: 10_000,
    logger: log,
  });
  agents.push(agent);
  await agent.start();
  const sparePid = await eventually(() => agent.sparePid, "the warm spare to wait");
  return { names, kv, registry, agent, sparePid };
}

function specOf(
  names: ReturnType<typeof clusterNames>,
  id: string,
  model: string,
  threads: number,
): ReplicaSpec {
  return {
    replica_id: id,
    endpoint: "ep",
    served_model: `${model}-1`,
    subject: `${names.subjects.served("ep", `${model}-1`)}.g${id}`,
    model_name: model,
    model_version: 1,
    threads,
    max_batch_size: 32,
    max_delay_us: 500,
    max_queue: 256,
    generation: `g${id}`,
  };
}

const stateOf = (kv: KV, id: string, state: ReplicaStatus["state"]) =>
  eventually(async () => {
    const e = await kv.get(keys.replica(id));
    const s = e?.operation === "PUT" ? ReplicaStatus.parse(e.json()) : undefined;
    return s?.state === state ? s : undefined;
  }, `${id} ${state}`);

/** Every ReplicaDown notice of the cluster from now on. */
async function watchDowns(names: ReturnType<typeof clusterNames>): Promise<ReplicaDown[]> {
  const downs: ReplicaDown[] = [];
  const sub = nc.subscribe(names.subjects.allReplicaDown, {
    callback: (_err, msg) => {
      downs.push(ReplicaDown.parse(msg.json()));
    },
  });
  subscriptions.push(sub);
  await nc.flush();
  return downs;
}

async function predict(subject: string, rows: number[][]): Promise<number[]> {
  const h = natsHeaders();
  h.set(H.contentType, "application/json");
  const body = JSON.stringify({ dataframe_split: { columns: ["a", "b", "c"], data: rows } });
  const reply = await nc.request(subject, body, { timeout: 20_000, headers: h });
  expect(reply.headers?.get(H.errorCode) ?? "").toBe("");
  return [(reply.json() as { predictions: unknown }).predictions].flat(2) as number[];
}

describe("warm spare", () => {
  it.each([
    { threads: 2, what: "the spare's threads (the node's budget)" },
    { threads: 1, what: "fewer threads than the spare started" },
  ])(
    "runs a replica with $what in the spare's process: READY, correct predictions, and a new spare follows",
    async ({ threads }) => {
      const { names, kv, registry, agent, sparePid } = await setup();
      await registerModel(registry, "lr", writeTempModel(buildLinear(LR)));
      const spec = specOf(names, "ra", "lr", threads);
      await kv.put(keys.assignment("n1", "ra"), JSON.stringify(spec));

      const ready = await stateOf(kv, "ra", "READY");
      expect(ready.pid).toBe(sparePid);
      const rows = [
        [0.2, -1, 3.5],
        [1, 2, -0.75],
      ];
      const got = await predict(spec.subject, rows);
      const want = linearPredict(LR, rows).flat();
      expect(got).toHaveLength(2);
      for (const [i, v] of got.entries()) expect(v).toBeCloseTo(want[i]!, 5);

      const next = await eventually(() => {
        const pid = agent.sparePid;
        return pid !== undefined && pid !== sparePid ? pid : undefined;
      }, "a new warm spare");
      await agent.stop();
      expect(alive(sparePid)).toBe(false);
      expect(alive(next)).toBe(false);
    },
  );

  it("reports a model that cannot load in the spare as FAILED with the reason, and does not restart it", async () => {
    const { kv, registry, agent, names, sparePid } = await setup();
    const downs = await watchDowns(names);
    const junk = join(tempDir("sy-agent-junk-"), "model.onnx");
    writeFileSync(junk, "this is not an ONNX model");
    await registry.addVersion(
      "junk",
      {
        flavor: "onnx",
        entry: "model.onnx",
        signature: {
          inputs: [{ name: "input", dtype: "float32", shape: [-1, 3] }],
          outputs: [{ name: "output", dtype: "float32", shape: [-1, 1] }],
        },
        mlflow_signature: null,
        source: junk,
        description: "",
        tags: {},
      },
      [{ path: "model.onnx", abs: junk }],
    );
    await kv.put(keys.assignment("n1", "rf"), JSON.stringify(specOf(names, "rf", "junk", 2)));

    const failed = await stateOf(kv, "rf", "FAILED");
    expect(failed.message).toMatch(/^not a loadable ONNX model: /);
    expect(failed.restarts).toBe(0);
    // The failed replica's process (the spare it ran in) exited; a new spare waits in its place.
    await eventually(() => (alive(sparePid) ? undefined : true), "the failed replica's process to exit");
    const next = await eventually(() => agent.sparePid, "a new warm spare");
    expect(next).not.toBe(sparePid);
    expect((await kv.get(keys.replica("rf")))?.json()).toMatchObject({ state: "FAILED", restarts: 0 });
    expect(agent.replicaIds).toEqual(["rf"]);
    // It never subscribed, so no request was handed to it: no router is told to re-send.
    await nc.flush();
    expect(downs).toEqual([]);
  });

  it("leaves no process behind when the agent stops with only its spare", async () => {
    const { agent, sparePid } = await setup();
    await agent.stop();
    expect(alive(sparePid)).toBe(false);
  });
});

describe("a replica's death", () => {
  it("is reported once, at once, when the process is killed, and not when the agent stops it", async () => {
    const { names, kv, registry } = await setup();
    await registerModel(registry, "lr", writeTempModel(buildLinear(LR)));
    const downs = await watchDowns(names);
    const spec = specOf(names, "rk", "lr", 1);
    await kv.put(keys.assignment("n1", "rk"), JSON.stringify(spec));
    const ready = await stateOf(kv, "rk", "READY");
    process.kill(ready.pid!, "SIGKILL");
    await eventually(() => (downs.length > 0 ? true : undefined), "the replica-down notice");
    expect(downs).toEqual([
      {
        replica_id: "rk",
        node_id: "n1",
        endpoint: "ep",
        served_model: "lr-1",
        subject: spec.subject,
        reason: "SIGKILL",
      },
    ]);
    // The agent restarts it as before.
    const again = await eventually(async () => {
      const e = await kv.get(keys.replica("rk"));
      const s = e?.operation === "PUT" ? ReplicaStatus.parse(e.json()) : undefined;
      return s?.state === "READY" && s.pid !== ready.pid ? s : undefined;
    }, "rk READY in a new process");
    expect(await predict(spec.subject, [[1, 0, 0]])).toHaveLength(1);
    // A stop asked for (the assignment goes): the replica drains, and no notice.
    await kv.delete(keys.assignment("n1", "rk"));
    await eventually(
      async () => ((await kv.get(keys.replica("rk")))?.operation === "PUT" ? undefined : true),
      "rk stopped",
    );
    expect(alive(again.pid!)).toBe(false);
    await nc.flush();
    expect(downs).toHaveLength(1);
  });
});
