// `switchyard apply` as a user runs it: a cluster.config.ts (typed with defineConfig) beside its model files,
// applied with the built CLI to a running `switchyard up`. Asserts the plan printed, what the cluster then
// serves, and that nothing changes when nothing should.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats } from "@switchyard/nats";
import { buildLinear, eventually, type LinearOptions, linearPredict, tempDir } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFixture } from "./helpers/custom.js";
import { cli, clusterClient, root, startUp, type Up } from "./helpers/up.js";

const MODEL = "catalog.schema.fraud";
const V1: LinearOptions = { inputs: 2, weights: [0.5, -1.5], bias: [0.25] };
const V2: LinearOptions = { inputs: 2, weights: [2, 3], bias: [-1] };
const ROWS = [
  [1, 2],
  [-0.5, 4],
];

let up: Up;
let api: ReturnType<typeof clusterClient>;
let dir: string;
let nats: string[];

/** The config file: imports defineConfig from @switchyard/cli, so it lives where the workspace resolves it. */
function writeConfig(body: Record<string, unknown>): string {
  const file = path.join(dir, "cluster.config.ts");
  writeFileSync(
    file,
    `import { defineConfig } from "@switchyard/cli";\n\nexport default defineConfig(${JSON.stringify(body, null, 2)});\n`,
  );
  return file;
}

const endpoint = (extra: Record<string, unknown> = {}) => ({
  name: "fraud",
  config: {
    served_entities: [{ entity_name: MODEL, entity_version: "@champion", workload_size: "Small", ...extra }],
  },
});

const models = (champion: string) => ({
  [MODEL]: {
    versions: [{ path: "./models/fraud-v1.onnx" }, { path: "./models/fraud-v2.onnx" }],
    aliases: { champion },
  },
});

async function apply(args: string[] = []) {
  const r = await cli(["apply", "--file", path.join(dir, "cluster.config.ts"), "--json", ...args, ...nats]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { plan: { kind: string; name: string; action: string; diff?: string[] }[] };
}

async function versionCount(): Promise<number> {
  const r = await cli(["models", "versions", MODEL, "--json", ...nats]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as unknown[]).length;
}

async function predictions(): Promise<number[]> {
  const r = await api.invoke("fraud", { inputs: ROWS });
  expect(r.status, r.text).toBe(200);
  return (r.json.predictions as unknown[]).flat(2) as number[];
}

const reference = (o: LinearOptions) => linearPredict(o, ROWS).flat();

function expectClose(got: number[], want: number[]) {
  expect(got).toHaveLength(want.length);
  for (const [i, g] of got.entries()) expect(g).toBeCloseTo(want[i]!, 5);
}

const isClose = (got: number[], want: number[]) =>
  got.length === want.length && got.every((g, i) => Math.abs(g - want[i]!) < 1e-5);

beforeAll(async () => {
  up = await startUp(path.join(tempDir("sy-apply-"), "data"));
  api = clusterClient(up);
  nats = ["--nats", up.info().natsUrl];
  dir = path.join(root, ".cache", `apply-${process.pid}-${Date.now()}`);
  mkdirSync(path.join(dir, "models"), { recursive: true });
  writeFileSync(path.join(dir, "models", "fraud-v1.onnx"), buildLinear(V1));
  writeFileSync(path.join(dir, "models", "fraud-v2.onnx"), buildLinear(V2));
}, 120_000);

afterAll(async () => {
  await up?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("switchyard apply", () => {
  it("creates models, the alias and the endpoint from an empty cluster; the endpoint serves v1", async () => {
    writeConfig({
      cluster: { name: "sy" },
      models: models("./models/fraud-v1.onnx"),
      endpoints: [endpoint()],
    });
    const { plan } = await apply();
    expect(plan.map(({ kind, name, action }) => ({ kind, name, action }))).toEqual([
      { kind: "model_version", name: `${MODEL}:./models/fraud-v1.onnx`, action: "create" },
      { kind: "model_version", name: `${MODEL}:./models/fraud-v2.onnx`, action: "create" },
      { kind: "alias", name: `${MODEL}@champion`, action: "create" },
      { kind: "endpoint", name: "fraud", action: "create" },
    ]);
    await api.waitReady("fraud");
    expectClose(await predictions(), reference(V1));
    expect(await versionCount()).toBe(2);
  });

  it("applied again, every entry is unchanged, no version is added, and --json is exactly {plan}", async () => {
    const r = await cli(["apply", "--file", path.join(dir, "cluster.config.ts"), "--json", ...nats]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      plan: [
        { kind: "model_version", name: `${MODEL}:./models/fraud-v1.onnx`, action: "unchanged" },
        { kind: "model_version", name: `${MODEL}:./models/fraud-v2.onnx`, action: "unchanged" },
        { kind: "alias", name: `${MODEL}@champion`, action: "unchanged" },
        { kind: "endpoint", name: "fraud", action: "unchanged" },
      ],
    });
    expect(await versionCount()).toBe(2);
  });

  it("a changed endpoint config is one update with its diff; --dry-run changes nothing", async () => {
    writeConfig({ models: models("./models/fraud-v1.onnx"), endpoints: [endpoint({ max_batch_size: 16 })] });
    const dry = await apply(["--dry-run"]);
    const update = {
      kind: "endpoint",
      name: "fraud",
      action: "update",
      diff: ["served_models[0].max_batch_size: (unset) → 16"],
    };
    expect(dry.plan.filter((e) => e.action !== "unchanged")).toEqual([update]);
    expect(dry.plan).toHaveLength(4);
    const human = await cli(["apply", "--file", path.join(dir, "cluster.config.ts"), "--dry-run", ...nats]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(
      /^~ update +endpoint +fraud\n +served_models\[0\]\.max_batch_size: \(unset\) → 16$/m,
    );
    expect(human.stdout).toContain(
      "Dry run: 0 to create, 1 to update, 0 to delete, 3 unchanged; nothing was changed.",
    );
    const before = await api.call("GET", "/api/2.0/serving-endpoints/fraud");
    expect(before.json.config.served_entities[0].max_batch_size).toBeUndefined();

    const real = await apply();
    expect(real.plan.filter((e) => e.action !== "unchanged")).toEqual([update]);
    const after = await api.waitReady("fraud");
    expect(after.config.served_entities[0].max_batch_size).toBe(16);
    expect((await apply()).plan.every((e) => e.action === "unchanged")).toBe(true);
  });

  it("moving the champion alias in the file rolls the endpoint to v2", async () => {
    writeConfig({ models: models("./models/fraud-v2.onnx"), endpoints: [endpoint({ max_batch_size: 16 })] });
    const { plan } = await apply();
    expect(plan.filter((e) => e.action !== "unchanged")).toEqual([
      { kind: "alias", name: `${MODEL}@champion`, action: "update", diff: ["version: 1 → 2"] },
    ]);
    const want = reference(V2);
    await eventually(
      async () => (isClose(await predictions(), want) ? true : undefined),
      "fraud serves v2",
      60_000,
    );
    expectClose(await predictions(), want);
    expect(await versionCount()).toBe(2);
  });

  it("--prune deletes an endpoint the file does not declare; without it, the plan leaves it alone", async () => {
    const spare = await api.call("POST", "/api/2.0/serving-endpoints", {
      name: "spare",
      config: { served_entities: [{ entity_name: MODEL, entity_version: "1", scale_to_zero_enabled: true }] },
    });
    expect(spare.status, spare.text).toBe(200);
    const kept = await apply();
    expect(kept.plan.find((e) => e.name === "spare")).toBeUndefined();
    expect((await api.call("GET", "/api/2.0/serving-endpoints/spare")).status).toBe(200);

    const pruned = await apply(["--prune"]);
    expect(pruned.plan.filter((e) => e.action !== "unchanged")).toEqual([
      { kind: "endpoint", name: "spare", action: "delete" },
    ]);
    const gone = await api.call("GET", "/api/2.0/serving-endpoints/spare");
    expect(gone.status).toBe(404);
    expect(gone.json.error_code).toBe("RESOURCE_DOES_NOT_EXIST");
    expect((await api.call("GET", "/api/2.0/serving-endpoints/fraud")).status).toBe(200);
  });

  it("a file with three problems exits 1, names all three, and changes nothing", async () => {
    writeConfig({
      models: {
        [MODEL]: {
          versions: [
            { path: "./models/fraud-v1.onnx" },
            { path: "./models/fraud-v2.onnx" },
            { path: "./models/fraud-v3.onnx" },
          ],
          aliases: { champion: "./models/fraud-v3.onnx" },
        },
      },
      endpoints: [
        endpoint({ workload_size: "Tiny" }),
        {
          name: "other",
          config: { served_entities: [{ entity_name: "catalog.schema.nope", entity_version: "1" }] },
        },
      ],
    });
    const r = await cli(["apply", "--file", path.join(dir, "cluster.config.ts"), ...nats]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("has 3 problems; nothing was changed");
    expect(r.stderr).toContain("endpoints[0].config.served_entities[0].workload_size:");
    expect(r.stderr).toContain(
      `models["${MODEL}"].versions[2].path: './models/fraud-v3.onnx' does not exist`,
    );
    expect(r.stderr).toContain(
      "endpoints[1].config.served_entities[0]: model 'catalog.schema.nope' is neither declared in this file nor registered",
    );
    expect(await versionCount()).toBe(2);
    const list = await api.call("GET", "/api/2.0/serving-endpoints");
    expect(list.json.endpoints.map((e: { name: string }) => e.name)).toEqual(["fraud"]);
  });

  it("creates a declared stream job and batch schedule, and leaves them unchanged the second time", async () => {
    const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
    try {
      await (await jetstreamManager(nc)).streams.add({ name: "EVENTS", subjects: ["events.>"] });
    } finally {
      await nc.close();
    }
    const stream = {
      name: "scores",
      model: `models:/${MODEL}@champion`,
      source_stream: "EVENTS",
      source_subject: "events.cards",
      sink_subject: "scores.fraud",
      columns: ["a", "b"],
    };
    const schedule = {
      name: "nightly",
      cron: "0 2 * * *",
      job: { model: `models:/${MODEL}@champion`, input: "in/{date}.csv", output: "out/{date}/" },
    };
    writeConfig({
      models: models("./models/fraud-v2.onnx"),
      endpoints: [endpoint({ max_batch_size: 16 })],
      streams: [stream],
      schedules: [schedule],
    });
    const first = await apply();
    expect(first.plan.filter((e) => e.action !== "unchanged")).toEqual([
      { kind: "stream", name: "scores", action: "create" },
      { kind: "schedule", name: "nightly", action: "create" },
    ]);
    const job = await cli(["stream", "status", "scores", "--json", ...nats]);
    expect(job.code, job.stderr).toBe(0);
    expect(JSON.parse(job.stdout)).toMatchObject({ name: "scores", state: "RUNNING" });
    const sched = await cli(["batch", "schedule", "list", "--json", ...nats]);
    expect(sched.code, sched.stderr).toBe(0);
    expect(JSON.parse(sched.stdout).schedules).toMatchObject([
      { name: "nightly", cron: "0 2 * * *", tz: "UTC", job: schedule.job },
    ]);

    const second = await apply();
    expect(second.plan).toHaveLength(6);
    expect(second.plan.every((e) => e.action === "unchanged")).toBe(true);
  });

  it("registers a custom model directory once: its digest covers the directory's files", async () => {
    // Outside the repository (as custom models are registered), named by an absolute path.
    const custom = copyFixture("double");
    const body = { models: { "catalog.schema.double": { versions: [{ path: custom, flavor: "custom" }] } } };
    writeConfig(body);
    const entry = { kind: "model_version", name: `catalog.schema.double:${custom}` };
    expect((await apply()).plan).toEqual([{ ...entry, action: "create" }]);
    expect((await apply()).plan).toEqual([{ ...entry, action: "unchanged" }]);
    writeFileSync(path.join(custom, "notes.txt"), "a changed file is a new version\n");
    expect((await apply()).plan).toEqual([{ ...entry, action: "create" }]);
    const r = await cli(["models", "versions", "catalog.schema.double", "--json", ...nats]);
    expect(JSON.parse(r.stdout).map((v: { version: number }) => v.version)).toEqual([1, 2]);
  });
});
