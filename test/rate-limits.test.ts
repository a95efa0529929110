// Rate limits end to end: a `switchyard up` cluster plus two more bridges on its NATS. Databricks' rate_limits
// hold across bridges and raw NATS clients alike (one count per window in KV), per endpoint and per user; PUT
// …/rate-limits changes them; bad limits are refused naming the field; and a bridge at its in-flight bound
// answers 503 to exactly the requests beyond it.
import { readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { listenBridge, type RunningBridge, TokenStore } from "@switchyard/bridge";
import { connectNats, splitNatsUrl } from "@switchyard/nats";
import { clusterNames, RATE_LIMIT_WINDOW_MS } from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";
import { cli, clusterClient, eventually, type HttpReply, httpCall, startUp, type Up } from "./helpers/up.js";

const LR = buildLinear({ inputs: 2, sigmoid: true });
const LIMIT = 7;
const ROW = { instances: [[1, 2]] };

function post(base: string, p: string, token: string, body: unknown, method = "POST"): Promise<HttpReply> {
  return httpCall(base, token, method, p, body);
}

/** A raw NATS client as a user writes one, with the cluster's credentials and its own inbox prefix. */
function rawClient(natsUrl: string, inboxPrefix?: string): Promise<NatsConnection> {
  const { server, user, pass, token } = splitNatsUrl(natsUrl);
  return connect({
    servers: server,
    ...(user ? { user, pass } : {}),
    ...(token ? { token } : {}),
    ...(inboxPrefix ? { inboxPrefix } : {}),
  });
}

const windowOf = (t: number) => Math.floor(t / RATE_LIMIT_WINDOW_MS);

/**
 * Runs `scenario` within one rate-limit window, so its counts are exact: it starts with at least 20 s of the
 * window left, and a scenario that straddled a boundary anyway (a very loaded machine) runs again in a window
 * it did not touch.
 */
async function inOneWindow<T>(scenario: () => Promise<T>): Promise<T> {
  let touched = -1;
  for (let attempt = 0; attempt < 3; attempt++) {
    await eventually(
      () => {
        const now = Date.now();
        return windowOf(now) > touched && RATE_LIMIT_WINDOW_MS - (now % RATE_LIMIT_WINDOW_MS) >= 20_000
          ? true
          : undefined;
      },
      "a fresh rate-limit window with 20 s left",
      2 * RATE_LIMIT_WINDOW_MS + 10_000,
    );
    const started = windowOf(Date.now());
    const result = await scenario();
    touched = windowOf(Date.now());
    if (touched === started) return result;
  }
  throw new Error("the scenario straddled a window boundary three times");
}

function expectLimited(r: HttpReply): void {
  expect(r.status).toBe(429);
  expect(r.json.error_code).toBe("REQUEST_LIMIT_EXCEEDED");
  expect(typeof r.json.message).toBe("string");
  expect(r.headers.get("x-switchyard-error-code")).toBe("REQUEST_LIMIT_EXCEEDED");
  const after = Number(r.headers.get("retry-after"));
  expect(Number.isInteger(after)).toBe(true);
  expect(after).toBeGreaterThanOrEqual(1);
  expect(after).toBeLessThanOrEqual(60);
}

const statuses = (rs: HttpReply[]) => rs.map((r) => r.status).sort();
const repeat = <T>(n: number, x: T): T[] => Array.from({ length: n }, () => x);

// A scenario may wait for a fresh window (up to two minutes when one straddled a boundary).
describe("rate limits across bridges and NATS, and the overload guard", { timeout: 180_000 }, () => {
  let up: Up;
  let c: ReturnType<typeof clusterClient>;
  let nc: NatsConnection;
  let cluster: string;
  let second: RunningBridge;
  let guarded: RunningBridge;
  let otherToken: string;
  let bridges: string[];
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });

  const create = (name: string, entity: string, rateLimits?: unknown) =>
    c.call("POST", "/api/2.0/serving-endpoints", {
      name,
      config: { served_entities: [{ entity_name: entity, entity_version: "1" }] },
      ...(rateLimits ? { rate_limits: rateLimits } : {}),
    });

  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-ratelimits-"), "data"));
    c = clusterClient(up);
    cluster = up.info().cluster;
    const [lr, gated] = await Promise.all([
      cli(["models", "register", "lr", writeTempModel(LR), "--json"], env()),
      cli(["models", "register", "gated", copyFixture("gated"), "--flavor", "custom", "--json"], env()),
    ]);
    expect(lr.stderr).toBe("");
    expect(gated.stderr).toBe("");
    const created = await Promise.all([
      create("rl-endpoint", "lr", [{ calls: LIMIT, key: "endpoint", renewal_period: "minute" }]),
      create("rl-user", "lr", [{ calls: LIMIT, key: "user", renewal_period: "minute" }]),
      create("rl-nats", "lr", [{ calls: LIMIT, renewal_period: "minute" }]),
      create("gated", "gated"),
    ]);
    for (const r of created) expect(r.status).toBe(200);
    nc = await connectNats({ servers: up.info().natsUrl });
    const logger = pino({ level: "silent" });
    second = await listenBridge({ nc, cluster, auth: true, logger });
    guarded = await listenBridge({ nc, cluster, auth: true, maxInFlight: 2, logger });
    bridges = [c.http, second.url];
    const store = await TokenStore.open(nc, { cluster });
    otherToken = (await store.createToken({ scopes: ["admin"] })).token;
    store.close();
    await Promise.all(["rl-endpoint", "rl-user", "rl-nats", "gated"].map((n) => c.waitReady(n)));
    // Every bridge knows the new token.
    for (const base of [...bridges, guarded.url]) {
      await eventually(
        async () =>
          (await post(base, "/api/2.0/serving-endpoints", otherToken, undefined, "GET")).status === 200 ||
          undefined,
        `the second token on ${base}`,
      );
    }
  }, 240_000);

  afterAll(async () => {
    await second?.close();
    await guarded?.close();
    await nc?.close();
    await up?.stop();
  });

  it("GET shows the endpoint's rate_limits with the default key filled in", async () => {
    const r = await c.call("GET", "/api/2.0/serving-endpoints/rl-nats");
    expect(r.status).toBe(200);
    expect(r.json.rate_limits).toEqual([{ calls: LIMIT, key: "endpoint", renewal_period: "minute" }]);
  });

  it("key=endpoint: a burst of 20 split across two bridges gets exactly 7 answers and 13 × 429", async () => {
    const replies = await inOneWindow(() =>
      Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          post(bridges[i % 2]!, "/serving-endpoints/rl-endpoint/invocations", c.token, ROW),
        ),
      ),
    );
    expect(statuses(replies)).toEqual([...repeat(LIMIT, 200), ...repeat(20 - LIMIT, 429)]);
    for (const r of replies.filter((x) => x.status === 200)) expect(r.json.predictions).toHaveLength(1);
    for (const r of replies.filter((x) => x.status === 429)) expectLimited(r);
  });

  it("PUT rate-limits raises the limit: requests refused before pass after", async () => {
    await inOneWindow(async () => {
      // Spend this window's calls (a previous test may have already).
      const spend = await Promise.all(
        Array.from({ length: LIMIT + 1 }, () =>
          post(second.url, "/serving-endpoints/rl-endpoint/invocations", c.token, ROW),
        ),
      );
      expectLimited(spend.find((r) => r.status === 429)!);
      const put = await c.call("PUT", "/api/2.0/serving-endpoints/rl-endpoint/rate-limits", {
        rate_limits: [{ calls: 1000, key: "endpoint", renewal_period: "minute" }],
      });
      expect(put.status).toBe(200);
      expect(put.json).toEqual({ rate_limits: [{ calls: 1000, key: "endpoint", renewal_period: "minute" }] });
      for (const base of bridges) {
        await eventually(
          async () =>
            (await post(base, "/serving-endpoints/rl-endpoint/invocations", c.token, ROW)).status === 200 ||
            undefined,
          `the raised limit on ${base}`,
        );
      }
    });
    const got = await c.call("GET", "/api/2.0/serving-endpoints/rl-endpoint");
    expect(got.json.rate_limits).toEqual([{ calls: 1000, key: "endpoint", renewal_period: "minute" }]);
  });

  it("key=user: each token gets its own 7 calls, on whichever bridge", async () => {
    const replies = await inOneWindow(() =>
      Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          post(
            bridges[i % 2]!,
            "/serving-endpoints/rl-user/invocations",
            i < 10 ? c.token : otherToken,
            ROW,
          ).then((r) => ({ token: i < 10 ? "admin" : "other", r })),
        ),
      ),
    );
    for (const who of ["admin", "other"]) {
      const mine = replies.filter((x) => x.token === who).map((x) => x.r);
      expect(statuses(mine)).toEqual([...repeat(LIMIT, 200), ...repeat(10 - LIMIT, 429)]);
      for (const r of mine.filter((x) => x.status === 429)) expectLimited(r);
    }
  });

  it("raw NATS clients count against the same counter as HTTP, with the same code and Retry-After", async () => {
    const subject = clusterNames(cluster).subjects.invoke("rl-nats");
    const raw = await rawClient(up.info().natsUrl);
    try {
      const { http, nats } = await inOneWindow(async () => {
        const http = await Promise.all(
          Array.from({ length: 3 }, (_, i) =>
            post(bridges[i % 2]!, "/serving-endpoints/rl-nats/invocations", c.token, ROW),
          ),
        );
        const nats = await Promise.all(
          Array.from({ length: 10 }, async () => {
            const h = natsHeaders();
            h.set("content-type", "application/json");
            const m = await raw.request(subject, JSON.stringify(ROW), { timeout: 30_000, headers: h });
            return {
              code: m.headers?.get("x-switchyard-error-code") || "",
              retryAfter: m.headers?.get("retry-after") || "",
              body: JSON.parse(m.string()),
            };
          }),
        );
        return { http, nats };
      });
      expect(statuses(http)).toEqual(repeat(3, 200));
      const ok = nats.filter((n) => n.code === "");
      const limited = nats.filter((n) => n.code === "REQUEST_LIMIT_EXCEEDED");
      expect(ok).toHaveLength(LIMIT - 3);
      expect(limited).toHaveLength(10 - (LIMIT - 3));
      for (const n of ok) expect(n.body.predictions).toHaveLength(1);
      for (const n of limited) {
        expect(n.body.error_code).toBe("REQUEST_LIMIT_EXCEEDED");
        expect(Number(n.retryAfter)).toBeGreaterThanOrEqual(1);
        expect(Number(n.retryAfter)).toBeLessThanOrEqual(60);
      }
    } finally {
      await raw.close();
    }
  });

  it("key=user over NATS: a client's inbox prefix is its own principal", async () => {
    const subject = clusterNames(cluster).subjects.invoke("rl-user");
    const alice = await rawClient(up.info().natsUrl, "_INBOX_alice");
    const bob = await rawClient(up.info().natsUrl, "_INBOX_bob");
    try {
      const codes = await inOneWindow(() =>
        Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            const client = i < 10 ? alice : bob;
            const m = await client.request(subject, JSON.stringify(ROW), { timeout: 30_000 });
            return { who: i < 10 ? "alice" : "bob", code: m.headers?.get("x-switchyard-error-code") || "ok" };
          }),
        ),
      );
      for (const who of ["alice", "bob"]) {
        const mine = codes.filter((x) => x.who === who).map((x) => x.code);
        expect(mine.filter((x) => x === "ok")).toHaveLength(LIMIT);
        expect(mine.filter((x) => x === "REQUEST_LIMIT_EXCEEDED")).toHaveLength(10 - LIMIT);
      }
    } finally {
      await alice.close();
      await bob.close();
    }
  });

  it("an unknown endpoint is still the router's 404", async () => {
    const r = await post(second.url, "/serving-endpoints/no-such-endpoint/invocations", c.token, ROW);
    expect(r.status).toBe(404);
    expect(r.json.error_code).toBe("RESOURCE_DOES_NOT_EXIST");
  });

  it("bad rate_limits are refused with 400 naming the field, and change nothing", async () => {
    const bad = await create("rl-bad", "lr", [{ calls: 0, key: "endpoint", renewal_period: "minute" }]);
    expect(bad.status).toBe(400);
    expect(bad.json.error_code).toBe("INVALID_PARAMETER_VALUE");
    expect(bad.json.message).toContain("rate_limits.0.calls");
    expect(bad.json.message).toContain("positive integer");
    expect((await c.call("GET", "/api/2.0/serving-endpoints/rl-bad")).status).toBe(404);

    const cases: Array<[unknown, string]> = [
      [[{ calls: 5, key: "team", renewal_period: "minute" }], "rate_limits.0.key"],
      [[{ calls: 5, key: "user", renewal_period: "hour" }], "rate_limits.0.renewal_period"],
      [[{ calls: 2.5, renewal_period: "minute" }], "rate_limits.0.calls"],
      [[{ calls: 5 }], "rate_limits.0.renewal_period"],
      ["many", "rate_limits"],
    ];
    for (const [limits, field] of cases) {
      const r = await c.call("PUT", "/api/2.0/serving-endpoints/rl-nats/rate-limits", {
        rate_limits: limits,
      });
      expect(r.status, JSON.stringify(limits)).toBe(400);
      expect(r.json.error_code).toBe("INVALID_PARAMETER_VALUE");
      expect(r.json.message).toContain(`${field}:`);
    }
    const unchanged = await c.call("GET", "/api/2.0/serving-endpoints/rl-nats");
    expect(unchanged.json.rate_limits).toEqual([{ calls: LIMIT, key: "endpoint", renewal_period: "minute" }]);
    const missing = await c.call("PUT", "/api/2.0/serving-endpoints/no-such-endpoint/rate-limits", {
      rate_limits: [{ calls: 5, renewal_period: "minute" }],
    });
    expect(missing.status).toBe(404);
  });

  it("the CLI sets and clears an endpoint's rate limit", async () => {
    const set = await cli(["endpoints", "rate-limits", "rl-bad-cli", "--calls", "5"], env());
    expect(set.code).not.toBe(0);
    expect(set.stderr).toContain("rl-bad-cli");
    const ok = await cli(
      ["endpoints", "rate-limits", "gated", "--calls", "50", "--key", "user", "--json"],
      env(),
    );
    expect(ok.stderr).toBe("");
    expect(JSON.parse(ok.stdout)).toEqual({
      rate_limits: [{ calls: 50, key: "user", renewal_period: "minute" }],
    });
    const wrong = await cli(["endpoints", "rate-limits", "gated", "--calls", "0"], env());
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain("rate_limits.0.calls");
    const cleared = await cli(["endpoints", "rate-limits", "gated", "--clear", "--json"], env());
    expect(JSON.parse(cleared.stdout)).toEqual({ rate_limits: [] });
    expect((await c.call("GET", "/api/2.0/serving-endpoints/gated")).json.rate_limits).toBeUndefined();
  });

  it("refuses a bound that is not a positive integer, naming it", async () => {
    await expect(listenBridge({ nc, cluster, auth: true, maxInFlight: 0 })).rejects.toThrow(
      "maxInFlight must be a positive integer",
    );
    const bad = await cli(["up", "--data-dir", tempDir("sy-rl-bad-"), "--max-in-flight", "-3"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("--max-in-flight: expected a positive integer");
  });

  it("a bridge holding maxInFlight requests answers exactly the extra ones 503 at once, health exempt", async () => {
    const gates = tempDir("sy-gate-");
    const gate = path.join(gates, "open");
    const held: string[] = [];
    // Every request the router sends to the gated model, seen by a plain subscriber beside the replica's group.
    const sub = nc.subscribe(`${cluster}.rt.gated.>`, {
      callback: (_err, m) => {
        held.push(m.subject);
      },
    });
    await nc.flush();
    const body = { dataframe_records: [{ gate }] };
    const holding = [0, 1].map(() =>
      post(guarded.url, "/serving-endpoints/gated/invocations", c.token, body),
    );
    await eventually(() => held.length >= 2 || undefined, "both requests at the model");
    const extra = await Promise.all(
      [0, 1, 2].map(() => post(guarded.url, "/serving-endpoints/gated/invocations", c.token, body)),
    );
    const health = await fetch(`${guarded.url}/v2/health/live`);
    expect(health.status).toBe(200);
    for (const r of extra) {
      expect(r.status).toBe(503);
      expect(r.json.error_code).toBe("TEMPORARILY_UNAVAILABLE");
      expect(r.headers.get("retry-after")).toBe("1");
    }
    expect(readdirSync(gates)).toEqual([]);
    writeFileSync(gate, "");
    for (const r of await Promise.all(holding)) {
      expect(r.status).toBe(200);
      expect(r.json.predictions).toEqual(["OK"]);
    }
    // The slots are free again.
    const after = await post(guarded.url, "/serving-endpoints/gated/invocations", c.token, body);
    expect(after.status).toBe(200);
    expect(held.length).toBe(3);
    sub.unsubscribe();
  });
});
