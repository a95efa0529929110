// Who provisions the cluster's KV buckets and object store. A role started on its own (`switchyard coordinator`,
// `node`, `bridge`, on any host, in any order) makes every one of them at start; `switchyard up`, which runs all
// three in one process, makes them once and tells its roles (bucketsProvisioned), which then open only what they
// use. What is observed is the streams a fresh cluster has after one role starts.
import path from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { Coordinator } from "@switchyard/coordinator";
import { BUCKET_OPTIONS, connectNats } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";
import { tempDir } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startBridgeRole } from "../packages/cli/src/roles.js";
import { startUp, type Up } from "./helpers/up.js";

let nc: NatsConnection;
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "provisioning-test" });
});

afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  await nc?.close();
}, 60_000);

const freshCluster = () => `p${Math.random().toString(36).slice(2, 9)}`;
const logger = pino({ level: "silent" });

/** The KV buckets and object stores of `cluster` (their stream names), sorted. */
async function storesOf(conn: NatsConnection, cluster: string): Promise<string[]> {
  const jsm = await jetstreamManager(conn);
  const names: string[] = [];
  for await (const name of jsm.streams.names()) {
    if (name.startsWith(`KV_${cluster}_`) || name.startsWith(`OBJ_${cluster}_`)) names.push(name);
  }
  return names.sort();
}

/** Every KV bucket's stream, as provisionBuckets makes them. */
const everyBucket = (cluster: string) => {
  const { buckets } = clusterNames(cluster);
  return Object.keys(BUCKET_OPTIONS).map((b) => `KV_${buckets[b as keyof typeof BUCKET_OPTIONS]}`);
};

async function startAgent(cluster: string, bucketsProvisioned?: boolean): Promise<void> {
  const agent = new NodeAgent({
    nats: { servers: inject("natsUrl") },
    cluster,
    nodeId: "prov-node",
    threads: 1,
    cacheDir: tempDir("sy-prov-"),
    warmSpare: false,
    logger,
    ...(bucketsProvisioned !== undefined ? { bucketsProvisioned } : {}),
  });
  await agent.start();
  stops.push(() => agent.stop());
}

async function startCoordinator(cluster: string, bucketsProvisioned?: boolean): Promise<void> {
  const coordinator = new Coordinator({
    nats: { servers: inject("natsUrl") },
    cluster,
    logger,
    ...(bucketsProvisioned !== undefined ? { bucketsProvisioned } : {}),
  });
  await coordinator.start();
  stops.push(() => coordinator.stop());
}

async function startBridge(cluster: string, bucketsProvisioned?: boolean): Promise<void> {
  const bridge = await startBridgeRole({
    nats: { servers: inject("natsUrl") },
    cluster,
    host: "127.0.0.1",
    port: 0,
    auth: false,
    replication: 1,
    logger,
    ...(bucketsProvisioned !== undefined ? { bucketsProvisioned } : {}),
  });
  stops.push(() => bridge.stop());
}

describe("a role started on its own", () => {
  it.each([
    ["node agent", startAgent, []],
    ["coordinator", startCoordinator, ["artifacts"]],
    ["bridge", startBridge, ["artifacts"]],
  ] as const)("(%s) makes every KV bucket of the cluster at start", async (_, start, objectStores) => {
    const cluster = freshCluster();
    await start(cluster);
    const { buckets } = clusterNames(cluster);
    expect(await storesOf(nc, cluster)).toEqual(
      [...everyBucket(cluster), ...objectStores.map((o) => `OBJ_${buckets[o]}`)].sort(),
    );
  });
});

describe("a role told the buckets are provisioned", () => {
  it("(node agent) opens only the buckets it uses", async () => {
    const cluster = freshCluster();
    await startAgent(cluster, true);
    expect(await storesOf(nc, cluster)).toEqual([`KV_${cluster}_cluster`, `KV_${cluster}_liveness`]);
  });

  it("(coordinator) opens only the buckets it uses", async () => {
    const cluster = freshCluster();
    await startCoordinator(cluster, true);
    expect(await storesOf(nc, cluster)).toEqual(
      [
        `KV_${cluster}_cluster`,
        `KV_${cluster}_endpoints`,
        `KV_${cluster}_jobs`,
        `KV_${cluster}_liveness`,
        `KV_${cluster}_models`,
        `OBJ_${cluster}_artifacts`,
      ].sort(),
    );
  });

  it("(bridge) opens only the buckets it uses", async () => {
    const cluster = freshCluster();
    await startBridge(cluster, true);
    expect(await storesOf(nc, cluster)).toEqual(
      [
        `KV_${cluster}_cluster`,
        `KV_${cluster}_endpoints`,
        `KV_${cluster}_liveness`,
        `KV_${cluster}_models`,
        `OBJ_${cluster}_artifacts`,
      ].sort(),
    );
  });
});

describe("switchyard up", () => {
  let up: Up | undefined;
  afterAll(async () => {
    await up?.stop();
  }, 60_000);

  it("makes every bucket and the object store before its roles, which skip it, with its replication", async () => {
    up = await startUp(path.join(tempDir("sy-prov-up-"), "data"));
    const { cluster, natsUrl } = up.info();
    const admin = await connectNats({ servers: natsUrl, name: "provisioning-test-up" });
    try {
      const streams = await storesOf(admin, cluster);
      expect(streams).toEqual(
        [...everyBucket(cluster), `OBJ_${clusterNames(cluster).buckets.artifacts}`].sort(),
      );
      const jsm = await jetstreamManager(admin);
      for (const name of streams) expect((await jsm.streams.info(name)).config.num_replicas).toBe(1);
    } finally {
      await admin.close();
    }
  });
});
