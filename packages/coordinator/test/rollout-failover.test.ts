// A leader failover in the middle of an alias rollout, against a real nats-server: a fresh Reconciler (the
// standby that took the lease) on the same KV fails the rollout at the original start + timeout, not at
// takeover + timeout. No node agent runs: the test writes the heartbeat and replica states itself, and
// passes are driven by hand with injected clocks.
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { ManagementApi, Reconciler } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import { clusterNames, EndpointRoutes, keys, type ReplicaStatus } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildLinear, writeTempModel } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { openStores, readAssignments, readRecord, type Stores } from "../src/state.js";

const log = pino({ level: "silent" });
const TIMEOUT = 60_000;
const T0 = 1_700_000_000_000;
let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "rollout-failover-test" });
});
afterAll(async () => {
  await nc?.close();
});

/** The node heartbeat an agent would write (the liveness bucket expires it, so it is renewed per pass). */
async function heartbeat(stores: Stores) {
  const hb = {
    node_id: "n1",
    host: "test",
    pid: 1,
    threads: 4,
    started_at: Date.now(),
    updated_at: Date.now(),
  };
  await stores.liveness.put(keys.node("n1"), JSON.stringify(hb));
}

/** Marks every assigned replica of `model_version` READY, as its replica process would. */
async function markReady(stores: Stores, modelVersion: number) {
  for (const a of await readAssignments(stores)) {
    if (a.spec.model_version !== modelVersion) continue;
    const status: ReplicaStatus = {
      replica_id: a.replica_id,
      node_id: a.node_id,
      endpoint: a.spec.endpoint,
      served_model: a.spec.served_model,
      generation: a.spec.generation,
      pid: 1,
      state: "READY",
      message: "",
      restarts: 0,
      updated_at: Date.now(),
    };
    await stores.cluster.put(keys.replica(a.replica_id), JSON.stringify(status));
  }
}

async function liveVersion(stores: Stores) {
  const e = await stores.cluster.get(keys.routes("ep"));
  return e?.operation === "PUT" ? EndpointRoutes.parse(e.json()).routes[0]?.model_version : undefined;
}

describe("leader failover mid-rollout", () => {
  it("keeps the alias rollout's original deadline", async () => {
    const cluster = `t${randomBytes(5).toString("hex")}`;
    const names = clusterNames(cluster);
    const stores = await openStores(nc, names);
    const registry = await Registry.open(nc, { cluster });
    const model = writeTempModel(buildLinear({ inputs: 2, weights: [1, 2], bias: [0.5] }));
    await registerModel(registry, "fraud", model, { alias: "champion" });
    await registerModel(registry, "fraud", model);
    const api = new ManagementApi({ nc, names, stores, registry, log });
    await api.create({
      name: "ep",
      config: { served_entities: [{ name: "champ", entity_name: "fraud", entity_version: "@champion" }] },
    });

    let leaderClock = Date.now();
    const leader = new Reconciler({
      names,
      stores,
      registry,
      log,
      rolloutTimeoutMs: TIMEOUT,
      now: () => leaderClock,
    });
    const pass = async (r: Reconciler) => {
      await heartbeat(stores);
      await r.pass();
    };
    // The first config becomes READY and serves v1.
    await pass(leader);
    await markReady(stores, 1);
    await pass(leader);
    expect(await liveVersion(stores)).toBe(1);

    // The alias moves; the leader starts the rollout at T0 and dies before v2 is READY.
    await registry.setAlias("fraud", "champion", 2);
    leaderClock = T0;
    await pass(leader);
    const started = (await readRecord(stores, "ep"))!.record;
    expect(started.alias_rollout?.start_time).toBe(T0);
    expect((await readAssignments(stores)).map((a) => a.spec.model_version).sort()).toEqual([1, 2]);

    // The standby takes over 50 s later: within the original deadline it waits…
    let standbyClock = T0 + 50_000;
    const standby = new Reconciler({
      names,
      stores,
      registry,
      log,
      rolloutTimeoutMs: TIMEOUT,
      now: () => standbyClock,
    });
    await pass(standby);
    expect((await readRecord(stores, "ep"))!.record).toMatchObject({
      state: { ready: "READY", config_update: "NOT_UPDATING" },
      alias_rollout: { start_time: T0 },
    });

    // …and fails it just past T0 + timeout (takeover + timeout would be 50 s later), v1 serving on.
    standbyClock = T0 + TIMEOUT + 1;
    await pass(standby);
    const failed = (await readRecord(stores, "ep"))!.record;
    expect(failed.state).toEqual({
      ready: "READY",
      config_update: "UPDATE_FAILED",
      message: "replicas not ready within 60 s (champ 0/1 ready)",
    });
    expect(failed.alias_rollout).toBeUndefined();
    expect(await liveVersion(stores)).toBe(1);
    expect((await readAssignments(stores)).map((a) => a.spec.model_version)).toEqual([1]);
  });
});
