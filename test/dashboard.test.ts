// The dashboard in a real browser: headless Chromium (Debian's package, driven by playwright-core) opens the page
// of a live `switchyard up`, signs in with the cluster's token, and must show the exact number of requests this
// test sent to an endpoint (per served model too, counted from the replies' x-served-model) and the endpoint's
// p50/p95/p99 as the metrics API gives them. The screenshot is kept as a CI artefact: artifacts/dashboard.png.
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, eventually, root, startUp, type Up } from "./helpers/up.js";

/** Where Debian's `chromium` package puts the browser (`.ci/run` installs it); SWITCHYARD_CHROMIUM overrides. */
const CHROMIUM_PATHS = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const executablePath = process.env.SWITCHYARD_CHROMIUM || CHROMIUM_PATHS.find((p) => existsSync(p));
// CI must run this test: a missing browser fails it there. Elsewhere it is skipped, saying why.
const runs = executablePath !== undefined || process.env.CI === "true";
if (!runs) {
  console.warn(
    `dashboard test skipped: no Chromium at ${CHROMIUM_PATHS.join(" or ")} (apt-get install chromium)`,
  );
}

const ENDPOINT = "fraud";
const MODEL = "cat.sch.fraud";
const SENT = 37;
const SCREENSHOT = path.join(root, "artifacts", "dashboard.png");

describe.runIf(runs)("the dashboard in headless Chromium", () => {
  let up: Up;
  let cluster: ReturnType<typeof clusterClient>;
  let browser: Browser;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!executablePath) {
      throw new Error(
        `no Chromium at ${CHROMIUM_PATHS.join(" or ")}: .ci/run installs Debian's chromium; ` +
          "set SWITCHYARD_CHROMIUM to use another binary",
      );
    }
    browser = await chromium.launch({ executablePath });
    up = await startUp(path.join(tempDir("sy-dash-"), "data"));
    cluster = clusterClient(up);
    const env = { SWITCHYARD_DATA_DIR: up.dataDir };
    for (const bias of [0, 0.5]) {
      const file = writeTempModel(buildLinear({ inputs: 2, sigmoid: true, bias: [bias] }));
      const r = await cli(["models", "register", MODEL, file, "--alias", "champion"], env);
      expect(r.stderr).toBe("");
    }
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await up?.stop();
  });

  async function openSignedOut(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on("pageerror", (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on("console", (msg) => {
      // Chromium logs every refused call as an error: while signed out, those are the sign-in flow working.
      if (msg.type() === "error" && !/status of 40[13] /.test(msg.text()))
        pageErrors.push(`console: ${msg.text()}`);
    });
    await page.goto(cluster.http);
    await page.locator('#signin-form input[name="token"]').waitFor({ state: "visible" });
    return page;
  }

  /** The text of the first element matching `selector` now (undefined while there is none): never waits. */
  const text = async (page: Page, selector: string) => (await page.locator(selector).allTextContents())[0];

  it("shows an endpoint's live request count and p50/p95/p99 after signing in", async () => {
    const created = await cluster.call("POST", "/api/2.0/serving-endpoints", {
      name: ENDPOINT,
      config: {
        served_entities: [
          { name: "v1", entity_name: MODEL, entity_version: "1", workload_size: "Small" },
          { name: "v2", entity_name: MODEL, entity_version: "2", workload_size: "Small" },
        ],
        traffic_config: {
          routes: [
            { served_model_name: "v1", traffic_percentage: 70 },
            { served_model_name: "v2", traffic_percentage: 30 },
          ],
        },
      },
    });
    expect(created.status).toBe(200);
    await cluster.waitReady(ENDPOINT);

    // The traffic, counted per served model from what each reply says served it.
    const perServed: Record<string, number> = { v1: 0, v2: 0 };
    for (let i = 0; i < SENT; i++) {
      const r = await cluster.invoke(ENDPOINT, { dataframe_split: { columns: ["a", "b"], data: [[i, 1]] } });
      expect(r.status).toBe(200);
      perServed[r.headers.get("x-served-model")!]! += 1;
    }
    expect(perServed.v1! + perServed.v2!).toBe(SENT);
    // The bridge's metrics have seen all of it before the page is asked to show it.
    await eventually(async () => {
      const m = await cluster.call("GET", `/api/2.0/switchyard/metrics/endpoints/${ENDPOINT}`);
      return m.json?.windows?.["5m"]?.requests === SENT ? true : undefined;
    }, `metrics count ${SENT} requests to ${ENDPOINT}`);

    const page = await openSignedOut();
    try {
      // No data before signing in.
      expect(await page.locator("#dashboard").isVisible()).toBe(false);

      // A wrong token comes back to the form with the bridge's message.
      await page.fill('input[name="token"]', `syt_${"A".repeat(43)}`); // well-formed, never issued
      await page.click('#signin-form button[type="submit"]');
      await eventually(
        async () => ((await text(page, "#signin-message")) === "Invalid access token." ? true : undefined),
        "the sign-in form says the token is invalid",
      );
      expect(await page.evaluate('sessionStorage.getItem("switchyard.token")')).toBeNull();

      await page.fill('input[name="token"]', cluster.token);
      await page.click('#signin-form button[type="submit"]');
      // The five-minute window: every request sent stays in it however slowly this machine runs the test.
      await page.selectOption("#window", "5m");
      const row = `article[data-endpoint="${ENDPOINT}"]`;
      const total = `${row} tfoot`;
      await eventually(
        async () =>
          (await text(page, `${total} [data-metric="requests"]`)) === String(SENT) ? true : undefined,
        `the page shows ${SENT} requests for ${ENDPOINT}`,
      );
      // The token stays in the tab's session storage, never in the URL.
      expect(page.url()).toBe(`${cluster.http}/`);
      expect(await page.evaluate('sessionStorage.getItem("switchyard.token")')).toBe(cluster.token);

      for (const served of ["v1", "v2"] as const) {
        await eventually(
          async () =>
            (await text(page, `${row} tr[data-served="${served}"] [data-metric="requests"]`)) ===
            String(perServed[served])
              ? true
              : undefined,
          `the page shows ${perServed[served]} requests for served model ${served}`,
        );
      }
      expect(await text(page, `${row} tr[data-served="v1"] [data-metric="traffic"]`)).toBe("70%");
      expect(await text(page, `${row} tr[data-served="v2"] [data-metric="traffic"]`)).toBe("30%");

      // Percentiles: the page's cells against what the metrics API answers at the same time.
      await eventually(async () => {
        const metrics = await cluster.call("GET", `/api/2.0/switchyard/metrics/endpoints/${ENDPOINT}`);
        const latency = metrics.json.windows["5m"].latency_ms as Record<"p50" | "p95" | "p99", number>;
        expect(latency.p50).toBeGreaterThan(0);
        expect(latency.p50).toBeLessThanOrEqual(latency.p95);
        expect(latency.p95).toBeLessThanOrEqual(latency.p99);
        for (const p of ["p50", "p95", "p99"] as const) {
          const cell = (await text(page, `${total} [data-metric="${p}"]`)) ?? "";
          expect(cell).toMatch(/^\d+(\.\d+)?$/);
          // Milliseconds to three significant digits: within half a unit of the last digit, at most 0.5 %.
          expect(
            Math.abs(Number(cell) - latency[p]),
            `${p}: page ${cell}, API ${latency[p]}`,
          ).toBeLessThanOrEqual(latency[p] * 0.005 + 1e-9);
        }
        return true;
      }, `the page shows the p50/p95/p99 of ${ENDPOINT} that the metrics API gives`);

      // The registry section lists both versions, the alias on the second.
      await eventually(
        async () =>
          (await text(page, `#models tr[data-model="${MODEL}"][data-version="2"]`))?.includes("@champion")
            ? true
            : undefined,
        "the models section shows version 2 as @champion",
      );
      // The charts plot the series the page keeps: a few polls give them lines to draw.
      await eventually(async () => {
        const points = await page.locator(`${row} .charts`).getAttribute("data-points");
        return Number(points) >= 3 ? true : undefined;
      }, "three points in the endpoint's charts");

      // A staged canary shows in the endpoint's view: its stages, each guard against its limit, the history.
      const rollout = `/api/2.0/switchyard/endpoints/${ENDPOINT}/rollout`;
      expect((await cluster.call("POST", rollout, { hold: { duration: "1h" } })).status).toBe(200);
      const canary = `${row} .canary`;
      await eventually(
        async () => ((await text(page, `${canary} [data-field="phase"]`)) === "running" ? true : undefined),
        "the page shows the running canary",
      );
      expect(await page.locator(`${canary} ol.stages li`).allTextContents()).toEqual([
        "5%",
        "20%",
        "50%",
        "100%",
      ]);
      expect(await page.locator(`${canary} ol.stages li.current`).allTextContents()).toEqual(["5%"]);
      expect(await page.locator(`${canary} tr[data-guard]`).count()).toBe(4);
      expect(
        await text(page, `${canary} tr[data-guard="non_retryable_error_rate"] [data-field="limit"]`),
      ).toBe("≤ 1.00%");
      expect((await cluster.call("POST", `${rollout}/abort`)).status).toBe(200);
      await eventually(
        async () => ((await text(page, `${canary} [data-field="phase"]`)) === "aborted" ? true : undefined),
        "the page shows the aborted canary",
      );
      expect(
        await page
          .locator(`${canary} ul.history li`)
          .evaluateAll((els) => els.map((e) => e.getAttribute("data-event"))),
      ).toEqual(["aborted", "started"]);
    } finally {
      // The CI artefact, whatever the outcome: on a failure it shows what the page showed.
      mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      await page.close();
    }
    expect(pageErrors).toEqual([]);
  }, 240_000);
});
