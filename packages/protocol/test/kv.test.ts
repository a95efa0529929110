// listKeys against a real nats-server: a key rewritten continuously is never left out of a listing.
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectNats, listKeys } from "../src/mod.js";

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
    const kv = await new Kvm(nc).create(`t${Math.random().toString(36).slice(2, 10)}`, { history: 1 });
    await kv.put("node.a", "1");
    await kv.put("node.b", "1");
    await kv.put("assign.a.r1", "1");
    expect((await listKeys(kv, "node.*")).sort()).toEqual(["node.a", "node.b"]);
    expect((await listKeys(kv)).sort()).toEqual(["assign.a.r1", "node.a", "node.b"]);
    expect(await listKeys(kv, "routes.*")).toEqual([]);
  });

  it("never misses a key that is being rewritten while it lists", async () => {
    const kv = await new Kvm(nc).create(`t${Math.random().toString(36).slice(2, 10)}`, { history: 1 });
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
