// Who provisions the cluster's KV buckets and object store. A role started on its own (`switchyard coordinator`,
// `node`, `bridge`, on any host, in any order) makes every one of them at start; `switchyard up`, which runs all
// three in one process, makes them once and tells its roles (bucketsProvisioned), which then open only what they
// use. What is observed is the streams a fresh cluster has after one role starts.
import path from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { Coordinator } from "@switchyard/coordinator";
import { BUCKET_OPTIONS, type BucketName, connectNats } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";
import { tempDir } from "@switchyard/testkit";
import { type Logger, pino } from "pino";
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

/** The KV buckets and object stores of `cluster` (their stream names), sorted. */
async function storesOf(conn: NatsConnection, cluster: string): Promise<string[]> {
  const jsm = await jetstreamManager(conn);
  const names: string[] = [];
  for await (const name of jsm.streams.names()) {
    if (name.startsWith(`KV_${cluster}_`) || name.startsWith(`OBJ_${cluster}_`)) names.push(name);
  }
  return names.sort();
}

/** The streams of `cluster`'s KV buckets `kv` and object stores `obj`, sorted as storesOf sorts them. */
function streams(cluster: string, kv: readonly BucketName[], obj: readonly "artifacts"[]): string[] {
  const { buckets } = clusterNames(cluster);
  return [...kv.map((b) => `KV_${buckets[b]}`), ...obj.map((o) => `OBJ_${buckets[o]}`)].sort();
}

const EVERY_BUCKET = Object.keys(BUCKET_OPTIONS) as BucketName[];

/** Each role as `up` starts it in-process, with what every role shares: the server, the cluster, the option. */
type Start = (common: {
  nats: { servers: string };
  cluster: string;
  logger: Logger;
  bucketsProvisioned?: boolean;
}) => Promise<() => Promise<unknown>>;

const ROLES: Record<string, Start> = {
  "node agent": async (common) => {
    const agent = new NodeAgent({ ...common, threads: 1, cacheDir: tempDir("sy-prov-"), warmSpare: false });
    await agent.start();
    return () => agent.stop();
  },
  coordinator: async (common) => {
    const coordinator = new Coordinator(common);
    await coordinator.start();
    return () => coordinator.stop();
  },
  bridge: async (common) => {
    const bridge = await startBridgeRole({
      ...common,
      host: "127.0.0.1",
      port: 0,
      auth: false,
      replication: 1,
    });
    return () => bridge.stop();
  },
};

/** Starts `role` against a new cluster and returns the cluster's name. */
async function startOnFreshCluster(role: string, bucketsProvisioned?: boolean): Promise<string> {
  const cluster = `p${Math.random().toString(36).slice(2, 9)}`;
  const common = { nats: { servers: inject("natsUrl") }, cluster, logger: pino({ level: "silent" }) };
  stops.push(await ROLES[role]!(bucketsProvisioned ? { ...common, bucketsProvisioned } : common));
  return cluster;
}

describe("a role started on its own", () => {
  it.each([
    ["node agent", []],
    ["coordinator", ["artifacts"]],
    ["bridge", ["artifacts"]],
  ] as const)("(%s) makes every KV bucket of the cluster at start", async (role, obj) => {
    const cluster = await startOnFreshCluster(role);
    expect(await storesOf(nc, cluster)).toEqual(streams(cluster, EVERY_BUCKET, obj));
  });
});

describe("a role told the buckets are provisioned", () => {
  it.each([
    ["node agent", ["cluster", "liveness"], []],
    ["coordinator", ["cluster", "endpoints", "jobs", "liveness", "models"], ["artifacts"]],
    ["bridge", ["cluster", "endpoints", "liveness", "models"], ["artifacts"]],
  ] as const)("(%s) opens only the buckets it uses", async (role, kv, obj) => {
    const cluster = await startOnFreshCluster(role, true);
    expect(await storesOf(nc, cluster)).toEqual(streams(cluster, kv, obj));
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
      const found = await storesOf(admin, cluster);
      expect(found).toEqual(streams(cluster, EVERY_BUCKET, ["artifacts"]));
      const jsm = await jetstreamManager(admin);
      for (const name of found) expect((await jsm.streams.info(name)).config.num_replicas).toBe(1);
    } finally {
      await admin.close();
    }
  });
});
