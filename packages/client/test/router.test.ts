// The router against a real nats-server, with replica doubles on the route subjects and routes written to KV.
import { headers as natsHeaders } from "@nats-io/transport-node";
import { H } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { Router } from "../src/router.js";
import {
  natsPerFile,
  putEndpoint,
  putEndpointWithRoutes,
  putRoutes,
  type ReplicaDouble,
  rejection,
  replicaDouble,
  route,
  sleep,
  uniqueCluster,
} from "./fixtures/doubles.js";

const files = natsPerFile();
const cleanups = files.cleanups;

async function setup() {
  const cluster = uniqueCluster();
  const router = await Router.start(files.nc(), { cluster });
  cleanups.push(() => router.close());
  return { cluster, router };
}

function track(d: ReplicaDouble): ReplicaDouble {
  cleanups.push(() => d.stop());
  return d;
}

const utf8 = new TextDecoder();
const body = new TextEncoder().encode('{"inputs": [[1, 2]]}');
const text = (data: Uint8Array) => utf8.decode(data);

describe("Router", () => {
  it("splits 2,000 real requests by traffic_percentage", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 80);
    const b = route(cluster, "ep", "b", 20);
    track(replicaDouble(files.nc(), a));
    track(replicaDouble(files.nc(), b));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a, b]);
    const counts: Record<string, number> = { a: 0, b: 0 };
    const n = 2_000;
    for (let i = 0; i < n; i += 100) {
      const replies = await Promise.all(Array.from({ length: 100 }, () => router.invoke("ep", body)));
      for (const r of replies) counts[r.route.served_model_name]! += 1;
    }
    // σ of the share is ~0.9 points at n = 2,000: 5 points is over 5σ.
    expect(Math.abs((100 * counts.a!) / n - 80)).toBeLessThanOrEqual(5);
    expect(counts.a! + counts.b!).toBe(n);
  });

  it("sends a sticky key to the same served model every time", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 50);
    const b = route(cluster, "ep", "b", 50);
    track(replicaDouble(files.nc(), a));
    track(replicaDouble(files.nc(), b));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a, b]);
    const seen = new Set<string>();
    for (let k = 0; k < 40; k++) {
      const picks = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const r = await router.invoke("ep", body, undefined, { routeKey: `customer-${k}` });
        picks.add(text(r.data));
      }
      expect(picks.size).toBe(1);
      seen.add([...picks][0]!);
    }
    expect(seen.size).toBe(2); // keys spread over both served models
  });

  it("follows route changes through the watch", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const b = route(cluster, "ep", "b", 0);
    track(replicaDouble(files.nc(), a));
    track(replicaDouble(files.nc(), b));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a, b]);
    expect(text((await router.invoke("ep", body)).data)).toBe('{"predictions":["a"]}');
    await putRoutes(files.nc(), cluster, "ep", [
      { ...a, traffic_percentage: 0 },
      { ...b, traffic_percentage: 100 },
    ]);
    await expect.poll(() => router.routesOf("ep")?.routes[1]?.traffic_percentage).toBe(100);
    for (let i = 0; i < 20; i++) expect((await router.invoke("ep", body)).route.served_model_name).toBe("b");
  });

  it("reaches a named served model outside the split, and 404s an unknown one", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const b = route(cluster, "ep", "b", 0);
    track(replicaDouble(files.nc(), a));
    track(replicaDouble(files.nc(), b));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a, b]);
    const r = await router.invoke("ep", body, undefined, { servedModel: "b" });
    expect(text(r.data)).toBe('{"predictions":["b"]}');
    const err = await rejection(router.invoke("ep", body, undefined, { servedModel: "zzz" }));
    expect(err.code).toBe("RESOURCE_DOES_NOT_EXIST");
    expect(err.message).toContain("'zzz'");
  });

  it("picks the served model of a model version", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 90, "m", 3);
    const b = route(cluster, "ep", "b", 10, "m", 4);
    track(replicaDouble(files.nc(), a));
    track(replicaDouble(files.nc(), b));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a, b]);
    for (let i = 0; i < 10; i++) {
      expect((await router.invoke("ep", body, undefined, { modelVersion: 4 })).route.served_model_name).toBe(
        "b",
      );
    }
    expect((await rejection(router.invoke("ep", body, undefined, { modelVersion: 9 }))).code).toBe(
      "RESOURCE_DOES_NOT_EXIST",
    );
  });

  it("sets the deadline and a request id, and keeps a given one", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const d = track(replicaDouble(files.nc(), a));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const deadline = Date.now() + 5_000;
    const r1 = await router.invoke("ep", body, undefined, { deadlineMs: deadline });
    expect(d.received[0]!.headers[H.deadline]).toBe(String(deadline));
    expect(r1.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(d.received[0]!.headers[H.requestId]).toBe(r1.requestId);
    expect(text(d.received[0]!.data)).toBe(text(body));
    const h = natsHeaders();
    h.set(H.requestId, "my-id");
    h.set(H.contentType, "text/csv");
    const r2 = await router.invoke("ep", body, h);
    expect(r2.requestId).toBe("my-id");
    expect(d.received[1]!.headers[H.requestId]).toBe("my-id");
    expect(d.received[1]!.headers[H.contentType]).toBe("text/csv");
    expect(r2.headers?.get(H.servedModel)).toBe("a");
  });

  it("retries once on a retryable error, on another replica of the same served model", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 100);
    // Two replicas in one queue group: the first request anywhere fails as overloaded, the retry succeeds.
    let calls = 0;
    const answer = () =>
      ++calls === 1
        ? { error: { code: "TEMPORARILY_UNAVAILABLE", message: "overloaded" } }
        : { body: { predictions: [1] } };
    const r1 = track(replicaDouble(files.nc(), a, answer, "r1"));
    const r2 = track(replicaDouble(files.nc(), a, answer, "r2"));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const r = await router.invoke("ep", body);
    expect(r.errorCode).toBeUndefined();
    expect(text(r.data)).toBe('{"predictions":[1]}');
    expect(r1.received.length + r2.received.length).toBe(2);
  });

  it("retries a retryable error only once, and never a non-retryable one", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const b = route(cluster, "ep2", "b", 100);
    const da = track(
      replicaDouble(files.nc(), a, () => ({
        error: { code: "TEMPORARILY_UNAVAILABLE", message: "overloaded" },
      })),
    );
    const db = track(
      replicaDouble(files.nc(), b, () => ({
        error: { code: "INVALID_PARAMETER_VALUE", message: "bad column" },
      })),
    );
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    await putEndpointWithRoutes(files.nc(), cluster, "ep2", [b]);
    const ra = await router.invoke("ep", body);
    expect(ra.errorCode).toBe("TEMPORARILY_UNAVAILABLE");
    expect(da.received.length).toBe(2);
    const rb = await router.invoke("ep2", body);
    expect(rb.errorCode).toBe("INVALID_PARAMETER_VALUE");
    expect(text(rb.data)).toBe('{"error_code":"INVALID_PARAMETER_VALUE","message":"bad column"}');
    expect(db.received.length).toBe(1);
  });

  it("holds a request while no replica answers, until one does", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 100);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const started = Date.now();
    const pending = router.invoke("ep", body, undefined, { deadlineMs: Date.now() + 10_000 });
    let settled = false;
    const markSettled = () => {
      settled = true;
    };
    pending.then(markSettled, markSettled);
    // The hold itself is under test: time passes with no responder (several no-responders backoffs),
    // and the request must still be waiting, not failed.
    await sleep(400);
    expect(settled).toBe(false);
    track(replicaDouble(files.nc(), a));
    const r = await pending;
    expect(text(r.data)).toBe('{"predictions":["a"]}');
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it("holds a request for an endpoint that exists but has no routes yet", async () => {
    const { cluster, router } = await setup();
    await putEndpoint(files.nc(), cluster, "ep");
    const pending = router.invoke("ep", body, undefined, { deadlineMs: Date.now() + 10_000 });
    let settled = false;
    const markSettled = () => {
      settled = true;
    };
    pending.then(markSettled, markSettled);
    // The hold itself is under test: the request must find the endpoint without routes and keep waiting
    // through a few backoffs, rather than fail, until routes arrive.
    await sleep(300);
    expect(settled).toBe(false);
    const a = route(cluster, "ep", "a", 100);
    track(replicaDouble(files.nc(), a));
    await putRoutes(files.nc(), cluster, "ep", [a]);
    expect(text((await pending).data)).toBe('{"predictions":["a"]}');
  });

  it("answers DEADLINE_EXCEEDED when the replica does not answer in time", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 100);
    track(replicaDouble(files.nc(), a, () => ({ silent: true })));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const started = Date.now();
    const err = await rejection(router.invoke("ep", body, undefined, { deadlineMs: Date.now() + 300 }));
    expect(err.code).toBe("DEADLINE_EXCEEDED");
    expect(err.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("answers DEADLINE_EXCEEDED when nothing answers before the deadline", async () => {
    const { cluster, router } = await setup();
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [route(cluster, "ep", "a", 100)]);
    await putEndpoint(files.nc(), cluster, "empty");
    for (const ep of ["ep", "empty"]) {
      const started = Date.now();
      const err = await rejection(router.invoke(ep, body, undefined, { deadlineMs: Date.now() + 300 }));
      expect(err.code).toBe("DEADLINE_EXCEEDED");
      expect(Date.now() - started).toBeLessThan(2_000);
    }
  });

  it("answers RESOURCE_DOES_NOT_EXIST for an unknown endpoint", async () => {
    const { router } = await setup();
    for (const ep of ["nope", "bad name!", "a.b"]) {
      const err = await rejection(router.invoke(ep, body));
      expect(err.code).toBe("RESOURCE_DOES_NOT_EXIST");
    }
  });

  it("finds routes written before it started (before the watch catches up)", async () => {
    const cluster = uniqueCluster();
    const a = route(cluster, "ep", "a", 100);
    track(replicaDouble(files.nc(), a));
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const router = await Router.start(files.nc(), { cluster });
    cleanups.push(() => router.close());
    expect(text((await router.invoke("ep", body)).data)).toBe('{"predictions":["a"]}');
  });
});
