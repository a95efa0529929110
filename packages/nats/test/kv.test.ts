// The KV helpers against a real nats-server: listings never miss a key being rewritten, reads go through a
// schema with one failure rule each way, compare-and-set loses no concurrent update, and buckets are
// provisioned with the replication setting.

import { jetstreamManager } from "@nats-io/jetstream";
import { clusterNames, SwitchyardError } from "@switchyard/protocol";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import {
  BUCKET_OPTIONS,
  casUpdate,
  connectNats,
  ensureStream,
  listKeys,
  openBucket,
  provisionBuckets,
  type ReplicationLog,
  readAll,
  readValue,
} from "../src/mod.js";

const freshBucket = () =>
  openBucket(nc, clusterNames(`t${Math.random().toString(36).slice(2, 10)}`), "cluster");

type Connection = Awaited<ReturnType<typeof connectNats>>;
let nc: Connection;
beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl") });
});
afterAll(async () => {
  await nc?.close();
});

describe("listKeys", () => {
  it("lists keys by filter, with dots in keys", async () => {
    const kv = await freshBucket();
    await kv.put("node.a", "1");
    await kv.put("node.b", "1");
    await kv.put("assign.a.r1", "1");
    expect((await listKeys(kv, "node.*")).sort()).toEqual(["node.a", "node.b"]);
    expect((await listKeys(kv)).sort()).toEqual(["assign.a.r1", "node.a", "node.b"]);
    expect(await listKeys(kv, "routes.*")).toEqual([]);
  });

  it("never misses a key that is being rewritten while it lists", async () => {
    const kv = await freshBucket();
    await kv.put("node.busy", "0");
    await kv.put("node.quiet", "0");
    let stop = false;
    const writer = (async () => {
      for (let i = 1; !stop; i++) await kv.put("node.busy", String(i));
    })();
    let listings = 0;
    try {
      const end = Date.now() + 2_000;
      while (Date.now() < end) {
        expect((await listKeys(kv, "node.*")).sort()).toEqual(["node.busy", "node.quiet"]);
        listings++;
      }
    } finally {
      stop = true;
      await writer;
    }
    expect(listings).toBeGreaterThan(20);
  });
});

const Counter = z.object({ n: z.number().int() }).strict();

describe("readValue and readAll", () => {
  it("read through the schema: a bad record fails naming it, or is skipped and reported", async () => {
    const kv = await freshBucket();
    await kv.put("c.good", JSON.stringify({ n: 1 }));
    await kv.put("c.bad", JSON.stringify({ n: "one" }));
    expect(await readValue(kv, "c.good", Counter, "counter")).toMatchObject({
      key: "c.good",
      value: { n: 1 },
    });
    expect(await readValue(kv, "c.none", Counter, "counter")).toBeNull();
    const err = await readValue(kv, "c.bad", Counter, "counter").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchyardError);
    expect(err).toMatchObject({ code: "INTEGRITY_ERROR" });
    expect((err as Error).message).toMatch(/record 'c.bad' in t\w+_cluster is not a valid counter/);
    await expect(readAll(kv, "c.*", Counter, "counter")).rejects.toMatchObject({ code: "INTEGRITY_ERROR" });
    const skipped: string[] = [];
    const all = await readAll(kv, "c.*", Counter, "counter", {
      invalid: "skip",
      onSkip: (key) => skipped.push(key),
    });
    expect(all.map((r) => r.value)).toEqual([{ n: 1 }]);
    expect(skipped).toEqual(["c.bad"]);
  });
});

describe("casUpdate", () => {
  it("applies every one of 40 concurrent increments exactly once", async () => {
    const kv = await freshBucket();
    const bump = () =>
      casUpdate(kv, "count", Counter, (cur) => ({ n: (cur?.n ?? 0) + 1 }), {
        what: "counter",
        attempts: 200,
      });
    await Promise.all(Array.from({ length: 40 }, bump));
    expect((await readValue(kv, "count", Counter, "counter"))?.value).toEqual({ n: 40 });
  });

  it("never retries an error that is not a revision conflict", async () => {
    const kv = await freshBucket();
    let calls = 0;
    const refused = casUpdate(
      kv,
      "count",
      Counter,
      () => {
        calls++;
        throw new SwitchyardError("RESOURCE_CONFLICT", "an update is in progress");
      },
      { what: "counter" },
    );
    await expect(refused).rejects.toThrow("an update is in progress");
    expect(calls).toBe(1);
    // A value the schema refuses is never written.
    await expect(
      casUpdate(kv, "count", Counter, () => ({ n: 0.5 }), { what: "counter" }),
    ).rejects.toMatchObject({ code: "INTERNAL_ERROR" });
    expect(await kv.get("count")).toBeNull();
  });
});

// The replication setting against one server: provisioning creates every bucket with the count, and a new
// stream the server cannot keep (one server, three copies) is refused with the server's reason. Three servers,
// and existing streams brought to the count: test/nats-cluster.test.ts.
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
