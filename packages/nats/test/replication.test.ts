// The replication setting against one real nats-server (the test setup's): provisioning creates every bucket
// with the count, and a new stream the server cannot keep (one server, three copies) is refused with the
// server's reason. Three servers, and existing streams brought to the count: test/nats-cluster.test.ts.
import { jetstreamManager } from "@nats-io/jetstream";
import { clusterNames } from "@switchyard/protocol";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  BUCKET_OPTIONS,
  connectNats,
  ensureStream,
  provisionBuckets,
  type ReplicationLog,
} from "../src/mod.js";

type Connection = Awaited<ReturnType<typeof connectNats>>;
let nc: Connection;
beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl") });
});
afterAll(async () => {
  await nc?.close();
});

/** A log that keeps what it was told. */
function recording(): ReplicationLog & { lines: Array<{ level: string; detail: object; msg: string }> } {
  const lines: Array<{ level: string; detail: object; msg: string }> = [];
  return {
    lines,
    info: (detail, msg) => lines.push({ level: "info", detail, msg }),
    warn: (detail, msg) => lines.push({ level: "warn", detail, msg }),
  };
}

const fresh = () => clusterNames(`t${Math.random().toString(36).slice(2, 10)}`);

describe("provisionBuckets", () => {
  it("creates every bucket of the cluster with the replica count, once however often it runs", async () => {
    const names = fresh();
    const log = recording();
    await provisionBuckets(nc, names, { replicas: 1, log });
    await provisionBuckets(nc, names, { replicas: 1, log });
    const jsm = await jetstreamManager(nc);
    const buckets = Object.keys(BUCKET_OPTIONS) as Array<keyof typeof BUCKET_OPTIONS>;
    const infos = await Promise.all(buckets.map((b) => jsm.streams.info(`KV_${names.buckets[b]}`)));
    expect(infos.map((i) => i.config.num_replicas)).toEqual(buckets.map(() => 1));
    expect(log.lines).toEqual([]);
  });
});

describe("ensureStream", () => {
  it("refuses to create a stream the server cannot keep, with the server's reason", async () => {
    const names = fresh();
    const jsm = await jetstreamManager(nc);
    const log = recording();
    await expect(
      ensureStream(
        jsm,
        { name: names.streams.capture, subjects: [`${names.cluster}.y.>`] },
        { replicas: 3, log },
      ),
    ).rejects.toThrow(/replicas > 1 not supported in non-clustered mode/);
  });
});
