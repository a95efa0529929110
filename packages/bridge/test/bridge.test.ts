import { Kvm } from "@nats-io/kv";
import { registerModel } from "@switchyard/ingest";
import { clusterNames, H } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildLinear, writeTempModel } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import {
  apiDouble,
  natsPerFile,
  putEndpoint,
  putEndpointWithRoutes,
  type ReplicaReply,
  replicaDouble,
  route,
  uniqueCluster,
} from "../../client/test/fixtures/doubles.js";
import { listenBridge, type RunningBridge } from "../src/bridge.js";
import { hashToken } from "../src/token-hashes.js";
import { TokenStore } from "../src/tokens.js";

const files = natsPerFile();
const cleanups = files.cleanups;

interface Setup {
  cluster: string;
  bridge: RunningBridge;
  token: string;
  tokenId: string;
  tokens: TokenStore;
  /** fetch with the token. */
  call(path: string, init?: RequestInit & { headers?: Record<string, string> }): Promise<Response>;
}

async function setup(opts: { auth?: boolean; bodyLimit?: number } = {}): Promise<Setup> {
  const cluster = uniqueCluster();
  const tokens = await TokenStore.open(files.nc(), { cluster });
  cleanups.push(() => tokens.close());
  const { token, id: tokenId } = await tokens.createToken({ scopes: ["admin"] });
  const bridge = await listenBridge({
    nc: files.nc(),
    cluster,
    auth: opts.auth ?? true,
    bodyLimit: opts.bodyLimit,
  });
  cleanups.push(() => bridge.close());
  const call = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
    fetch(bridge.url + path, {
      ...init,
      headers: { authorization: `Bearer ${token}`, ...init.headers },
    });
  return { cluster, bridge, token, tokenId, tokens, call };
}

/** An endpoint `ep` with one served model `a` (model churn v3) answered by a double. */
async function withEndpoint(s: Setup, answer?: Parameters<typeof replicaDouble>[2]) {
  const a = route(s.cluster, "ep", "a", 100, "churn", 3);
  const d = replicaDouble(files.nc(), a, answer);
  cleanups.push(d.stop);
  await putEndpointWithRoutes(files.nc(), s.cluster, "ep", [a]);
  return d;
}

const json = (body: unknown) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});
const BODY = { dataframe_split: { columns: ["x"], data: [[1.0]] } };

async function expectError(res: Response, status: number, code: string): Promise<string> {
  const text = await res.text();
  expect({ status: res.status, text }).toMatchObject({ status });
  const body = JSON.parse(text) as { error_code: string; message: string };
  expect(Object.keys(body).sort()).toEqual(["error_code", "message"]);
  expect(body.error_code).toBe(code);
  expect(res.headers.get("content-type")).toContain("application/json");
  expect(body.message).not.toMatch(/\n\s+at /); // never a stack trace
  return body.message;
}

describe("invocations", () => {
  it("forwards bytes and headers both ways", async () => {
    const s = await setup();
    const d = await withEndpoint(s);
    const body = '{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}';
    const before = Date.now();
    const res = await s.call("/serving-endpoints/ep/invocations", {
      method: "POST",
      headers: {
        "content-type": "application/json; charset=utf-8",
        "x-request-id": "req-7",
        "x-switchyard-route-key": "customer-1",
        "x-switchyard-timeout-ms": "4000",
      },
      body,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ predictions: ["a"] });
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-request-id")).toBe("req-7");
    expect(res.headers.get("x-served-model")).toBe("a");
    expect(res.headers.get("x-model-name")).toBe("churn");
    expect(res.headers.get("x-model-version")).toBe("3");
    expect(res.headers.get(H.computeUs)).toBe("34");
    const got = d.received[0]!;
    expect(new TextDecoder().decode(got.data)).toBe(body);
    expect(got.headers[H.contentType]).toBe("application/json");
    expect(got.headers[H.requestId]).toBe("req-7");
    const deadline = Number(got.headers[H.deadline]);
    expect(deadline).toBeGreaterThanOrEqual(before + 4_000);
    expect(deadline).toBeLessThan(before + 5_000);
    expect(got.headers[H.format]).toBeUndefined();
  });

  it("generates a request id and defaults the timeout to 30 s", async () => {
    const s = await setup();
    const d = await withEndpoint(s);
    const before = Date.now();
    const res = await s.call("/serving-endpoints/ep/invocations", json(BODY));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(d.received[0]!.headers[H.requestId]).toBe(res.headers.get("x-request-id"));
    expect(Number(d.received[0]!.headers[H.deadline]) - before).toBeGreaterThanOrEqual(30_000);
  });

  it("forwards CSV bodies as text/csv", async () => {
    const s = await setup();
    const d = await withEndpoint(s);
    const res = await s.call("/serving-endpoints/ep/invocations", {
      method: "POST",
      headers: { "content-type": "text/csv" },
      body: "x\n1.0\n",
    });
    expect(res.status).toBe(200);
    expect(d.received[0]!.headers[H.contentType]).toBe("text/csv");
    expect(new TextDecoder().decode(d.received[0]!.data)).toBe("x\n1.0\n");
  });

  it("queries one served model on /served-models/{served}/invocations", async () => {
    const s = await setup();
    const a = route(s.cluster, "ep", "a", 100);
    const b = route(s.cluster, "ep", "b", 0);
    for (const r of [a, b]) cleanups.push(replicaDouble(files.nc(), r).stop);
    await putEndpointWithRoutes(files.nc(), s.cluster, "ep", [a, b]);
    const res = await s.call("/serving-endpoints/ep/served-models/b/invocations", json(BODY));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-served-model")).toBe("b");
    const missing = await s.call("/serving-endpoints/ep/served-models/zz/invocations", json(BODY));
    expect(await expectError(missing, 404, "RESOURCE_DOES_NOT_EXIST")).toContain("'zz'");
  });

  it("splits real HTTP requests by traffic_percentage", async () => {
    const s = await setup();
    const a = route(s.cluster, "ep", "a", 70);
    const b = route(s.cluster, "ep", "b", 30);
    for (const r of [a, b]) cleanups.push(replicaDouble(files.nc(), r).stop);
    await putEndpointWithRoutes(files.nc(), s.cluster, "ep", [a, b]);
    let countA = 0;
    const n = 1_000;
    for (let i = 0; i < n; i += 50) {
      const res = await Promise.all(
        Array.from({ length: 50 }, () => s.call("/serving-endpoints/ep/invocations", json(BODY))),
      );
      for (const r of res) if (r.headers.get("x-served-model") === "a") countA++;
    }
    expect(Math.abs((100 * countA) / n - 70)).toBeLessThanOrEqual(7); // σ ≈ 1.45 points
  });
});

describe("error statuses", () => {
  it('still accepts a token stored before scopes existed ({scope: "admin"}) as admin', async () => {
    const s = await setup();
    const old = `syt_${"o".repeat(43)}`;
    const kv = await new Kvm(files.nc()).open(clusterNames(s.cluster).buckets.cluster);
    await kv.put(`tokens.${hashToken(old)}`, JSON.stringify({ id: "0ld", scope: "admin", created_at: 1 }));
    const withOld = { headers: { authorization: `Bearer ${old}` } };
    await expect
      .poll(async () => (await fetch(`${s.bridge.url}/api/2.0/switchyard/nodes`, withOld)).status)
      .toBe(200);
    expect(s.tokens.list().find((t) => t.id === "0ld")?.scopes).toEqual(["admin"]);
  });

  it("401 UNAUTHENTICATED without a token or a malformed one, 403 PERMISSION_DENIED with an unknown one, 401 once revoked", async () => {
    const s = await setup();
    await withEndpoint(s);
    const url = `${s.bridge.url}/serving-endpoints/ep/invocations`;
    await expectError(await fetch(url, json(BODY)), 401, "UNAUTHENTICATED");
    const basic = { ...json(BODY), headers: { ...json(BODY).headers, authorization: "Basic dXNlcjpwYXNz" } };
    await expectError(await fetch(url, basic), 401, "UNAUTHENTICATED");
    // Not the shape of a token: malformed, 401. Well-formed but unknown: 403 "Invalid access token." as Databricks.
    const malformed = { ...json(BODY), headers: { ...json(BODY).headers, authorization: "Bearer syt_nope" } };
    await expectError(await fetch(url, malformed), 401, "UNAUTHENTICATED");
    const unknown = `Bearer syt_${"x".repeat(43)}`;
    const bad = { ...json(BODY), headers: { ...json(BODY).headers, authorization: unknown } };
    expect(await expectError(await fetch(url, bad), 403, "PERMISSION_DENIED")).toBe("Invalid access token.");
    await expectError(await fetch(`${s.bridge.url}/api/2.0/serving-endpoints`), 401, "UNAUTHENTICATED");

    // A second token works at once, and stops working once revoked (seen through the KV watch).
    const other = await s.tokens.createToken({ scopes: ["admin"] });
    const withOther = {
      ...json(BODY),
      headers: { ...json(BODY).headers, authorization: `Bearer ${other.token}` },
    };
    await expect.poll(async () => (await fetch(url, withOther)).status).toBe(200);
    await s.tokens.revoke(other.id);
    await expect.poll(async () => (await fetch(url, withOther)).status).toBe(401);
    expect((await s.call("/serving-endpoints/ep/invocations", json(BODY))).status).toBe(200);
  });

  it("lets health checks through without a token, and everything through with auth off", async () => {
    const s = await setup();
    expect(await (await fetch(`${s.bridge.url}/v2/health/live`)).json()).toEqual({ live: true });
    const ready = await fetch(`${s.bridge.url}/v2/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true });
    const open = await setup({ auth: false });
    await withEndpoint(open);
    expect((await fetch(`${open.bridge.url}/serving-endpoints/ep/invocations`, json(BODY))).status).toBe(200);
  });

  it("400 BAD_REQUEST for a body that is not a JSON object, or empty", async () => {
    const s = await setup();
    const d = await withEndpoint(s);
    for (const body of ["[1, 2]", "hello", "  ", '"x"']) {
      const res = await s.call("/serving-endpoints/ep/invocations", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await expectError(res, 400, "BAD_REQUEST");
    }
    const empty = await s.call("/serving-endpoints/ep/invocations", { method: "POST" });
    await expectError(empty, 400, "BAD_REQUEST");
    expect(d.received.length).toBe(0);
  });

  it("passes the replica's errors through with the catalog status", async () => {
    const s = await setup();
    const errors: Record<string, ReplicaReply> = {
      invalid: { error: { code: "INVALID_PARAMETER_VALUE", message: "missing column 'x' (float32)" } },
      bad: { error: { code: "BAD_REQUEST", message: "Invalid input." } },
      limit: { error: { code: "REQUEST_LIMIT_EXCEEDED", message: "rate limit" } },
      busy: { error: { code: "TEMPORARILY_UNAVAILABLE", message: "overloaded" } },
      late: { error: { code: "DEADLINE_EXCEEDED", message: "deadline passed in the queue" } },
      broken: { error: { code: "INTERNAL_ERROR", message: "internal error" } },
    };
    await withEndpoint(s, (req) => errors[JSON.parse(new TextDecoder().decode(req.data)).kind as string]!);
    const status = { invalid: 400, bad: 400, limit: 429, busy: 503, late: 504, broken: 500 } as const;
    for (const [kind, st] of Object.entries(status)) {
      const res = await s.call("/serving-endpoints/ep/invocations", json({ kind }));
      const code = errors[kind]!.error!.code;
      expect(await expectError(res, st, code)).toBe(errors[kind]!.error!.message);
      expect(res.headers.get(H.errorCode)).toBe(code);
      expect(res.headers.get("x-served-model")).toBe("a");
      expect(res.headers.get("retry-after")).toBe(st === 503 ? "1" : null);
    }
  });

  it("400 INVALID_PARAMETER_VALUE for a bad timeout header", async () => {
    const s = await setup();
    await withEndpoint(s);
    const res = await s.call("/serving-endpoints/ep/invocations", {
      ...json(BODY),
      headers: { "content-type": "application/json", "x-switchyard-timeout-ms": "-5" },
    });
    expect(await expectError(res, 400, "INVALID_PARAMETER_VALUE")).toContain("x-switchyard-timeout-ms");
  });

  it("404 RESOURCE_DOES_NOT_EXIST for an unknown endpoint or path", async () => {
    const s = await setup();
    expect(
      await expectError(
        await s.call("/serving-endpoints/nope/invocations", json(BODY)),
        404,
        "RESOURCE_DOES_NOT_EXIST",
      ),
    ).toBe("endpoint 'nope' does not exist");
    await expectError(await s.call("/no/such/path"), 404, "RESOURCE_DOES_NOT_EXIST");
  });

  it("413 REQUEST_TOO_LARGE for a 17 MB body", async () => {
    const s = await setup();
    const d = await withEndpoint(s);
    const big = `{"inputs": [${"1,".repeat(8_500_000)}1]}`;
    expect(big.length).toBeGreaterThan(17_000_000);
    const res = await s.call("/serving-endpoints/ep/invocations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: big,
    });
    expect(await expectError(res, 413, "REQUEST_TOO_LARGE")).toContain(String(16 * 1024 * 1024));
    expect(d.received.length).toBe(0);
  });

  it("415 UNSUPPORTED_MEDIA_TYPE for text/plain invocations and CSV to OIP", async () => {
    const s = await setup();
    await withEndpoint(s);
    const plain = { method: "POST", headers: { "content-type": "text/plain" }, body: '{"inputs": [1]}' };
    expect(
      await expectError(
        await s.call("/serving-endpoints/ep/invocations", plain),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      ),
    ).toContain("text/plain");
    const csv = { method: "POST", headers: { "content-type": "text/csv" }, body: "x\n1\n" };
    await expectError(await s.call("/v2/models/ep/infer", csv), 415, "UNSUPPORTED_MEDIA_TYPE");
    // Management routes read JSON whatever the Content-Type: a CSV body is simply not JSON.
    await expectError(await s.call("/api/2.0/serving-endpoints", csv), 400, "BAD_REQUEST");
  });

  it("503 TEMPORARILY_UNAVAILABLE with Retry-After after the one retry", async () => {
    const s = await setup();
    const d = await withEndpoint(s, () => ({
      error: { code: "TEMPORARILY_UNAVAILABLE", message: "overloaded" },
    }));
    const res = await s.call("/serving-endpoints/ep/invocations", json(BODY));
    await expectError(res, 503, "TEMPORARILY_UNAVAILABLE");
    expect(res.headers.get("retry-after")).toBe("1");
    expect(d.received.length).toBe(2);
  });

  it("504 DEADLINE_EXCEEDED within the timeout when nothing answers", async () => {
    const s = await setup();
    await withEndpoint(s, () => ({ silent: true }));
    await putEndpoint(files.nc(), s.cluster, "starting"); // exists, no routes yet
    for (const ep of ["ep", "starting"]) {
      const started = Date.now();
      const res = await s.call(`/serving-endpoints/${ep}/invocations`, {
        ...json(BODY),
        headers: { "content-type": "application/json", "x-switchyard-timeout-ms": "300" },
      });
      await expectError(res, 504, "DEADLINE_EXCEEDED");
      expect(Date.now() - started).toBeLessThan(2_000);
    }
  });

  it("500 INTERNAL_ERROR without the error's message or stack", async () => {
    const cluster = uniqueCluster();
    const lines: string[] = [];
    const { pino } = await import("pino");
    const logger = pino({ level: "error" }, { write: (l: string) => void lines.push(l) });
    // A router that fails in a way nobody planned for.
    const router = {
      admit: async () => {},
      invoke: async () => {
        throw new Error("secret detail at /srv/x.ts:1");
      },
      close: async () => {},
    } as unknown as import("@switchyard/client").Router;
    const bridge = await listenBridge({ nc: files.nc(), cluster, auth: false, router, logger });
    cleanups.push(() => bridge.close());
    const res = await fetch(`${bridge.url}/serving-endpoints/ep/invocations`, json(BODY));
    const text = await res.text();
    expect(res.status).toBe(500);
    expect(JSON.parse(text)).toEqual({ error_code: "INTERNAL_ERROR", message: "internal error" });
    expect(text).not.toContain("secret");
    expect(lines.join("")).toContain("secret detail"); // logged for the operator
  });
});

describe("management API", () => {
  it("reads JSON bodies whatever their Content-Type, as Databricks does for `curl -d`", async () => {
    const s = await setup();
    const api = apiDouble(files.nc(), s.cluster, (op, body) => ({
      body: { name: (body as { name?: string }).name, op },
    }));
    cleanups.push(api.stop);
    const config = { served_entities: [{ entity_name: "churn", entity_version: "3" }] };
    // `curl -d '{…}'` sends application/x-www-form-urlencoded; fetch with a string body sends text/plain.
    const variants: Record<string, string>[] = [{ "content-type": "application/x-www-form-urlencoded" }, {}];
    for (const headers of variants) {
      const res = await s.call("/api/2.0/serving-endpoints", {
        method: "POST",
        headers,
        body: JSON.stringify({ name: "e1", config }),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ name: "e1", op: "endpoints.create" });
    }
  });

  it("forwards Databricks paths and bodies to <c>.api.endpoints.* and their statuses back", async () => {
    const s = await setup();
    const api = apiDouble(files.nc(), s.cluster, (op, body) => {
      const name = (body as { name?: string }).name;
      if (name === "missing")
        return { error: { code: "RESOURCE_DOES_NOT_EXIST", message: "no such endpoint" } };
      if (name === "busy") return { error: { code: "RESOURCE_CONFLICT", message: "update in progress" } };
      if (op === "endpoints.list") return { body: { endpoints: [{ name: "e1" }] } };
      if (op === "endpoints.delete") return { body: {} };
      return { body: { name, state: { ready: "NOT_READY" }, op } };
    });
    cleanups.push(api.stop);
    const config = {
      served_entities: [{ entity_name: "churn", entity_version: "3", workload_size: "Small" }],
    };
    const create = await s.call("/api/2.0/serving-endpoints", json({ name: "e1", config }));
    expect(create.status).toBe(200);
    expect(await create.json()).toEqual({
      name: "e1",
      state: { ready: "NOT_READY" },
      op: "endpoints.create",
    });
    const list = await s.call("/api/2.0/serving-endpoints");
    expect(await list.json()).toEqual({ endpoints: [{ name: "e1" }] });
    expect(await (await s.call("/api/2.0/serving-endpoints/e1")).json()).toMatchObject({
      op: "endpoints.get",
    });
    const put = await s.call("/api/2.0/serving-endpoints/e1/config", { ...json(config), method: "PUT" });
    expect(await put.json()).toMatchObject({ name: "e1", op: "endpoints.update" });
    const del = await s.call("/api/2.0/serving-endpoints/e1", { method: "DELETE" });
    expect(del.status).toBe(200);
    expect(await del.json()).toEqual({});
    expect(api.calls).toEqual([
      { op: "endpoints.create", body: { name: "e1", config }, user: `token:${s.tokenId}` },
      { op: "endpoints.list", body: {} },
      { op: "endpoints.get", body: { name: "e1" } },
      { op: "endpoints.update", body: { name: "e1", config } },
      { op: "endpoints.delete", body: { name: "e1" } },
    ]);

    await expectError(await s.call("/api/2.0/serving-endpoints/missing"), 404, "RESOURCE_DOES_NOT_EXIST");
    const conflict = await s.call("/api/2.0/serving-endpoints/busy/config", {
      ...json(config),
      method: "PUT",
    });
    expect(await expectError(conflict, 409, "RESOURCE_CONFLICT")).toBe("update in progress");
    const malformed = await s.call("/api/2.0/serving-endpoints", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"name": ',
    });
    expect(await expectError(malformed, 400, "BAD_REQUEST")).toContain("not valid JSON");
    expect(api.calls.length).toBe(7);
  });

  it("forwards /api/2.0/switchyard/streams routes to <c>.api.streams.* and their statuses back", async () => {
    const s = await setup();
    const api = apiDouble(files.nc(), s.cluster, (op, body) => {
      const name = (body as { name?: string }).name;
      if (name === "missing") {
        return { error: { code: "RESOURCE_DOES_NOT_EXIST", message: "stream job 'missing' does not exist" } };
      }
      if (op === "streams.create" && name === "bad") {
        return { error: { code: "INVALID_PARAMETER_VALUE", message: "sink_subject: expected a subject" } };
      }
      if (op === "streams.stop" && name === "idle") {
        return { error: { code: "RESOURCE_CONFLICT", message: "stream job 'idle' is already stopped" } };
      }
      if (op === "streams.list") return { body: { streams: [{ name: "s1" }] } };
      if (op === "streams.delete") return { body: {} };
      return { body: { name, op } };
    });
    cleanups.push(api.stop);
    const request = {
      name: "s1",
      model: "models:/lr/1",
      source_stream: "EVENTS",
      sink_subject: "scores",
      batch: 64,
    };
    const create = await s.call("/api/2.0/switchyard/streams", json(request));
    expect(create.status).toBe(200);
    expect(await create.json()).toEqual({ name: "s1", op: "streams.create" });
    expect(await (await s.call("/api/2.0/switchyard/streams")).json()).toEqual({ streams: [{ name: "s1" }] });
    expect(await (await s.call("/api/2.0/switchyard/streams/s1")).json()).toEqual({
      name: "s1",
      op: "streams.get",
    });
    const stop = await s.call("/api/2.0/switchyard/streams/s1/stop", { method: "POST" });
    expect(await stop.json()).toEqual({ name: "s1", op: "streams.stop" });
    const start = await s.call("/api/2.0/switchyard/streams/s1/start", { method: "POST" });
    expect(await start.json()).toEqual({ name: "s1", op: "streams.start" });
    const del = await s.call("/api/2.0/switchyard/streams/s1", { method: "DELETE" });
    expect(del.status).toBe(200);
    expect(await del.json()).toEqual({});
    expect(api.calls).toEqual([
      { op: "streams.create", body: request },
      { op: "streams.list", body: {} },
      { op: "streams.get", body: { name: "s1" } },
      { op: "streams.stop", body: { name: "s1" } },
      { op: "streams.start", body: { name: "s1" } },
      { op: "streams.delete", body: { name: "s1" } },
    ]);

    const bad = await s.call("/api/2.0/switchyard/streams", json({ ...request, name: "bad" }));
    expect(await expectError(bad, 400, "INVALID_PARAMETER_VALUE")).toBe("sink_subject: expected a subject");
    const missing = await s.call("/api/2.0/switchyard/streams/missing");
    expect(await expectError(missing, 404, "RESOURCE_DOES_NOT_EXIST")).toBe(
      "stream job 'missing' does not exist",
    );
    const idle = await s.call("/api/2.0/switchyard/streams/idle/stop", { method: "POST" });
    expect(await expectError(idle, 409, "RESOURCE_CONFLICT")).toBe("stream job 'idle' is already stopped");
    const notJson = await s.call("/api/2.0/switchyard/streams", { method: "POST", body: "[1]" });
    expect(await expectError(notJson, 400, "BAD_REQUEST")).toBe("the request body must be a JSON object");
    await expectError(await fetch(`${s.bridge.url}/api/2.0/switchyard/streams`), 401, "UNAUTHENTICATED");
    // Refused requests never reach the coordinators.
    expect(api.calls.length).toBe(9);
  });

  it("503 when no coordinator answers", async () => {
    const s = await setup();
    const res = await s.call("/api/2.0/serving-endpoints");
    await expectError(res, 503, "TEMPORARILY_UNAVAILABLE");
    expect(res.headers.get("retry-after")).toBe("1");
  });
});

describe("Open Inference Protocol v2", () => {
  it("serves model metadata from the registry signature, readiness, and infer with the oip format", async () => {
    const s = await setup();
    const registry = await Registry.open(files.nc(), { cluster: s.cluster });
    const v1 = await registerModel(
      registry,
      "churn",
      writeTempModel(buildLinear({ inputs: 4, sigmoid: true })),
    );
    const v2 = await registerModel(registry, "churn", writeTempModel(buildLinear({ inputs: 4, outputs: 2 })));
    const a = route(s.cluster, "ep", "a", 80, "churn", v1.version);
    const b = route(s.cluster, "ep", "b", 20, "churn", v2.version);
    const da = replicaDouble(files.nc(), a, () => ({ body: { model_name: "ep", outputs: [] } }));
    const db = replicaDouble(files.nc(), b, () => ({ body: { model_name: "ep", outputs: [] } }));
    cleanups.push(da.stop, db.stop);
    await putEndpointWithRoutes(files.nc(), s.cluster, "ep", [a, b]);

    const meta = await s.call("/v2/models/ep");
    expect(meta.status).toBe(200);
    expect(await meta.json()).toEqual({
      name: "ep",
      versions: ["1", "2"],
      platform: "onnxruntime_onnx",
      inputs: [{ name: "input", datatype: "FP32", shape: [-1, 4] }],
      outputs: [{ name: "output", datatype: "FP32", shape: [-1, 1] }],
    });
    const meta2 = (await (await s.call("/v2/models/ep/versions/2")).json()) as { outputs: unknown };
    expect(meta2.outputs).toEqual([{ name: "output", datatype: "FP32", shape: [-1, 2] }]);
    await expectError(await s.call("/v2/models/ep/versions/7"), 404, "RESOURCE_DOES_NOT_EXIST");
    await expectError(await s.call("/v2/models/nope"), 404, "RESOURCE_DOES_NOT_EXIST");

    expect(await (await s.call("/v2/models/ep/ready")).json()).toEqual({ name: "ep", ready: true });
    expect((await s.call("/v2/models/ep/versions/2/ready")).status).toBe(200);
    const notReady = await s.call("/v2/models/ep/versions/9/ready");
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ name: "ep", ready: false });

    const oipBody = { inputs: [{ name: "input", datatype: "FP32", shape: [1, 4], data: [1, 2, 3, 4] }] };
    const res = await s.call("/v2/models/ep/versions/2/infer", json(oipBody));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-served-model")).toBe("b");
    expect(db.received[0]!.headers[H.format]).toBe("oip");
    expect(JSON.parse(new TextDecoder().decode(db.received[0]!.data))).toEqual(oipBody);
    const any = await s.call("/v2/models/ep/infer", json(oipBody));
    expect(any.status).toBe(200);
    expect(da.received.length + db.received.length).toBe(2);
  });
});
