// The node agent against a real nats-server, supervising a stand-in replica process (fixtures/): heartbeat,
// launch, READY, a load failure reported and not restarted, crash restarts counted, drain on unassignment.
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { AGENT_DEFAULTS, NodeAgent } from "@switchyard/agent";
import { connectNats } from "@switchyard/nats";
import {
  clusterNames,
  keys,
  LIVENESS_TTL_MS,
  NodeHeartbeat,
  type ReplicaSpec,
  ReplicaStatus,
} from "@switchyard/protocol";
import { eventually, sleep } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

const FAKE = fileURLToPath(new URL("./fixtures/fake-replica.mjs", import.meta.url));
const log = pino({ level: "silent" });
let nc: NatsConnection;
const agents: NodeAgent[] = [];

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "agent-test" });
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});
afterAll(async () => {
  await nc?.close();
});

const until = <T>(what: string, f: () => Promise<T | undefined>, ms = 20_000) => eventually(f, what, ms);

async function setup(threads = 4) {
  const cluster = `t${randomBytes(5).toString("hex")}`;
  const names = clusterNames(cluster);
  const kvm = new Kvm(nc);
  const kv = await kvm.create(names.buckets.cluster, { history: 1 });
  const liveness = await kvm.create(names.buckets.liveness, { history: 1, ttl: LIVENESS_TTL_MS });
  const agent = new NodeAgent({
    nats: { servers: inject("natsUrl") },
    cluster,
    nodeId: "n1",
    threads,
    replicaEntry: FAKE,
    drainTimeoutMs: 5_000,
    logger: log,
  });
  agents.push(agent);
  await agent.start();
  return { names, kv, liveness, agent };
}

function spec(replica_id: string, model_name = "lin"): ReplicaSpec {
  return {
    replica_id,
    endpoint: "ep",
    served_model: "lin-1",
    subject: `x.rt.ep.lin-1.g${replica_id}`,
    model_name,
    model_version: 1,
    threads: 2,
    max_batch_size: 32,
    max_delay_us: 500,
    max_queue: 256,
    generation: `g${replica_id}`,
  };
}

const statusOf = async (kv: KV, id: string) => {
  const e = await kv.get(keys.replica(id));
  return e?.operation === "PUT" ? ReplicaStatus.parse(e.json()) : undefined;
};

describe("node agent", () => {
  it("heartbeats its thread budget", async () => {
    const { liveness } = await setup(3);
    const e = await liveness.get(keys.node("n1"));
    const hb = NodeHeartbeat.parse(e!.json());
    expect(hb).toMatchObject({ node_id: "n1", threads: 3, pid: process.pid });
  });

  it("starts a replica per assignment, and drains and forgets it when the assignment goes", async () => {
    const { kv } = await setup();
    await kv.put(keys.assignment("n1", "ra"), JSON.stringify(spec("ra")));
    const ready = await until("READY", async () => {
      const s = await statusOf(kv, "ra");
      return s?.state === "READY" ? s : undefined;
    });
    expect(ready).toMatchObject({ node_id: "n1", endpoint: "ep", generation: "gra" });
    const reply = await nc.request(spec("ra").subject, "{}", { timeout: 5_000 });
    expect(reply.json()).toEqual({ replica_id: "ra", model_version: 1, threads: 2 });

    await kv.delete(keys.assignment("n1", "ra"));
    await until("status removed", async () => ((await statusOf(kv, "ra")) ? undefined : true));
    await expect(nc.request(spec("ra").subject, "{}", { timeout: 1_000 })).rejects.toThrow();
  });

  it("reports a replica whose model cannot load as FAILED with its reason, and does not restart it", async () => {
    const { kv, agent } = await setup();
    await kv.put(keys.assignment("n1", "rf"), JSON.stringify(spec("rf", "failload")));
    const failed = await until("FAILED", async () => {
      const s = await statusOf(kv, "rf");
      return s?.state === "FAILED" ? s : undefined;
    });
    expect(failed.message).toBe("fake load failure: model is corrupt");
    // "Not restarted" has no event to wait for: let three shortest crash backoffs pass, in which a restart
    // (or the next status write) would have happened.
    await sleep(3 * AGENT_DEFAULTS.backoffMinMs);
    expect(await statusOf(kv, "rf")).toMatchObject({ state: "FAILED", restarts: 0 });
    expect(agent.replicaIds).toEqual(["rf"]);
  });

  it("restarts a crashing replica with backoff, counting restarts", async () => {
    const { kv } = await setup();
    await kv.put(keys.assignment("n1", "rc"), JSON.stringify(spec("rc", "crash")));
    const s = await until("two restarts", async () => {
      const st = await statusOf(kv, "rc");
      return st && st.restarts >= 2 ? st : undefined;
    });
    expect(s.state).toBe("STARTING");
    expect(s.message).toMatch(/exited with code 1; restart \d+ in \d+ ms/);
  });
});
