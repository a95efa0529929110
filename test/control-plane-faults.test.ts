// Faults with real processes: node agents and coordinators run as their built process entries (dist/main.js)
// and are killed with SIGKILL. A node's death is its whole process group (the agent and its replicas, as
// when a host dies); the coordinator reschedules its replicas elsewhere. A leader's death hands the lease
// to the standby, which then reconciles from KV alone.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { Coordinator } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import {
  type ApiOp,
  clusterNames,
  EndpointRoutes,
  H,
  keys,
  Lease,
  LIVENESS_TTL_MS,
  ReplicaStatus,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import {
  alive,
  buildLinear,
  eventually,
  linearPredict,
  TcpProxy,
  tempDir,
  writeTempModel,
} from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

const log = pino({ level: process.env.SY_TEST_LOG ?? "silent" });
/** The one entry point of every role, as users and container images run it. */
const SWITCHYARD = fileURLToPath(new URL("../packages/cli/bin/switchyard.js", import.meta.url));
const LR = { inputs: 2, weights: [0.5, -1.5], bias: [0.25], sigmoid: true };
const ROWS = [
  [1, 2],
  [-2, 0.25],
];

let nc: NatsConnection;
const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "control-plane-faults" });
});
afterEach(async () => {
  for (const c of children.splice(0)) killGroup(c);
  for (const f of cleanups.splice(0)) await f().catch(() => undefined);
});
afterAll(async () => {
  await nc?.close();
});

/** Starts a process entry in its own process group, so SIGKILL to the group takes its children too. */
function start(role: "coordinator" | "node", args: string[]): ChildProcess {
  const c = spawn(process.execPath, [SWITCHYARD, role, "--nats", inject("natsUrl"), ...args], {
    detached: true,
    stdio: ["ignore", process.env.SY_TEST_LOG ? "inherit" : "ignore", "inherit"],
  });
  children.push(c);
  return c;
}

function killGroup(c: ChildProcess): void {
  try {
    if (c.pid) process.kill(-c.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

async function setup() {
  const cluster = `t${randomBytes(5).toString("hex")}`;
  const names = clusterNames(cluster);
  const registry = await Registry.open(nc, { cluster });
  await registerModel(registry, "lr", writeTempModel(buildLinear(LR)));
  const kvm = new Kvm(nc);
  const kv = await kvm.create(names.buckets.cluster, { history: 1 });
  const liveness = await kvm.create(names.buckets.liveness, { history: 1, ttl: LIVENESS_TTL_MS });
  const api = async (op: ApiOp, body: unknown) => {
    const m = await nc.request(names.subjects.api(op), JSON.stringify(body), { timeout: 10_000 });
    return { code: m.headers?.get(H.errorCode) || undefined, body: m.json<Record<string, any>>() };
  };
  return { cluster, kv, liveness, api };
}

/** An in-process node agent with two threads, stopped after the test. */
async function agentOn(
  cluster: string,
  nodeId: string,
  o: { servers?: string; warmSpare?: boolean } = {},
): Promise<NodeAgent> {
  const agent = new NodeAgent({
    nats: { servers: o.servers ?? inject("natsUrl") },
    cluster,
    nodeId,
    threads: 2,
    ...(o.warmSpare === undefined ? {} : { warmSpare: o.warmSpare }),
    logger: log,
  });
  await agent.start();
  cleanups.push(() => agent.stop());
  return agent;
}

const settled = <T>(what: string, f: () => Promise<T | undefined>, ms = 60_000) => eventually(f, what, ms);

async function routesOf(kv: KV, endpoint: string): Promise<EndpointRoutes | undefined> {
  const e = await kv.get(keys.routes(endpoint));
  return e?.operation === "PUT" ? EndpointRoutes.parse(e.json()) : undefined;
}

async function predict(subject: string): Promise<number[]> {
  const h = natsHeaders();
  h.set(H.contentType, "application/json");
  h.set(H.deadline, String(Date.now() + 5_000));
  const m = await nc.request(
    subject,
    JSON.stringify({ dataframe_split: { columns: ["a", "b"], data: ROWS } }),
    {
      timeout: 5_000,
      headers: h,
    },
  );
  if (m.headers?.get(H.errorCode)) throw new Error(m.string());
  return m.json<{ predictions: number[] }>().predictions;
}

const expectClose = (got: number[], want: number[][]) => {
  for (const [i, w] of want.flat().entries()) expect(got[i]).toBeCloseTo(w, 5);
};

async function nodesOf(kv: KV): Promise<string[]> {
  const out: string[] = [];
  for await (const k of await kv.keys(keys.assignments)) out.push(k.split(".")[1]!);
  return out;
}

describe("faults", () => {
  it("reschedules the replicas of a node that died onto the other node", async () => {
    const { cluster, kv, liveness, api } = await setup();
    const coordinator = new Coordinator({ nc, cluster, logger: log });
    await coordinator.start();
    cleanups.push(() => coordinator.stop());
    const agents = new Map([
      [
        "na",
        start("node", [
          "--cluster",
          cluster,
          "--node-id",
          "na",
          "--threads",
          "2",
          "--cache-dir",
          tempDir("sy-na-"),
        ]),
      ],
      [
        "nb",
        start("node", [
          "--cluster",
          cluster,
          "--node-id",
          "nb",
          "--threads",
          "2",
          "--cache-dir",
          tempDir("sy-nb-"),
        ]),
      ],
    ]);
    await settled("both heartbeats", async () =>
      (await liveness.get(keys.node("na"))) && (await liveness.get(keys.node("nb"))) ? true : undefined,
    );

    await api("endpoints.create", {
      name: "ha",
      config: { served_entities: [{ entity_name: "lr", entity_version: "1", workload_size: "Small" }] },
    });
    const routes = await settled("READY", async () => routesOf(kv, "ha"));
    const subject = routes.routes[0]!.subject;
    expectClose(await predict(subject), linearPredict(LR, ROWS));

    const [victim] = await nodesOf(kv);
    const survivor = victim === "na" ? "nb" : "na";
    killGroup(agents.get(victim!)!);
    const t0 = Date.now();
    await settled(
      "replica back on the survivor, serving",
      async () => {
        const nodes = await nodesOf(kv);
        if (nodes.length !== 1 || nodes[0] !== survivor) return undefined;
        return predict(subject);
      },
      LIVENESS_TTL_MS + 30_000,
    ).then((p) => expectClose(p, linearPredict(LR, ROWS)));
    expect(Date.now() - t0).toBeLessThan(LIVENESS_TTL_MS + 30_000);
    expect((await api("endpoints.get", { name: "ha" })).body.state).toEqual({
      ready: "READY",
      config_update: "NOT_UPDATING",
    });
  });

  it("hands the lease to the standby when the leader is killed, and the standby reconciles", async () => {
    const { cluster, kv, liveness, api } = await setup();
    await agentOn(cluster, "n1");
    const coords = new Map([
      ["c1", start("coordinator", ["--cluster", cluster, "--id", "c1"])],
      ["c2", start("coordinator", ["--cluster", cluster, "--id", "c2"])],
    ]);
    const holder = async () => {
      const e = await liveness.get(keys.lease);
      return e?.operation === "PUT" ? Lease.parse(e.json()).holder : undefined;
    };
    const leader = await settled("a leader", holder, 20_000);
    await api("endpoints.create", {
      name: "before",
      config: { served_entities: [{ entity_name: "lr", entity_version: "1" }] },
    });
    await settled("first endpoint READY", async () => routesOf(kv, "before"));

    killGroup(coords.get(leader)!);
    const standby = leader === "c1" ? "c2" : "c1";
    const created = await settled(
      "API answered by the standby",
      async () => {
        const r = await api("endpoints.create", {
          name: "after",
          config: { served_entities: [{ entity_name: "lr", entity_version: "1" }] },
        });
        return r.code === undefined ? r : undefined;
      },
      20_000,
    );
    expect(created.body.state.config_update).toBe("IN_PROGRESS");
    await settled(
      "standby takes the lease",
      async () => ((await holder()) === standby ? true : undefined),
      LIVENESS_TTL_MS + 10_000,
    );
    const routes = await settled("endpoint created after the kill becomes READY", async () =>
      routesOf(kv, "after"),
    );
    expectClose(await predict(routes.routes[0]!.subject), linearPredict(LR, ROWS));
    expect((await api("endpoints.get", { name: "after" })).body.state).toEqual({
      ready: "READY",
      config_update: "NOT_UPDATING",
    });
  });

  it("fences a partitioned node: its replica is dead before the work runs elsewhere, and stays gone on heal", async () => {
    const { cluster, kv, liveness, api } = await setup();
    const url = new URL(inject("natsUrl"));
    const proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port) });
    cleanups.push(() => proxy.close());
    // n1 and every process it starts reach NATS only through the proxy: cutting it partitions that "host".
    const n1 = await agentOn(cluster, "n1", { servers: proxy.via(inject("natsUrl")), warmSpare: false });
    start("coordinator", ["--cluster", cluster, "--id", "c1"]);
    await settled("endpoint created", async () => {
      const r = await api("endpoints.create", {
        name: "p",
        config: { served_entities: [{ entity_name: "lr", entity_version: "1" }] },
      });
      return r.code === undefined ? r : undefined;
    });
    const status = async (id: string) => {
      const e = await kv.get(keys.replica(id));
      return e?.operation === "PUT" ? ReplicaStatus.parse(e.json()) : undefined;
    };
    const old = await settled("the replica READY on n1", async () => {
      const id = n1.replicaIds[0];
      const st = id ? await status(id) : undefined;
      return st?.state === "READY" && st.pid !== null ? st : undefined;
    });
    const n2 = await agentOn(cluster, "n2");

    proxy.cut();
    // "Runs twice": n1's replica process alive while a replica on n2 is READY. Sampled until n2 serves.
    let overlaps = 0;
    const moved = await settled(
      "a replica READY on n2",
      async () => {
        const ready = await Promise.all(
          n2.replicaIds.map(async (id) => (await status(id))?.state === "READY"),
        );
        const onN2 = ready.includes(true);
        if (onN2 && alive(old.pid!)) overlaps++;
        return onN2 ? true : undefined;
      },
      LIVENESS_TTL_MS + 30_000,
    );
    expect(moved).toBe(true);
    expect(overlaps).toBe(0);
    expect(n1.isFenced).toBe(true);
    expect(alive(old.pid!)).toBe(false);
    expect(n1.replicaIds).toEqual([]);
    const routes = (await routesOf(kv, "p"))!;
    expectClose(await predict(routes.routes[0]!.subject), linearPredict(LR, ROWS));

    proxy.heal();
    await settled("n1 heartbeats again", async () => {
      const e = await liveness.get(keys.node("n1"));
      return e?.operation === "PUT" && !n1.isFenced ? true : undefined;
    });
    // Its killed replica's status is cleared, and nothing is started on n1 again: the work stays on n2.
    await settled("the fenced replica's status cleared", async () =>
      (await status(old.replica_id)) === undefined ? true : undefined,
    );
    expect(await nodesOf(kv)).toEqual(["n2"]);
    expect(n1.replicaIds).toEqual([]);
    expectClose(await predict(routes.routes[0]!.subject), linearPredict(LR, ROWS));
  });
});
