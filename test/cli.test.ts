// `switchyard up` and the `models` commands as a user runs them: real processes, the built CLI (dist/),
// a real nats-server started by `up`. Every assertion is on what the user sees: output, exit code, files.
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { connectNats } from "@switchyard/nats";
import {
  buildLinear,
  buildMultiInput,
  tempDir,
  tensorSpec,
  writeMlflowModelDir,
  writeTempModel,
} from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  alive,
  childrenMatching,
  cli,
  clusterClient,
  eventually,
  shell,
  spawnUp,
  startUp,
  type Up,
} from "./helpers/up.js";

describe("switchyard up + models", () => {
  const dataDir = path.join(tempDir("sy-up-"), "data");
  let up: Up;
  let natsPid: number;
  const env = () => ({ SWITCHYARD_DATA_DIR: dataDir });
  const lr = writeTempModel(buildLinear({ inputs: 3, sigmoid: true }), "lr.onnx");
  const multi = writeTempModel(buildMultiInput(), "multi.onnx");

  beforeAll(async () => {
    up = await startUp(dataDir);
    natsPid = await eventually(
      () => childrenMatching(up.proc.pid!, "nats-server")[0],
      "the nats-server child",
    );
  });

  afterAll(async () => {
    if (up.proc.exitCode === null) {
      up.proc.kill("SIGTERM");
      await up.exited;
    }
  });

  it("writes cluster.json and secrets.json with mode 0600 and a natsUrl that connects as is", async () => {
    const file = path.join(dataDir, "cluster.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dataDir, "secrets.json")).mode & 0o777).toBe(0o600);
    const info = JSON.parse(readFileSync(file, "utf8"));
    expect(info.cluster).toBe("sy");
    expect(info.natsUrl).toMatch(/^nats:\/\/admin:[^@]+@127\.0\.0\.1:\d+$/);
    expect(info.pid).toBe(up.proc.pid);
    // nats.js does not read credentials from a URL; our helper (like the Go client and the nats CLI) does.
    const nc = await connectNats({ servers: info.natsUrl, reconnect: false });
    await nc.flush();
    await nc.close();
  });

  it("refuses NATS clients without the credentials", async () => {
    const info = JSON.parse(readFileSync(path.join(dataDir, "cluster.json"), "utf8"));
    const bare = info.natsUrl.replace(/\/\/[^@]+@/, "//");
    await expect(connect({ servers: bare, maxReconnectAttempts: 0 })).rejects.toThrow(/Authorization/i);
  });

  it("registers versions, resolves aliases and shows signatures", async () => {
    const r1 = await cli(["models", "register", "catalog.schema.fraud", lr, "--json"], env());
    expect(r1.stderr).toBe("");
    expect(r1.code).toBe(0);
    const v1 = JSON.parse(r1.stdout);
    expect(v1).toMatchObject({ name: "catalog.schema.fraud", version: 1, flavor: "onnx" });
    expect(v1.signature.inputs).toEqual([{ name: "input", dtype: "float32", shape: ["batch", 3] }]);

    const r2 = await cli(["models", "register", "catalog.schema.fraud", multi, "--alias", "champion"], env());
    expect(r2.code).toBe(0);
    expect(r2.stdout.trim()).toBe(
      "Registered models:/catalog.schema.fraud/2 (onnx, 2 input(s), 2 output(s)) as @champion",
    );

    const versions = await cli(["models", "versions", "catalog.schema.fraud", "--json"], env());
    expect(JSON.parse(versions.stdout).map((v: { version: number }) => v.version)).toEqual([1, 2]);

    const champion = await cli(["models", "get", "models:/catalog.schema.fraud@champion", "--json"], env());
    const got = JSON.parse(champion.stdout);
    expect(got.version).toBe(2);
    expect(got.aliases).toEqual(["champion"]);
    expect(got.signature.outputs.map((o: { name: string }) => o.name)).toEqual(["label", "probabilities"]);
    expect(got.artifacts[0].digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    const human = await cli(["models", "get", "models:/catalog.schema.fraud/latest"], env());
    expect(human.stdout).toContain("models:/catalog.schema.fraud/2");
    expect(human.stdout).toContain("a: float32[batch, 1]");
    expect(human.stdout).toContain("@champion");

    expect((await cli(["models", "alias", "set", "catalog.schema.fraud", "champion", "1"], env())).code).toBe(
      0,
    );
    const moved = JSON.parse(
      (await cli(["models", "get", "models:/catalog.schema.fraud@champion", "--json"], env())).stdout,
    );
    expect(moved.version).toBe(1);

    expect((await cli(["models", "alias", "delete", "catalog.schema.fraud", "champion"], env())).code).toBe(
      0,
    );
    const gone = await cli(["models", "get", "models:/catalog.schema.fraud@champion"], env());
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim().split("\n")).toHaveLength(1);
    expect(gone.stderr).toMatch(/^error: .*champion/);

    const list = JSON.parse((await cli(["models", "list", "--json"], env())).stdout);
    expect(list.map((m: { name: string }) => m.name)).toEqual(["catalog.schema.fraud"]);
  });

  it("registers an MLflow model directory with its signature", async () => {
    const dir = writeMlflowModelDir({
      onnx: buildLinear({ inputs: 2 }),
      signature: { inputs: tensorSpec("float32", [-1, 2]), outputs: tensorSpec("float32", [-1, 1]) },
    });
    const r = await cli(["models", "register", "mlflow_model", dir, "--json"], env());
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v.version).toBe(1);
    expect(v.mlflow_signature.inputs).toEqual([
      { type: "tensor", "tensor-spec": { dtype: "float32", shape: [-1, 2] } },
    ]);
    expect(v.artifacts.map((a: { path: string }) => a.path)).toContain("MLmodel");
  });

  it.each([
    [
      "a file that is not ONNX",
      () => ["models", "register", "bad", writeNotOnnx()],
      /not an ONNX model/,
      "bad",
    ],
    [
      "a missing path",
      () => ["models", "register", "missing", "/nonexistent/x.onnx"],
      /does not exist/,
      "missing",
    ],
    [
      "an illegal name",
      () => ["models", "register", "bad name!", lr],
      /model name 'bad name!' is invalid/,
      undefined,
    ],
    ["a malformed URI", () => ["models", "get", "fraud/3"], /model URI 'fraud\/3' is malformed/, undefined],
    ["an unknown version", () => ["models", "get", "models:/catalog.schema.fraud/99"], /99/, undefined],
    [
      "an unknown alias target",
      () => ["models", "alias", "set", "catalog.schema.fraud", "x", "42"],
      /42/,
      undefined,
    ],
  ])(
    "refuses %s with one line and a non-zero exit, registering nothing",
    async (_what, args, message, name) => {
      const r = await cli(args(), env());
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      if (name) {
        const after = await cli(["models", "versions", name], env());
        expect(after.code).toBe(1);
        expect(after.stderr).toMatch(/does not exist/);
      }
    },
  );

  it("answers --json errors with the MLflow error body", async () => {
    const r = await cli(["models", "get", "models:/nope/1", "--json"], env());
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stderr)).toMatchObject({ error_code: "RESOURCE_DOES_NOT_EXIST" });
  });

  it("refuses a second `up` on the same data dir while the first runs", async () => {
    const second = spawnUp(dataDir);
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/already running/);
  });

  it("stops on SIGTERM without leaving a process behind, and the next `up` finds the registry again", async () => {
    expect(alive(natsPid)).toBe(true);
    up.proc.kill("SIGTERM");
    expect(await up.exited).toBe(0);
    expect(alive(natsPid)).toBe(false);
    expect(existsSync(path.join(dataDir, "cluster.json"))).toBe(false);

    const offline = await cli(["models", "list"], env());
    expect(offline.code).toBe(1);
    expect(offline.stderr).toMatch(/no local cluster found/);

    up = await startUp(dataDir);
    const versions = JSON.parse(
      (await cli(["models", "versions", "catalog.schema.fraud", "--json"], env())).stdout,
    );
    expect(versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
  });
});

describe("switchyard up --config", () => {
  it("reads cluster.config settings and names the bad key of an invalid one", async () => {
    const dir = tempDir("sy-config-");
    const good = path.join(dir, "good.config.mjs");
    writeFileSync(
      good,
      `export default { cluster: { name: "cfgtest", natsPort: 0, dataDir: ${JSON.stringify(path.join(dir, "d"))} } };\n`,
    );
    const up = await startUp(path.join(dir, "d"), ["--config", good]);
    const info = up.info();
    expect(info.cluster).toBe("cfgtest");
    up.proc.kill("SIGTERM");
    expect(await up.exited).toBe(0);

    const bad = path.join(dir, "bad.config.mjs");
    writeFileSync(bad, "export default { cluster: { natsport: 1 } };\n");
    const r = await cli(["up", "--config", bad, "--data-dir", path.join(dir, "e")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/natsport/);
  });
});

function writeNotOnnx(): string {
  const file = path.join(tempDir("sy-bad-"), "bad.onnx");
  writeFileSync(file, "this is not a model\n".repeat(20));
  return file;
}

describe("switchyard up --no-auth", () => {
  it("serves HTTP without tokens only when asked, and says so", async () => {
    const up = await startUp(path.join(tempDir("sy-noauth-"), "data"), ["--no-auth"]);
    try {
      expect(up.output()).toMatch(/WARNING: authentication is OFF/);
      const info = up.info();
      expect(info.token).toBeUndefined();
      const res = await fetch(`${info.httpUrl}/api/2.0/serving-endpoints`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ endpoints: [] });
    } finally {
      expect(await up.stop()).toBe(0);
    }
  });

  it("requires a bearer token by default", async () => {
    const up = await startUp(path.join(tempDir("sy-auth-"), "data"));
    try {
      const info = up.info();
      expect(up.output()).toContain(`admin token: ${info.token}`);
      const anonymous = await fetch(`${info.httpUrl}/api/2.0/serving-endpoints`);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toMatchObject({ error_code: "UNAUTHENTICATED" });
      const admin = await fetch(`${info.httpUrl}/api/2.0/serving-endpoints`, {
        headers: { authorization: `Bearer ${info.token}` },
      });
      expect(admin.status).toBe(200);

      const env = { SWITCHYARD_DATA_DIR: up.dataDir };
      const created = await cli(["tokens", "create", "--scope", "admin", "--json"], env);
      expect(created.code).toBe(0);
      const { token, id } = JSON.parse(created.stdout) as { token: string; id: string };
      const withNew = { headers: { authorization: `Bearer ${token}` } };
      expect((await fetch(`${info.httpUrl}/api/2.0/serving-endpoints`, withNew)).status).toBe(200);
      const listed = JSON.parse((await cli(["tokens", "list", "--json"], env)).stdout) as { id: string }[];
      expect(listed.map((t) => t.id)).toContain(id);
      expect(JSON.stringify(listed)).not.toContain(token);
      expect((await cli(["tokens", "revoke", id], env)).code).toBe(0);
      await eventually(
        async () =>
          (await fetch(`${info.httpUrl}/api/2.0/serving-endpoints`, withNew)).status === 401
            ? true
            : undefined,
        "the revoked token to be refused",
      );
    } finally {
      expect(await up.stop()).toBe(0);
    }
  });
});

describe("switchyard model-serving-endpoints, as the notes write it", () => {
  it("creates and then updates an endpoint with the Databricks CLI's commands, databricks → switchyard", async () => {
    const up = await startUp(path.join(tempDir("sy-notes-"), "data"));
    try {
      const env = { SWITCHYARD_DATA_DIR: up.dataDir };
      // The notes create on version 1 and update to version 4; each version's bias tells them apart.
      const biases = [0, 0.25, 0.5, 0.75];
      for (const [i, bias] of biases.entries()) {
        const model = writeTempModel(
          buildLinear({ inputs: 2, sigmoid: true, bias: [bias] }),
          `v${i + 1}.onnx`,
        );
        const r = await cli(["models", "register", "catalog.schema.my_model", model, "--json"], env);
        expect(r.stderr).toBe("");
        expect(JSON.parse(r.stdout).version).toBe(i + 1);
      }
      const { call, invoke, waitReady } = clusterClient(up);
      type Served = { name: string; model_name: string; model_version: string };
      type Route = { served_model_name: string; traffic_percentage: number };
      // What the GET shows serving once READY: each served model with its share of the traffic.
      const servedNow = async () => {
        const config = (await waitReady("my-endpoint")).config;
        return (config.served_models as Served[]).map((m) => ({
          model: m.model_name,
          version: m.model_version,
          traffic: (config.traffic_config.routes as Route[]).find((r) => r.served_model_name === m.name)
            ?.traffic_percentage,
        }));
      };

      const created = await shell(
        `switchyard model-serving-endpoints create --name my-endpoint --config '{"served_models": [{"model_name": "catalog.schema.my_model","model_version": "1","workload_size": "Small"}]}'`,
        env,
      );
      expect(created.stderr).toBe("");
      expect(created.code).toBe(0);
      expect(created.stdout).toMatch(/^my-endpoint: /);
      expect(await servedNow()).toEqual([{ model: "catalog.schema.my_model", version: "1", traffic: 100 }]);
      expect((await invoke("my-endpoint", { instances: [[1, 2]] })).headers.get("x-model-version")).toBe("1");

      const updated = await shell(
        `switchyard model-serving-endpoints update --name my-endpoint --config '{"served_models": [{"model_name": "catalog.schema.my_model","model_version": "4","workload_size": "Small","traffic_percentage": 100}]}'`,
        env,
      );
      expect(updated.stderr).toBe("");
      expect(updated.code).toBe(0);
      // The update rolls out in the background: wait for the GET to show version 4 taking all the traffic.
      const after = await eventually(
        async () => {
          const now = await servedNow();
          return now.length === 1 && now[0]?.version === "4" ? now : undefined;
        },
        "my-endpoint to serve version 4",
        90_000,
      );
      expect(after).toEqual([{ model: "catalog.schema.my_model", version: "4", traffic: 100 }]);
      expect((await invoke("my-endpoint", { instances: [[1, 2]] })).headers.get("x-model-version")).toBe("4");
      const got = await call("GET", "/api/2.0/serving-endpoints/my-endpoint");
      expect(got.json.state).toMatchObject({ ready: "READY", config_update: "NOT_UPDATING" });

      // The older forms still work: the name as an argument, and a file (here @file, a whole create body).
      const file = path.join(tempDir("sy-notes-cfg-"), "endpoint.json");
      writeFileSync(
        file,
        JSON.stringify({
          name: "my-endpoint",
          config: { served_models: [{ model_name: "catalog.schema.my_model", model_version: "2" }] },
        }),
      );
      const back = await cli(
        ["endpoints", "update", "my-endpoint", "--config", `@${file}`, "--wait", "--json"],
        env,
      );
      expect(back.stderr).toBe("");
      expect(back.code).toBe(0);
      expect(JSON.parse(back.stdout).config.served_models.map((m: Served) => m.model_version)).toEqual(["2"]);
      const twice = await shell(
        `switchyard model-serving-endpoints update other --name my-endpoint --config @${file}`,
        env,
      );
      expect(twice.code).toBe(1);
      expect(twice.stderr).toBe(
        "error: the endpoint name is given twice, differently: 'other' (argument) and 'my-endpoint' (--name)\n",
      );
    } finally {
      expect(await up.stop()).toBe(0);
    }
  });
});
