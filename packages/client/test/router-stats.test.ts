// A router's own counts: unknown endpoint names are counted by name up to a bound, then together.
import type { NatsConnection } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { clusterNames, type LiveRoute } from "@switchyard/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { type InvokeOutcome, MAX_UNROUTED_ENDPOINTS, OTHER_ENDPOINTS, RouterStats } from "../src/mod.js";

/** Never publishes: the snapshot is read directly. */
const closedConnection = { isClosed: () => true, publish: () => {} } as unknown as NatsConnection;

const outcome = (endpoint: string, route?: LiveRoute): InvokeOutcome => ({
  endpoint,
  requestId: "r",
  route,
  startedAt: 0,
  durationUs: 120,
  errorCode: route ? undefined : "RESOURCE_DOES_NOT_EXIST",
  errorMessage: undefined,
  request: new Uint8Array(),
  requestHeaders: natsHeaders(),
  reply: undefined,
  replyHeaders: undefined,
  held: false,
});

describe("RouterStats", () => {
  let stats: RouterStats | undefined;
  afterEach(() => stats?.close());

  it("counts 100 unknown endpoint names by name and the rest under '*', known endpoints always by name", () => {
    stats = new RouterStats(closedConnection, clusterNames("rs"), { role: "test" });
    for (let i = 0; i < 150; i++) stats.observe(outcome(`nope-${i}`));
    stats.observe(outcome("nope-3"));
    const route: LiveRoute = {
      served_model_name: "a-1",
      traffic_percentage: 100,
      subject: "rs.rt.real.a-1.g",
      model_name: "a",
      model_version: 1,
    };
    stats.observe(outcome("real", route));
    const e = stats.snapshot().endpoints;
    expect(MAX_UNROUTED_ENDPOINTS).toBe(100);
    expect(Object.keys(e)).toHaveLength(102);
    expect(e["nope-3"]![""]!.requests).toBe(2);
    expect(e["nope-99"]![""]!.requests).toBe(1);
    expect(e["nope-100"]).toBeUndefined();
    expect(e[OTHER_ENDPOINTS]![""]!.requests).toBe(50);
    expect(e[OTHER_ENDPOINTS]![""]!.errors).toEqual({ RESOURCE_DOES_NOT_EXIST: 50 });
    expect(e.real!["a-1"]!.requests).toBe(1);
  });
});
