// `docker compose up` of the repository's docker-compose.yml, with only the images swapped for the local base
// (test/containers/compose.local.yml), serves an endpoint as docs/deploy.md tells a user to: the bridge URL and
// admin token from `init`'s output, a model registered from inside a coordinator container, an endpoint created
// over HTTP, on three nats-servers that form one JetStream cluster. The reference prediction comes from raw
// onnxruntime-node on the same model bytes.
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { buildLinear, eventually } from "@switchyard/testkit";
import { DockerComposeEnvironment, type StartedDockerComposeEnvironment, Wait } from "testcontainers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createReadyEndpoint } from "../helpers/http-endpoint.js";
import { expectClose, rowsReference } from "../helpers/ort-reference.js";
import { root } from "../helpers/up.js";
import { COMPOSE_FILES } from "./compose-files.js";

const project = `switchyard-tier-${process.pid}`;
let compose: StartedDockerComposeEnvironment | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Ids of this project's containers, volumes or networks that still exist. */
function leftovers(kind: "container" | "volume" | "network"): string[] {
  const args = kind === "container" ? ["ps", "-a"] : [kind, "ls"];
  const r = spawnSync("docker", [...args, "-q", "--filter", `label=com.docker.compose.project=${project}`], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`docker ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
}

beforeAll(async () => {
  // The Compose plugin lives in the project's DOCKER_CONFIG; the reaper image cannot be pulled here, so the
  // teardown below removes everything itself.
  process.env.DOCKER_CONFIG = inject("dockerConfig");
  process.env.TESTCONTAINERS_RYUK_DISABLED = "true";
  compose = await new DockerComposeEnvironment(root, COMPOSE_FILES)
    .withProjectName(project)
    .withEnvironment({
      ...inject("images"),
      SWITCHYARD_HTTP_PORT: String(await freePort()),
      SWITCHYARD_LOG_LEVEL: "warn",
    })
    .withWaitStrategy("init-1", Wait.forOneShotStartup())
    // Up means the bridge answers, as a user would check it: a role that exits while the NATS cluster forms is
    // restarted by its restart policy, and a port check on a restarting container would fail the run instead.
    .withWaitStrategy(
      "bridge-1",
      Wait.forHttp("/api/2.0/serving-endpoints", 8080).forStatusCode(401).withStartupTimeout(240_000),
    )
    .up();
});

afterAll(async () => {
  await compose?.down({ removeVolumes: true, timeout: 30_000 });
  expect({
    containers: leftovers("container"),
    volumes: leftovers("volume"),
    networks: leftovers("network"),
  }).toEqual({ containers: [], volumes: [], networks: [] });
});

async function logsOf(service: string): Promise<string> {
  const stream = await compose!.getContainer(service).logs();
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

describe("docker compose up", () => {
  it("serves an endpoint created through the bridge with init's token", async () => {
    const printed = await logsOf("init-1");
    const bridge = printed.match(/^bridge: (http:\/\/\S+)$/m)?.[1];
    const token = printed.match(/^admin token: (\S+)$/m)?.[1];
    expect(bridge, printed).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(token, printed).toMatch(/\S{20,}/);
    const auth = { authorization: `Bearer ${token}` };

    const anonymous = await eventually(
      () => fetch(`${bridge}/api/2.0/serving-endpoints`).catch(() => undefined),
      "the bridge answering",
    );
    expect(anonymous.status).toBe(401);

    // The three nats-servers are one JetStream cluster with an elected meta leader.
    const coordinator = compose!.getContainer("coordinator1-1");
    const meta = await eventually(async () => {
      const jsz = await coordinator.exec([
        "node",
        "-e",
        "fetch('http://nats1:8222/jsz').then((r) => r.json()).then((j) => console.log(JSON.stringify(j.meta_cluster)))",
      ]);
      const cluster = JSON.parse(jsz.stdout || "{}") as { cluster_size?: number; leader?: string };
      // The group grows as the servers find each other: wait for all three, as the file promises.
      return cluster.leader && cluster.cluster_size === 3 ? cluster : undefined;
    }, "a JetStream meta group of three with a leader");
    expect(["nats1", "nats2", "nats3"]).toContain(meta.leader);

    const model = buildLinear({ inputs: 2, sigmoid: true, bias: [0.25] });
    await coordinator.copyContentToContainer([{ content: Buffer.from(model), target: "/tmp/model.onnx" }]);
    const registered = await coordinator.exec([
      "switchyard",
      "models",
      "register",
      "compose_model",
      "/tmp/model.onnx",
      "--json",
    ]);
    expect(registered.exitCode, registered.output).toBe(0);
    expect(JSON.parse(registered.stdout).version).toBe(1);

    await createReadyEndpoint(bridge!, "compose-ep", "compose_model", auth, 120_000);

    // SWITCHYARD_REPLICATION=3: every stream the roles created (KV buckets, the artifact store, capture,
    // feedback, outcomes, batch) is kept by all three servers.
    const replicas = await coordinator.exec([
      "node",
      "-e",
      "fetch('http://nats1:8222/jsz?accounts=true&streams=true&config=true').then((r) => r.json()).then((j) => " +
        "console.log(JSON.stringify(Object.fromEntries(j.account_details.flatMap((a) => a.stream_detail ?? [])" +
        ".map((s) => [s.name, s.config.num_replicas])))))",
    ]);
    const counts = JSON.parse(replicas.stdout) as Record<string, number>;
    expect(Object.keys(counts)).toEqual(
      expect.arrayContaining(["KV_sy_cluster", "KV_sy_endpoints", "OBJ_sy_artifacts"]),
    );
    expect(new Set(Object.values(counts))).toEqual(new Set([3]));

    const rows = [
      [1.0, 3.5],
      [-2, 0.5],
      [0.125, -4],
    ];
    const res = await fetch(`${bridge}/serving-endpoints/compose-ep/invocations`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ dataframe_split: { columns: ["feature1", "feature2"], data: rows } }),
    });
    expect(res.status).toBe(200);
    const got = ((await res.json()) as { predictions: number[] }).predictions;
    expectClose(got, await rowsReference(model, rows));
  });
});
