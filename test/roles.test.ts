// A cluster assembled from the per-role commands a multi-host deployment runs — `switchyard coordinator`,
// `switchyard node` and `switchyard bridge`, each its own process against one NATS server — serving the
// notes' request end to end. References come from raw onnxruntime-node.
import path from "node:path";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createEndpoint, endpointReady, role, stopRoles } from "./helpers/roles.js";
import { cli, eventually } from "./helpers/up.js";

afterAll(stopRoles);

describe("switchyard coordinator | node | bridge as separate processes", () => {
  it("serve an endpoint created over HTTP", async () => {
    const cluster = `r${Math.random().toString(36).slice(2, 9)}`;
    const nats = ["--nats", inject("natsUrl"), "--cluster", cluster];
    role(["coordinator", ...nats, "--id", "c1"]);
    const cache = path.join(tempDir("sy-roles-"), "models");
    role(["node", ...nats, "--node-id", "host-a", "--threads", "2", "--cache-dir", cache]);
    const bridge = role(["bridge", ...nats, "--http-port", "0", "--no-auth"]);
    const url = await eventually(
      () => bridge.output().match(/listening on (http:\/\/\S+)/)?.[1],
      "the bridge URL",
    );
    expect(bridge.output()).toMatch(/WARNING: authentication is OFF/);

    const model = buildLinear({ inputs: 2, sigmoid: true, bias: [0.25] });
    const reg = await cli(["models", "register", "roles_model", writeTempModel(model), "--json", ...nats]);
    expect(reg.stderr).toBe("");
    expect(JSON.parse(reg.stdout).version).toBe(1);

    const created = await createEndpoint(url, "roles-ep", "roles_model");
    expect(created.status).toBe(200);
    await endpointReady(url, "roles-ep");

    const rows = [
      [1.0, 3.5],
      [-2, 0.5],
    ];
    const res = await fetch(`${url}/serving-endpoints/roles-ep/invocations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ dataframe_split: { columns: ["feature1", "feature2"], data: rows } }),
    });
    expect(res.status).toBe(200);
    const session = await ort.InferenceSession.create(model);
    const want = (
      await session.run({ input: new ort.Tensor("float32", Float32Array.from(rows.flat()), [2, 2]) })
    ).output!.data as Float32Array;
    const got = ((await res.json()) as { predictions: number[] }).predictions;
    expect(got).toHaveLength(2);
    got.forEach((v, i) => {
      expect(Math.abs(v - want[i]!)).toBeLessThan(1e-5);
    });
    const listed = await cli(["endpoints", "list", "--json", ...nats]);
    expect(JSON.parse(listed.stdout).endpoints.map((e: { name: string }) => e.name)).toEqual(["roles-ep"]);
  });
});
