// Shadow traffic end to end through `switchyard up`: two classifiers that disagree on a known share of rows (their
// predictions computed here from their definitions), a shadow that always fails and a slow one behind a bound of
// one mirror. Primary responses never change; the agreement, errors and drops in the JSON summary and in
// Prometheus text equal what the test sent; a 0 % mirror sends nothing; bad shadow configs name their field.
// With capture on, every mirror is captured beside its primary (`shadow: true` in the export), and labels for the
// primaries' request ids score the shadow too: its accuracy equals one recomputed here from its predictions.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { EndpointAccuracy } from "@switchyard/protocol";
import { tempDir } from "@switchyard/testkit";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";
import { cli, clusterClient, eventually, startUp, type Up } from "./helpers/up.js";

type Cluster = ReturnType<typeof clusterClient>;
interface Row {
  x: number;
  y: number;
}

/** classify-a and classify-b as their model.ts define them. */
const classA = (r: Row) => (r.x + r.y > 0 ? 1 : 0);
const classB = (r: Row) => (r.x + 2 * r.y > 0.3 ? 1 : 0);

/** Request `i` of the test: four rows on a grid that crosses both classifiers' lines. */
const rowsOf = (i: number): Row[] =>
  [0, 1, 2, 3].map((j) => ({ x: ((i * 7 + j * 3) % 11) / 5 - 1, y: ((i * 5 + j * 2) % 9) / 4 - 1 }));

/** Debian's chromium, as test/dashboard.test.ts finds it; the page check is skipped without one. */
const CHROMIUM =
  process.env.SWITCHYARD_CHROMIUM || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);

const served = (name: string, model: string) => ({ name, entity_name: model, entity_version: "1" });

/** shadow-ab: classify-a takes every request; classify-b and the failing model get `mirror` % of them. */
const abConfig = (mirror: number) => ({
  served_entities: [
    served("a", "shadow.classify_a"),
    served("b", "shadow.classify_b"),
    served("fails", "shadow.fails"),
  ],
  traffic_config: { routes: [{ served_model_name: "a", traffic_percentage: 100 }] },
  shadow_config: {
    routes: [
      { served_model_name: "b", mirror_percentage: mirror },
      { served_model_name: "fails", mirror_percentage: mirror },
    ],
  },
});

describe("shadow traffic through switchyard up", () => {
  let up: Up;
  let call: Cluster["call"];
  let invoke: Cluster["invoke"];
  let waitReady: Cluster["waitReady"];
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });

  const register = async (name: string, fixture: string) => {
    const r = await cli(
      ["models", "register", name, copyFixture(fixture), "--flavor", "custom", "--json"],
      env(),
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  };
  const shadowOf = async (endpoint: string, name: string) => {
    const r = await call("GET", `/api/2.0/switchyard/metrics/endpoints/${endpoint}`);
    expect(r.status).toBe(200);
    return (r.json.shadow as { served_model_name: string; windows: Record<string, any> }[]).find(
      (s) => s.served_model_name === name,
    )?.windows["5m"];
  };
  /**
   * Sends requests `from`..`to`-1, `concurrency` at a time; every reply must be classify-a's, exactly. Returns
   * their request ids, in order.
   */
  const sendAll = async (endpoint: string, from: number, to: number, concurrency: number) => {
    const ids: string[] = [];
    for (let i = from; i < to; i += concurrency) {
      const batch = Array.from({ length: Math.min(concurrency, to - i) }, (_, k) => i + k);
      const replies = await Promise.all(batch.map((n) => invoke(endpoint, { dataframe_records: rowsOf(n) })));
      replies.forEach((r, k) => {
        expect(r.status, r.text).toBe(200);
        expect(r.json).toEqual({ predictions: rowsOf(batch[k]!).map(classA) });
        expect(r.headers.get("x-served-model")).toBe("a");
        ids.push(r.headers.get("x-request-id")!);
      });
    }
    return ids;
  };

  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-shadow-up-"), "data"));
    ({ call, invoke, waitReady } = clusterClient(up));
    await Promise.all([
      register("shadow.classify_a", "classify-a"),
      register("shadow.classify_b", "classify-b"),
      register("shadow.fails", "shadow-fails"),
      register("shadow.slow", "shadow-slow"),
    ]);
    for (const body of [
      {
        name: "shadow-ab",
        config: { ...abConfig(100), auto_capture_config: { catalog_name: "ml", schema_name: "shadow" } },
      },
      {
        name: "shadow-slow",
        config: {
          served_entities: [served("a", "shadow.classify_a"), served("slow", "shadow.slow")],
          traffic_config: {
            routes: [
              { served_model_name: "a", traffic_percentage: 100 },
              { served_model_name: "slow", traffic_percentage: 0 },
            ],
          },
          shadow_config: {
            routes: [{ served_model_name: "slow", mirror_percentage: 100 }],
            max_in_flight: 1,
          },
        },
      },
    ]) {
      const r = await call("POST", "/api/2.0/serving-endpoints", body);
      expect(r.status, r.text).toBe(200);
    }
    await Promise.all([waitReady("shadow-ab"), waitReady("shadow-slow")]);
  }, 180_000);

  afterAll(async () => {
    if (up) expect(await up.stop()).toBe(0);
  });

  it("refuses bad shadow configs, naming the field and what was expected", async () => {
    const bad = async (shadow: unknown, routes = [{ served_model_name: "a", traffic_percentage: 100 }]) => {
      const r = await call("POST", "/api/2.0/serving-endpoints", {
        name: "shadow-bad",
        config: {
          served_entities: [served("a", "shadow.classify_a"), served("b", "shadow.classify_b")],
          traffic_config: { routes },
          shadow_config: shadow,
        },
      });
      expect(r.status, r.text).toBe(400);
      expect(r.json.error_code).toBe("INVALID_PARAMETER_VALUE");
      return r.json.message as string;
    };
    expect(await bad({ routes: [{ served_model_name: "c", mirror_percentage: 10 }] })).toContain(
      "config.shadow_config.routes[0].served_model_name: 'c' is not the name of a served model of this config",
    );
    expect(
      await bad({ routes: [{ served_model_name: "b", mirror_percentage: 10 }] }, [
        { served_model_name: "a", traffic_percentage: 90 },
        { served_model_name: "b", traffic_percentage: 10 },
      ]),
    ).toContain(
      "config.shadow_config.routes[0].served_model_name: 'b' takes 10% of the traffic; a shadow takes none",
    );
    expect(await bad({ routes: [{ served_model_name: "b", mirror_percentage: 150 }] })).toContain(
      "config.shadow_config.routes.0.mirror_percentage: expected a number from 0 to 100",
    );
    expect(
      await bad({ routes: [{ served_model_name: "b", mirror_percentage: 5 }], max_in_flight: 0 }),
    ).toContain("config.shadow_config.max_in_flight: expected a positive integer");
    expect((await call("GET", "/api/2.0/serving-endpoints/shadow-bad")).status).toBe(404);
  });

  it("returns shadow_config with its default on GET", async () => {
    const r = await call("GET", "/api/2.0/serving-endpoints/shadow-slow");
    expect(r.json.config.shadow_config).toEqual({
      routes: [{ served_model_name: "slow", mirror_percentage: 100 }],
      max_in_flight: 1,
    });
    const ab = await call("GET", "/api/2.0/serving-endpoints/shadow-ab");
    expect(ab.json.config.shadow_config.max_in_flight).toBe(64);
  });

  const REQUESTS = 40;
  /** The request ids of requests 0..REQUESTS-1 of shadow-ab, each mirrored to b and to the failing shadow. */
  let ids: string[] = [];

  it("mirrors every request at 100 %, never changes the primary's reply, and counts agreement exactly", async () => {
    ids = await sendAll("shadow-ab", 0, REQUESTS, 8);
    const rows = Array.from({ length: REQUESTS }, (_, i) => rowsOf(i)).flat();
    const agreed = rows.filter((r) => classA(r) === classB(r)).length;
    // The grid must cross the lines between the two classifiers, or agreement could not be wrong.
    expect(agreed).toBeGreaterThan(0);
    expect(agreed).toBeLessThan(rows.length);

    const b = await eventually(
      async () => {
        const w = await shadowOf("shadow-ab", "b");
        return w?.agreement.compared === rows.length ? w : undefined;
      },
      "shadow b compared every row",
      30_000,
    );
    expect(b.mirrored).toBe(REQUESTS);
    expect(b.dropped).toBe(0);
    expect(b.errors).toEqual({});
    expect(b.agreement).toEqual({ compared: rows.length, agreed, rate: expect.any(Number) });
    expect(b.agreement.rate).toBeCloseTo(agreed / rows.length, 6);
    expect(b.latency_ms.p50).toBeGreaterThan(0);

    const printed = await cli(["endpoints", "metrics", "shadow-ab"], env());
    expect(printed.stderr).toBe("");
    expect(printed.stdout).toContain("shadow traffic");
    const shadowBlock = printed.stdout.slice(printed.stdout.indexOf("shadow traffic"));
    const line = shadowBlock.split("\n").find((l) => /^5m\s+b\s/.test(l));
    expect(line?.split(/\s+/).slice(0, 5)).toEqual(["5m", "b", String(REQUESTS), "0", "0"]);
    expect(line).toContain(`(${agreed}/${rows.length} rows)`);
  });

  it("captures each mirror beside its primary, and scores the shadow on the primary's labels", async () => {
    expect(ids).toHaveLength(REQUESTS);
    // The export holds every primary and, marked shadow, every mirror's reply: b's predictions, the failure's error.
    const file = path.join(tempDir("sy-shadow-capture-"), "ab.jsonl");
    type CaptureRow = Record<string, unknown> & { request_id: string; served_model_name: string };
    const table = await eventually(
      async () => {
        const r = await cli(["capture", "export", "shadow-ab", "--output", file, "--json"], env());
        expect(r.stderr).toBe("");
        if (JSON.parse(r.stdout).rows !== 3 * REQUESTS) return undefined;
        return readFileSync(file, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as CaptureRow);
      },
      "every primary and mirror captured",
      30_000,
    );
    ids.forEach((id, i) => {
      const of = (served: string) =>
        table.filter((r) => r.request_id === id && r.served_model_name === served);
      expect(of("a")).toMatchObject([{ shadow: false, status_code: 200, error_code: null }]);
      const [b] = of("b");
      expect(b).toMatchObject({ shadow: true, status_code: 200, error_code: null });
      expect(JSON.parse(b!.response as string)).toEqual({ predictions: rowsOf(i).map(classB) });
      expect(of("fails")).toMatchObject([{ shadow: true, error_code: "BAD_REQUEST" }]);
    });

    // The truth: y > 0. Neither classifier is always right, and they are wrong on different rows.
    const truth = (r: Row) => (r.y > 0 ? 1 : 0);
    const posted = await call(
      "POST",
      "/api/2.0/switchyard/endpoints/shadow-ab/feedback",
      ids.map((id, i) => ({ request_id: id, label: rowsOf(i).map(truth) })),
    );
    expect(posted.status, posted.text).toBe(200);
    const rows = ids.flatMap((_, i) => rowsOf(i));
    const want = (classify: (r: Row) => number) =>
      rows.filter((r) => classify(r) === truth(r)).length / rows.length;
    expect(want(classA)).not.toBe(want(classB));

    const accuracy = await eventually(
      async () => {
        const r = await call("GET", "/api/2.0/switchyard/metrics/endpoints/shadow-ab");
        const a = r.json.accuracy as EndpointAccuracy | undefined;
        const b = a?.served_models.find((s) => s.name === "b");
        return a?.labels.received === REQUESTS && b?.windows["1h"].labelled_requests === REQUESTS
          ? a
          : undefined;
      },
      "every label joined to the primary and to shadow b",
      60_000,
    );
    // One label per request, counted once, whatever the shadows scored; the failing shadow scored nothing.
    expect(accuracy.labels).toEqual({
      received: REQUESTS,
      joined: REQUESTS,
      unknown: 0,
      duplicate: 0,
      invalid: 0,
    });
    expect(accuracy.served_models.map((s) => s.name)).toEqual(["a", "b"]);
    for (const [name, classify] of [
      ["a", classA],
      ["b", classB],
    ] as const) {
      const w = accuracy.served_models.find((s) => s.name === name)!.windows["1h"];
      expect(w.labelled_requests).toBe(REQUESTS);
      expect(w.labelled_rows).toBe(rows.length);
      expect(Math.abs(w.accuracy! - want(classify))).toBeLessThan(1e-9);
    }
  });

  it("counts a failing shadow's errors and never lets them reach the primary", async () => {
    const fails = await eventually(
      async () => {
        const w = await shadowOf("shadow-ab", "fails");
        return w?.errors.BAD_REQUEST === REQUESTS ? w : undefined;
      },
      "every mirror to the failing shadow counted as an error",
      30_000,
    );
    expect(fails).toMatchObject({
      mirrored: REQUESTS,
      dropped: 0,
      errors: { BAD_REQUEST: REQUESTS },
      error_rate: 1,
      agreement: { compared: 0, agreed: 0, rate: 0 },
    });
    // The primary's own counts: every request succeeded.
    const m = await call("GET", "/api/2.0/switchyard/metrics/endpoints/shadow-ab");
    const a = m.json.served_models.find((s: { name: string }) => s.name === "a");
    expect(a.windows["5m"].requests).toBe(REQUESTS);
    expect(a.windows["5m"].errors).toEqual({});
    const text = (await call("GET", "/metrics")).text;
    const line = (name: string, labels: string) =>
      text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
    expect(line("switchyard_shadow_requests_total", 'endpoint="shadow-ab",served_model="b"')).toBe(
      `switchyard_shadow_requests_total{endpoint="shadow-ab",served_model="b"} ${REQUESTS}`,
    );
    expect(
      line("switchyard_shadow_errors_total", 'endpoint="shadow-ab",served_model="fails",code="BAD_REQUEST"'),
    ).toBe(
      `switchyard_shadow_errors_total{endpoint="shadow-ab",served_model="fails",code="BAD_REQUEST"} ${REQUESTS}`,
    );
    const rows = Array.from({ length: REQUESTS }, (_, i) => rowsOf(i)).flat();
    expect(line("switchyard_shadow_rows_compared_total", 'endpoint="shadow-ab",served_model="b"')).toBe(
      `switchyard_shadow_rows_compared_total{endpoint="shadow-ab",served_model="b"} ${rows.length}`,
    );
    expect(line("switchyard_shadow_rows_agreed_total", 'endpoint="shadow-ab",served_model="b"')).toBe(
      `switchyard_shadow_rows_agreed_total{endpoint="shadow-ab",served_model="b"} ${rows.filter((r) => classA(r) === classB(r)).length}`,
    );
    expect(text).toContain(
      `switchyard_shadow_duration_seconds_count{endpoint="shadow-ab",served_model="b"} ${REQUESTS}`,
    );
  });

  it.runIf(CHROMIUM !== undefined)(
    "shows each shadow's mirrors, errors and agreement on the dashboard",
    async () => {
      const browser = await chromium.launch({ executablePath: CHROMIUM! });
      try {
        const page = await browser.newPage();
        const { http, token } = clusterClient(up);
        await page.goto(http);
        await page.fill('input[name="token"]', token);
        await page.click('#signin-form button[type="submit"]');
        await page.selectOption("#window", "5m");
        const cell = (shadow: string, metric: string) =>
          page
            .locator(
              `article[data-endpoint="shadow-ab"] .shadow tr[data-shadow="${shadow}"] [data-metric="${metric}"]`,
            )
            .allTextContents()
            .then((t) => t[0]);
        const b = await shadowOf("shadow-ab", "b");
        const rate = `${(b.agreement.rate * 100).toFixed(2)}%`;
        await eventually(
          async () => ((await cell("b", "agreement")) === rate ? true : undefined),
          `the page shows shadow b agreeing ${rate}`,
        );
        expect(await cell("b", "mirrored")).toBe(String(REQUESTS));
        expect(await cell("b", "dropped")).toBe("0");
        expect(await cell("fails", "errors")).toBe(`${REQUESTS} (100.00%)`);
        expect(await cell("fails", "agreement")).toBe("–");
      } finally {
        await browser.close();
      }
    },
  );

  it("drops mirrors beyond max_in_flight and still answers every primary", async () => {
    const SENT = 12;
    await sendAll("shadow-slow", 0, SENT, SENT);
    const slow = await eventually(
      async () => {
        const w = await shadowOf("shadow-slow", "slow");
        // Every mirror that went out was answered (the slow shadow replies class 0 for every row).
        return w && w.mirrored + w.dropped === SENT && w.agreement.compared > 0 ? w : undefined;
      },
      "every request of the slow endpoint mirrored or dropped",
      30_000,
    );
    // One mirror at a time while all twelve primaries were in flight at once: the slow shadow holds each for 2 s.
    expect(slow.dropped).toBeGreaterThan(0);
    expect(slow.mirrored).toBeGreaterThan(0);
    expect(slow.errors).toEqual({});
  });

  it("mirrors nothing at 0 %, once an update says so", async () => {
    const before = await shadowOf("shadow-ab", "b");
    const put = await call("PUT", "/api/2.0/serving-endpoints/shadow-ab/config", abConfig(0));
    expect(put.status, put.text).toBe(200);
    const ready = await waitReady("shadow-ab");
    expect(ready.config.shadow_config.routes).toEqual([
      { served_model_name: "b", mirror_percentage: 0 },
      { served_model_name: "fails", mirror_percentage: 0 },
    ]);
    // The routes without the shadow were written before the record said READY, and the bridge's router saw them
    // on the connection that carried that answer: what follows is not mirrored.
    await sendAll("shadow-ab", REQUESTS, REQUESTS + 10, 5);
    // Once the primary's counts show the ten requests, the mirrors of the same router would show too.
    await eventually(
      async () => {
        const r = await call("GET", "/api/2.0/switchyard/metrics/endpoints/shadow-ab");
        const a = r.json.served_models.find((s: { name: string }) => s.name === "a");
        return a.windows["5m"].requests === REQUESTS + 10 || undefined;
      },
      "the primary counted the ten requests",
      30_000,
    );
    const after = await shadowOf("shadow-ab", "b");
    expect(after.mirrored).toBe(before.mirrored);
    expect(after.agreement.compared).toBe(before.agreement.compared);
  });
});
