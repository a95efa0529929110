// The router's shadow traffic against a real nats-server, with replica doubles on the route subjects: what a
// mirror carries and where it goes, what is counted when the shadow fails, has no replica or is too slow, and
// that the primary's reply never changes; with capture on, a mirror's reply is captured beside its primary's
// capture exactly when the primary's is.
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { headers as natsHeaders } from "@nats-io/transport-node";
import {
  CaptureRecord,
  clusterNames,
  type EndpointRoutes,
  H,
  keys,
  type LiveRoute,
  type RouterStatsSnapshot,
  type RoutesShadow,
  type ShadowServedStats,
} from "@switchyard/protocol";
import { eventually } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import { startCapturingRouter } from "../src/capture.js";
import { Router } from "../src/router.js";
import { natsPerFile, putEndpoint, replicaDouble, route, uniqueCluster } from "./fixtures/doubles.js";

const files = natsPerFile();
const cleanups = files.cleanups;
const body = new TextEncoder().encode('{"inputs": [[1, 2], [3, 4]]}');
const utf8 = new TextDecoder();

/**
 * Routes with a shadow, as the coordinator writes them for a config with `shadow_config`, once the router saw
 * them (a router mirrors by the routes it holds: a request that finds none yet is routed, not mirrored).
 */
async function putShadowRoutes(
  router: Router,
  cluster: string,
  endpoint: string,
  routes: LiveRoute[],
  shadow: RoutesShadow,
  capture?: EndpointRoutes["capture"],
) {
  await putEndpoint(files.nc(), cluster, endpoint);
  const kv = await new Kvm(files.nc()).create(clusterNames(cluster).buckets.cluster);
  const record: EndpointRoutes = {
    endpoint,
    config_version: 1,
    routes,
    shadow,
    updated_at: Date.now(),
    ...(capture ? { capture } : {}),
  };
  await kv.put(keys.routes(endpoint), JSON.stringify(record));
  await eventually(() => router.routesOf(endpoint)?.shadow, "the router holds the shadow routes");
}

/** A router publishing its stats every 50 ms, and the last snapshot it published. */
async function setup() {
  const cluster = uniqueCluster();
  const names = clusterNames(cluster);
  let last: RouterStatsSnapshot | undefined;
  const sub = files.nc().subscribe(names.subjects.routerStats("*"), {
    callback: (_err, msg) => {
      last = msg.json<RouterStatsSnapshot>();
    },
  });
  const router = await Router.start(files.nc(), { cluster, stats: { role: "sdk", intervalMs: 50 } });
  cleanups.push(
    () => router.close(),
    () => sub.unsubscribe(),
  );
  /** The router's counts for a shadow, from a snapshot taken after `since` (epoch ms) when given. */
  const shadowStats = (endpoint: string, served: string, since = 0): ShadowServedStats | undefined =>
    last && last.at > since ? last.shadow?.[endpoint]?.[served] : undefined;
  return { cluster, router, shadowStats };
}

const track = <T extends { stop(): void }>(d: T): T => {
  cleanups.push(() => d.stop());
  return d;
};

describe("shadow traffic in the router", () => {
  it("mirrors the body and headers to the shadow's subject and compares its predictions", async () => {
    const { cluster, router, shadowStats } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const b = route(cluster, "ep", "b", 0);
    track(replicaDouble(files.nc(), a, () => ({ body: { predictions: [1, 0] } })));
    const shadow = track(replicaDouble(files.nc(), b, () => ({ body: { predictions: [1, 1] } })));
    await putShadowRoutes(router, cluster, "ep", [a, b], {
      routes: [{ served_model_name: "b", mirror_percentage: 100 }],
      max_in_flight: 64,
    });
    const h = natsHeaders();
    h.set(H.contentType, "application/json");
    h.set(H.requestId, "req-1");
    const r = await router.invoke("ep", body, h);
    expect(r.route.served_model_name).toBe("a");
    expect(JSON.parse(utf8.decode(r.data))).toEqual({ predictions: [1, 0] });

    const s = await eventually(() => {
      const s = shadowStats("ep", "b");
      return s?.compared === 2 ? s : undefined;
    }, "the mirror compared");
    expect(s).toMatchObject({ mirrored: 1, dropped: 0, errors: {}, compared: 2, agreed: 1 });
    expect(s.latency_us.count).toBe(1);
    expect(shadow.received).toHaveLength(1);
    expect(utf8.decode(shadow.received[0]!.data)).toBe(utf8.decode(body));
    expect(shadow.received[0]!.headers).toMatchObject({
      [H.contentType]: "application/json",
      [H.requestId]: "req-1",
      [H.deadline]: h.get(H.deadline),
    });

    // Aimed at one served model, a request is not the split's: nothing is mirrored.
    await router.invoke("ep", body, undefined, { servedModel: "a" });
    const after = Date.now();
    await eventually(() => (shadowStats("ep", "b", after)?.mirrored === 1 ? true : undefined), "stats");
    expect(shadow.received).toHaveLength(1);
  });

  it("captures a mirror's reply beside its primary's capture, only when the primary's was sampled", async () => {
    const cluster = uniqueCluster();
    const names = clusterNames(cluster);
    const jsm = await jetstreamManager(files.nc());
    await jsm.streams.add({ name: names.streams.capture, subjects: [names.subjects.allCapture] });
    cleanups.push(async () => {
      await jsm.streams.delete(names.streams.capture);
    });
    // The sampling draws alternate: requests r0, r2, r4 are captured, r1, r3, r5 are not.
    let draws = 0;
    const { router, capture } = await startCapturingRouter(files.nc(), {
      cluster,
      capture: { random: () => (draws++ % 2 === 0 ? 0 : 0.99) },
    });
    cleanups.push(() => router.close());
    const a = route(cluster, "ep", "a", 100);
    const b = route(cluster, "ep", "b", 0);
    track(replicaDouble(files.nc(), a, () => ({ body: { predictions: [1, 0] } })));
    const shadow = track(replicaDouble(files.nc(), b, () => ({ body: { predictions: [1, 1] } })));
    await putShadowRoutes(
      router,
      cluster,
      "ep",
      [a, b],
      { routes: [{ served_model_name: "b", mirror_percentage: 100 }], max_in_flight: 64 },
      { subject_prefix: names.subjects.capturePrefix("ep"), sampling_rate: 0.5 },
    );
    for (let i = 0; i < 6; i++) {
      const h = natsHeaders();
      h.set(H.contentType, "application/json");
      h.set(H.requestId, `r${i}`);
      expect((await router.invoke("ep", body, h)).errorCode).toBeUndefined();
    }
    // Every request was mirrored; three primaries and their three mirrors were captured.
    await eventually(() => (shadow.received.length === 6 ? true : undefined), "six mirrors");
    await eventually(() => (capture.counts().ep?.captured === 6 ? true : undefined), "six captures");
    expect(capture.counts().ep).toEqual({ captured: 6, dropped: 0 });
    const stored = async (subject: string) => {
      const m = await jsm.streams.getMessage(names.streams.capture, { last_by_subj: subject });
      return m ? CaptureRecord.parse(m.json()) : null;
    };
    for (let i = 0; i < 6; i++) {
      const primary = await stored(names.subjects.capture("ep", `r${i}`));
      const mirror = await stored(names.subjects.captureShadow("ep", `r${i}`, "b"));
      if (i % 2 === 1) {
        expect(primary).toBeNull();
        expect(mirror).toBeNull();
        continue;
      }
      expect(primary).toMatchObject({ request_id: `r${i}`, served_model_name: "a", shadow: false });
      expect(mirror).toMatchObject({
        request_id: `r${i}`,
        served_model_name: "b",
        shadow: true,
        status_code: 200,
        error_code: null,
        sampling_fraction: 0.5,
        response: '{"predictions":[1,1]}',
      });
    }
  });

  it("counts a shadow's errors, or its missing replicas, and leaves the primary's reply alone", async () => {
    const { cluster, router, shadowStats } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const fails = route(cluster, "ep", "fails", 0);
    const gone = route(cluster, "ep", "gone", 0);
    const wakes: string[] = [];
    const wakeSub = files.nc().subscribe(clusterNames(cluster).subjects.scaleWake("ep"), {
      callback: (_err, msg) => {
        wakes.push(msg.json<{ served_model: string }>().served_model);
      },
    });
    cleanups.push(() => wakeSub.unsubscribe());
    track(replicaDouble(files.nc(), a, () => ({ body: { predictions: [7] } })));
    track(
      replicaDouble(files.nc(), fails, () => ({ error: { code: "BAD_REQUEST", message: "cannot score" } })),
    );
    await putShadowRoutes(router, cluster, "ep", [a, fails, gone], {
      routes: [
        { served_model_name: "fails", mirror_percentage: 100 },
        { served_model_name: "gone", mirror_percentage: 100 },
      ],
      max_in_flight: 64,
    });
    for (let i = 0; i < 5; i++) {
      const r = await router.invoke("ep", body);
      expect(r.errorCode).toBeUndefined();
      expect(JSON.parse(utf8.decode(r.data))).toEqual({ predictions: [7] });
    }
    const f = await eventually(
      () => (shadowStats("ep", "fails")?.errors.BAD_REQUEST === 5 ? shadowStats("ep", "fails") : undefined),
      "the failing shadow's errors",
    );
    expect(f).toMatchObject({ mirrored: 5, errors: { BAD_REQUEST: 5 }, compared: 0, agreed: 0 });
    const g = await eventually(
      () =>
        shadowStats("ep", "gone")?.errors.TEMPORARILY_UNAVAILABLE === 5
          ? shadowStats("ep", "gone")
          : undefined,
      "the replica-less shadow's errors",
    );
    expect(g).toMatchObject({ mirrored: 5, errors: { TEMPORARILY_UNAVAILABLE: 5 }, compared: 0 });
    // The autoscaler is asked for a replica of the shadow (a shadow scaled to zero comes back this way).
    await eventually(() => (wakes.includes("gone") ? true : undefined), "a scale wake for the shadow");
    expect(wakes.every((w) => w === "gone")).toBe(true);
  });

  it("does not compare a mirror whose primary failed", async () => {
    const { cluster, router, shadowStats } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const b = route(cluster, "ep", "b", 0);
    track(replicaDouble(files.nc(), a, () => ({ error: { code: "BAD_REQUEST", message: "no" } })));
    track(replicaDouble(files.nc(), b, () => ({ body: { predictions: [1] } })));
    await putShadowRoutes(router, cluster, "ep", [a, b], {
      routes: [{ served_model_name: "b", mirror_percentage: 100 }],
      max_in_flight: 64,
    });
    for (let i = 0; i < 3; i++) expect((await router.invoke("ep", body)).errorCode).toBe("BAD_REQUEST");
    const s = await eventually(
      () => (shadowStats("ep", "b")?.latency_us.count === 3 ? shadowStats("ep", "b") : undefined),
      "three mirrors answered",
    );
    expect(s).toMatchObject({ mirrored: 3, errors: {}, compared: 0, agreed: 0 });
  });

  it("keeps at most max_in_flight mirrors outstanding and counts the ones it drops", async () => {
    const { cluster, router, shadowStats } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const slow = route(cluster, "ep", "slow", 0);
    track(replicaDouble(files.nc(), a, () => ({ body: { predictions: [0] } })));
    // The shadow answers only once the test lets it: its mirrors stay outstanding until then.
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const shadow = track(
      replicaDouble(files.nc(), slow, async () => {
        await released;
        return { body: { predictions: [0] } };
      }),
    );
    await putShadowRoutes(router, cluster, "ep", [a, slow], {
      routes: [{ served_model_name: "slow", mirror_percentage: 100 }],
      max_in_flight: 2,
    });
    // Sequentially: each primary is answered while the first two mirrors wait.
    for (let i = 0; i < 6; i++) {
      const r = await router.invoke("ep", body);
      expect(JSON.parse(utf8.decode(r.data))).toEqual({ predictions: [0] });
    }
    await eventually(() => (shadow.received.length === 2 ? true : undefined), "two mirrors received");
    release();
    const s = await eventually(
      () => (shadowStats("ep", "slow")?.compared === 2 ? shadowStats("ep", "slow") : undefined),
      "the two mirrors compared",
    );
    expect(s).toMatchObject({ mirrored: 2, dropped: 4, errors: {}, compared: 2, agreed: 2 });
    // Answered, they no longer count against the bound.
    await router.invoke("ep", body);
    await eventually(() => (shadowStats("ep", "slow")?.mirrored === 3 ? true : undefined), "a third mirror");
  });

  it("mirrors about mirror_percentage of the requests", async () => {
    const { cluster, router, shadowStats } = await setup();
    const a = route(cluster, "ep", "a", 100);
    const b = route(cluster, "ep", "b", 0);
    track(replicaDouble(files.nc(), a));
    track(replicaDouble(files.nc(), b));
    await putShadowRoutes(router, cluster, "ep", [a, b], {
      routes: [{ served_model_name: "b", mirror_percentage: 25 }],
      max_in_flight: 1_000,
    });
    const n = 1_000;
    for (let i = 0; i < n; i += 100) {
      await Promise.all(Array.from({ length: 100 }, () => router.invoke("ep", body)));
    }
    const sent = Date.now();
    const s = await eventually(() => {
      const s = shadowStats("ep", "b", sent);
      return s && s.latency_us.count === s.mirrored ? s : undefined;
    }, "every mirror answered");
    // σ of the count is ~14 at n = 1,000 and p = 0.25: 80 is over 5σ.
    expect(Math.abs(s.mirrored - 250)).toBeLessThanOrEqual(80);
    expect(s.dropped).toBe(0);
  });
});
