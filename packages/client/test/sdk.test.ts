// The SDK (JSON and msgpack invocations, the management API) and the invoke actor that serves raw NATS clients.
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import { Frame, type Tensor } from "@switchyard/data";
import { decode, encode } from "@switchyard/data/codec";
import { H } from "@switchyard/protocol";
import { describe, expect, inject, it } from "vitest";
import { SwitchyardClient } from "../src/client.js";
import { serveInvoke } from "../src/invoke-actor.js";
import { Router } from "../src/router.js";
import {
  apiDouble,
  natsPerFile,
  putEndpointWithRoutes,
  rejection,
  replicaDouble,
  route,
  uniqueCluster,
} from "./fixtures/doubles.js";

const files = natsPerFile();
const cleanups = files.cleanups;

const utf8 = new TextDecoder();

async function client(cluster: string): Promise<SwitchyardClient> {
  const c = await SwitchyardClient.connect({ servers: inject("natsUrl"), cluster });
  cleanups.push(() => c.close());
  return c;
}

describe("SwitchyardClient.invoke", () => {
  it("sends an MLflow body as JSON and returns the predictions", async () => {
    const cluster = uniqueCluster();
    const a = route(cluster, "ep", "a", 100);
    const d = replicaDouble(files.nc(), a, (req) => ({
      body: { predictions: [JSON.parse(utf8.decode(req.data)).dataframe_split.data[0][0] * 2] },
    }));
    cleanups.push(d.stop);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const c = await client(cluster);
    const out = await c.invoke(
      "ep",
      { dataframe_split: { columns: ["x"], data: [[21]] } },
      { requestId: "r-1" },
    );
    expect(out).toEqual({ predictions: [42] });
    expect(d.received[0]!.headers[H.contentType]).toBe("application/json");
    expect(d.received[0]!.headers[H.requestId]).toBe("r-1");
  });

  it("sends Frames and Tensors as msgpack {input, params} and returns the output", async () => {
    const cluster = uniqueCluster();
    const a = route(cluster, "ep", "a", 100);
    const d = replicaDouble(files.nc(), a, (req) => {
      const { input, params } = decode(req.data, { copy: true }) as { input: unknown; params: unknown };
      const x =
        input instanceof Frame ? (input.entries()[0]!.data as Float64Array) : (input as Tensor[])[0]!.data;
      const y = Float32Array.from(x as ArrayLike<number>, (v) => v + 1);
      const output: Tensor[] = [{ name: "y", dtype: "float32", shape: [y.length, 1], data: y }];
      return { data: encode({ output, params }) };
    });
    cleanups.push(d.stop);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const c = await client(cluster);
    const tensors: Tensor[] = [{ name: "x", dtype: "float32", shape: [2, 1], data: Float32Array.of(1, 2) }];
    const out = (await c.invoke("ep", tensors, { params: { k: 1 } })) as Tensor[];
    expect(d.received[0]!.headers[H.contentType]).toBe("application/msgpack");
    expect(out[0]!.name).toBe("y");
    expect(Array.from(out[0]!.data as Float32Array)).toEqual([2, 3]);
    const frame = Frame.of([{ name: "x", kind: "float64", data: Float64Array.of(5) }], 1);
    const out2 = (await c.invoke("ep", frame)) as Tensor[];
    expect(Array.from(out2[0]!.data as Float32Array)).toEqual([6]);
  });

  it("rebuilds error replies as SwitchyardError", async () => {
    const cluster = uniqueCluster();
    const a = route(cluster, "ep", "a", 100);
    const d = replicaDouble(files.nc(), a, () => ({
      error: { code: "INVALID_PARAMETER_VALUE", message: "missing column 'x'" },
    }));
    cleanups.push(d.stop);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const c = await client(cluster);
    const err = await rejection(c.invoke("ep", { inputs: [[1]] }));
    expect(err.code).toBe("INVALID_PARAMETER_VALUE");
    expect(err.message).toBe("missing column 'x'");
    expect((await rejection(c.invoke("nope", { inputs: [[1]] }))).code).toBe("RESOURCE_DOES_NOT_EXIST");
  });
});

describe("SwitchyardClient.endpoints", () => {
  it("calls <c>.api.endpoints.* with the HTTP API's JSON bodies", async () => {
    const cluster = uniqueCluster();
    const api = apiDouble(files.nc(), cluster, (op, body) => {
      const name = (body as { name?: string }).name;
      if (op === "endpoints.list") return { body: { endpoints: [{ name: "e1" }, { name: "e2" }] } };
      if (op === "endpoints.delete") return { body: {} };
      if (name === "missing") return { error: { code: "RESOURCE_DOES_NOT_EXIST", message: "no 'missing'" } };
      return { body: { name, op } };
    });
    cleanups.push(api.stop);
    const c = await client(cluster);
    const config = { served_entities: [{ entity_name: "m", entity_version: "1", workload_size: "Small" }] };
    expect(await c.endpoints.create({ name: "e1", config })).toEqual({ name: "e1", op: "endpoints.create" });
    expect(await c.endpoints.update("e1", config)).toEqual({ name: "e1", op: "endpoints.update" });
    expect(await c.endpoints.get("e1")).toEqual({ name: "e1", op: "endpoints.get" });
    expect(await c.endpoints.list()).toEqual([{ name: "e1" }, { name: "e2" }]);
    await c.endpoints.delete("e1");
    expect(api.calls).toEqual([
      { op: "endpoints.create", body: { name: "e1", config } },
      { op: "endpoints.update", body: { name: "e1", config } },
      { op: "endpoints.get", body: { name: "e1" } },
      { op: "endpoints.list", body: {} },
      { op: "endpoints.delete", body: { name: "e1" } },
    ]);
    const err = await rejection(c.endpoints.get("missing"));
    expect(err.code).toBe("RESOURCE_DOES_NOT_EXIST");
    expect(err.message).toBe("no 'missing'");
  });

  it("says so when no coordinator answers", async () => {
    const c = await client(uniqueCluster());
    const err = await rejection(c.endpoints.list());
    expect(err.code).toBe("TEMPORARILY_UNAVAILABLE");
    expect(err.message).toContain("no coordinator");
  });
});

describe("SwitchyardClient.streams", () => {
  it("calls <c>.api.streams.* with the HTTP API's JSON bodies and returns the views", async () => {
    const cluster = uniqueCluster();
    const api = apiDouble(files.nc(), cluster, (op, body) => {
      const name = (body as { name?: string }).name;
      if (op === "streams.list") return { body: { streams: [{ name: "s1" }, { name: "s2" }] } };
      if (op === "streams.delete") return { body: {} };
      if (name === "missing") {
        return { error: { code: "RESOURCE_DOES_NOT_EXIST", message: "stream job 'missing' does not exist" } };
      }
      if (op === "streams.create" && !("model" in (body as object))) {
        return {
          error: {
            code: "INVALID_PARAMETER_VALUE",
            message: "model: expected exactly one of model, endpoint",
          },
        };
      }
      return { body: { name, op } };
    });
    cleanups.push(api.stop);
    const c = await client(cluster);
    const request = {
      name: "s1",
      model: "models:/lr@champion",
      source_stream: "EVENTS",
      sink_subject: "scores",
      key: ["card_id"],
    };
    expect(await c.streams.create(request)).toEqual({ name: "s1", op: "streams.create" });
    expect(await c.streams.get("s1")).toEqual({ name: "s1", op: "streams.get" });
    expect(await c.streams.list()).toEqual([{ name: "s1" }, { name: "s2" }]);
    expect(await c.streams.stop("s1")).toEqual({ name: "s1", op: "streams.stop" });
    expect(await c.streams.start("s1")).toEqual({ name: "s1", op: "streams.start" });
    expect(await c.streams.delete("s1")).toBeUndefined();
    expect(api.calls).toEqual([
      { op: "streams.create", body: request },
      { op: "streams.get", body: { name: "s1" } },
      { op: "streams.list", body: {} },
      { op: "streams.stop", body: { name: "s1" } },
      { op: "streams.start", body: { name: "s1" } },
      { op: "streams.delete", body: { name: "s1" } },
    ]);
    const missing = await rejection(c.streams.get("missing"));
    expect([missing.code, missing.message]).toEqual([
      "RESOURCE_DOES_NOT_EXIST",
      "stream job 'missing' does not exist",
    ]);
    const invalid = await rejection(
      c.streams.create({ name: "s3", source_stream: "EVENTS", sink_subject: "x" }),
    );
    expect([invalid.code, invalid.message]).toEqual([
      "INVALID_PARAMETER_VALUE",
      "model: expected exactly one of model, endpoint",
    ]);
  });
});

describe("invoke actor (raw NATS clients)", () => {
  it("answers a plain JSON request on <c>.invoke.<endpoint> with the JSON reply and headers", async () => {
    const cluster = uniqueCluster();
    const a = route(cluster, "ep", "a", 100, "churn", 3);
    const d = replicaDouble(files.nc(), a);
    cleanups.push(d.stop);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const router = await Router.start(files.nc(), { cluster });
    const actor = serveInvoke(files.nc(), router, cluster);
    cleanups.push(
      () => router.close(),
      () => actor.stop(),
    );

    // What a Go or Python client does: a request with a JSON body and nothing else.
    const raw = await connect({ servers: inject("natsUrl") });
    cleanups.push(() => raw.close());
    const msg = await raw.request(`${cluster}.invoke.ep`, '{"dataframe_records": [{"x": 1}]}', {
      timeout: 5_000,
    });
    expect(utf8.decode(msg.data)).toBe('{"predictions":["a"]}');
    expect(msg.headers?.get(H.servedModel)).toBe("a");
    expect(msg.headers?.get(H.modelName)).toBe("churn");
    expect(msg.headers?.get(H.modelVersion)).toBe("3");
    expect(msg.headers?.get(H.requestId)).toMatch(/^[0-9a-f-]{36}$/);
    // No content type given, none invented: the replica tells JSON from msgpack by the first byte.
    expect(d.received[0]!.headers[H.contentType]).toBeUndefined();
    expect(utf8.decode(d.received[0]!.data)).toBe('{"dataframe_records": [{"x": 1}]}');

    // Headers a raw client may set travel on.
    const h = natsHeaders();
    h.set(H.requestId, "go-1");
    h.set(H.timeoutMs, "2000");
    const before = Date.now();
    await raw.request(`${cluster}.invoke.ep`, "{}", { timeout: 5_000, headers: h });
    expect(d.received[1]!.headers[H.requestId]).toBe("go-1");
    const deadline = Number(d.received[1]!.headers[H.deadline]);
    expect(deadline).toBeGreaterThanOrEqual(before + 2_000);
    expect(deadline).toBeLessThan(before + 3_000);

    // Errors: error_code in the body and the header.
    const err = await raw.request(`${cluster}.invoke.nope`, "{}", { timeout: 5_000 });
    expect(err.headers?.get(H.errorCode)).toBe("RESOURCE_DOES_NOT_EXIST");
    expect(JSON.parse(utf8.decode(err.data))).toEqual({
      error_code: "RESOURCE_DOES_NOT_EXIST",
      message: "endpoint 'nope' does not exist",
    });
    const h2 = natsHeaders();
    h2.set(H.timeoutMs, "soon");
    const bad = await raw.request(`${cluster}.invoke.ep`, "{}", { timeout: 5_000, headers: h2 });
    expect(bad.headers?.get(H.errorCode)).toBe("INVALID_PARAMETER_VALUE");
  });
});
