// `docker compose up` of the repository's docker-compose.yml, with only the images swapped for the local base
// (test/containers/compose.local.yml), serves an endpoint as docs/deploy.md tells a user to: the bridge URL and
// admin token from `init`'s output, a model registered from inside a coordinator container, an endpoint created
// over HTTP, on three nats-servers that form one JetStream cluster. The reference prediction comes from raw
// onnxruntime-node on the same model bytes.
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { SwitchyardClient } from "@switchyard/client";
import { connectNats, listKeys, openBucket } from "@switchyard/nats";
import { clusterNames, keys, Lease, LIVENESS_TTL_MS, ReplicaStatus } from "@switchyard/protocol";
import { buildLinear, eventually } from "@switchyard/testkit";
import { DockerComposeEnvironment, type StartedDockerComposeEnvironment, Wait } from "testcontainers";
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed, onTestFinished } from "vitest";
import { countById, type Event, events, publishAcked, readSink } from "../helpers/events.js";
import { createReadyEndpoint } from "../helpers/http-endpoint.js";
import { describeOutcomes, type Load, since, snapshot, startLoad } from "../helpers/load.js";
import { expectClose, rowsReference } from "../helpers/ort-reference.js";
import { root } from "../helpers/up.js";
import { COMPOSE_FILES } from "./compose-files.js";
import { Project } from "./docker.js";
import { NATS_SERVICES, wholeMetaGroup } from "./meta-group.js";

/** `got` is a list of predictions within float32 rounding of `want`. */
const closeTo = (got: unknown, want: number[]) =>
  Array.isArray(got) && got.length === want.length && got.every((v, i) => Math.abs(v - want[i]!) < 1e-5);

const projectName = `switchyard-tier-${process.pid}`;
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
  const r = spawnSync(
    "docker",
    [...args, "-q", "--filter", `label=com.docker.compose.project=${projectName}`],
    {
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new Error(`docker ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
}

beforeAll(async () => {
  // The Compose plugin lives in the project's DOCKER_CONFIG; the reaper image cannot be pulled here, so the
  // teardown below removes everything itself.
  process.env.DOCKER_CONFIG = inject("dockerConfig");
  process.env.TESTCONTAINERS_RYUK_DISABLED = "true";
  const environment = new DockerComposeEnvironment(root, COMPOSE_FILES)
    .withProjectName(projectName)
    .withEnvironment({
      ...inject("images"),
      SWITCHYARD_HTTP_PORT: String(await freePort()),
      // Info: a failed scenario's diagnostics then show what each role did (requests that succeed log at debug).
      SWITCHYARD_LOG_LEVEL: "info",
    })
    .withWaitStrategy("init-1", Wait.forOneShotStartup())
    // Up means the bridge answers, as a user would check it: a role that exits while the NATS cluster forms is
    // restarted by its restart policy, and a port check on a restarting container would fail the run instead.
    .withWaitStrategy(
      "bridge-1",
      Wait.forHttp("/api/2.0/serving-endpoints", 8080).forStatusCode(401).withStartupTimeout(240_000),
    );
  // NATS first, as docs/deploy.md says: its meta group must hold all three servers before the roles create R3
  // streams (see meta-group.ts for the nats-server behaviour this works around).
  await environment.up([...NATS_SERVICES]);
  const formed = await wholeMetaGroup(new Project(projectName), "a meta group of three", { heal: true });
  if (formed.restarted.length > 0) {
    console.log(`container tier: the meta group formed without ${formed.restarted.join(", ")}: restarted it`);
  }
  compose = await environment.up();
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

/** The bridge's URL and the admin token, as `init` printed them (read by the first test). */
let bridge: string | undefined;
let token: string | undefined;

describe("docker compose up", () => {
  it("serves an endpoint created through the bridge with init's token", async () => {
    const printed = await logsOf("init-1");
    bridge = printed.match(/^bridge: (http:\/\/\S+)$/m)?.[1];
    token = printed.match(/^admin token: (\S+)$/m)?.[1];
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

/** Every long-running service of docker-compose.yml. */
const SERVICES = ["nats1", "nats2", "nats3", "coordinator1", "coordinator2", "node1", "node2", "bridge"];

// The faults of the across-hosts issue, one after another on the same cluster, each under a steady load: three
// HTTP loops through the bridge and one SDK loop over NATS (10 s deadlines), a stream job scoring events published
// during the fault, and, where it applies, a batch job running through it. Each reports its request outcomes and
// what it measured; at the end every event has exactly one result. The test reaches NATS at the containers'
// addresses on the compose network, which the host routes to; the compose file publishes no NATS port.
describe("faults under load", () => {
  const project = new Project(projectName);
  const V1 = buildLinear({ inputs: 2, sigmoid: true, bias: [0.25] });
  const V2 = buildLinear({ inputs: 2, sigmoid: true, bias: [-1.5] });
  const ROWS = [
    [1.0, 3.5],
    [-2, 0.5],
  ];
  let want: { v1: number[]; v2: number[] };
  let nc: NatsConnection;
  let client: SwitchyardClient;
  let load: Load;
  let auth: Record<string, string>;
  const sink = "chaosout.scores";
  const published: Event[] = [];
  const report: string[] = [];

  /** The cluster's bucket `bucket`. */
  const bucket = (name: "cluster" | "liveness" | "endpoints") => openBucket(nc, clusterNames(), name);

  async function readyReplicas(): Promise<ReplicaStatus[]> {
    const kv = await bucket("cluster");
    const out: ReplicaStatus[] = [];
    for (const key of await listKeys(kv, "replica.*")) {
      const e = await kv.get(key);
      if (e?.operation !== "PUT") continue;
      const s = ReplicaStatus.parse(e.json());
      if (s.endpoint === "chaos" && s.state === "READY" && s.pid !== null) out.push(s);
    }
    return out;
  }

  /** Every status of a chaos replica, any state, for a failure's message. */
  async function allReplicas(): Promise<string> {
    const kv = await bucket("cluster");
    const out: unknown[] = [];
    for (const key of await listKeys(kv, "replica.*")) {
      const e = await kv.get(key);
      if (e?.operation === "PUT") {
        const r = e.json<ReplicaStatus>();
        out.push([r.replica_id, r.node_id, r.generation, r.state, r.pid, r.message]);
      }
    }
    return JSON.stringify(out);
  }

  /** Pids (in its container) of the processes doing work on `node`: replicas and job workers. */
  async function workPids(node: string): Promise<number[]> {
    const kv = await bucket("cluster");
    const pids: number[] = [];
    for (const key of [...(await listKeys(kv, "replica.*")), ...(await listKeys(kv, "worker.*"))]) {
      const e = await kv.get(key);
      if (e?.operation !== "PUT") continue;
      const s = e.json<{ node_id: string; pid: number | null; state: string }>();
      if (s.node_id === node && s.pid !== null && s.state !== "STOPPED" && s.state !== "FAILED")
        pids.push(s.pid);
    }
    return pids;
  }

  /** Waits for a heartbeat of `node` written after `t` (it runs, and reaches NATS, again). */
  const heartbeatSince = (node: string, t: number, what: string) =>
    eventually(
      async () => {
        const e = await (await bucket("liveness")).get(keys.node(node));
        return e?.operation === "PUT" && e.created.getTime() > t ? true : undefined;
      },
      what,
      120_000,
    );

  const twoReady = (what: string, ok: (rs: ReplicaStatus[]) => boolean = () => true) =>
    eventually(
      async () => {
        const rs = await readyReplicas();
        if (rs.length === 2 && ok(rs)) return rs;
        // Thrown, so a timeout says what the replicas looked like last.
        throw new Error(
          `READY: ${JSON.stringify(rs.map((r) => [r.node_id, r.generation, r.pid]))}; all: ${await allReplicas()}`,
        );
      },
      what,
      120_000,
    );

  /** Servers the tests had to restart a second time (meta-group.ts): every scenario line names them. */
  const healed: string[] = [];
  const metaGroupWhole = async (what: string) => {
    const { restarted } = await wholeMetaGroup(project, what, { heal: true, healAfterMs: 30_000 });
    healed.push(...restarted);
  };

  async function holder(): Promise<string | undefined> {
    const e = await (await bucket("liveness")).get(keys.lease);
    return e?.operation === "PUT" ? Lease.parse(e.json()).holder : undefined;
  }

  /** Publishes `n` more events for the stream job (each acknowledged by JetStream); resolves with the retries. */
  function publishMore(n: number): Promise<number> {
    const evs = events(published.length, n);
    published.push(...evs);
    return publishAcked(nc, "chaosin.events", evs);
  }

  /** The stream job caught up: every event published so far has a result. */
  const streamCaughtUp = (what: string) =>
    eventually(
      async () => {
        const job = await client.streams.get("chaos");
        return job.status.lag === 0 && job.status.results >= published.length ? job.status : undefined;
      },
      what,
      120_000,
    );

  const BATCH_ROWS = 20_000;
  const batchRows = Array.from({ length: BATCH_ROWS }, (_, i) => [
    ((i * 13) % 97) / 24 - 2,
    ((i * 29) % 89) / 22 - 2,
  ]);

  /** Submits a batch job over the shared data volume; `finish` waits for it and checks every row once. */
  async function startBatch(name: string): Promise<{ finish: () => Promise<string> }> {
    const job = await client.submitBatch({
      model: "models:/chaos_model/1",
      input: "/data/in/rows.csv",
      output: `/data/out/${name}.jsonl`,
      shard_rows: 2_000,
      columns: ["feature1", "feature2"],
      workers: 2,
    });
    return {
      finish: async () => {
        const end = await client.waitForBatch(job.id, { timeoutMs: 240_000 });
        expect(end.state, end.message).toBe("SUCCEEDED");
        const text = project.read("coordinator1", `/data/out/${name}.jsonl`);
        const rows = text
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as { id: number; prediction: number });
        const ids = new Set(rows.map((r) => r.id));
        expect({ rows: rows.length, distinct: ids.size }).toEqual({ rows: BATCH_ROWS, distinct: BATCH_ROWS });
        for (const r of rows) expect(Math.abs(r.prediction - batchReference[r.id]!)).toBeLessThan(1e-5);
        return `batch ${BATCH_ROWS} rows written once (${end.progress.shards_done} shards)`;
      },
    };
  }
  let batchReference: number[];

  /** Runs one scenario: the outcomes of the requests sent during `fault`, which must include no failure. */
  async function scenario(name: string, fault: () => Promise<string>): Promise<void> {
    await load.answered(20, `20 correct answers before '${name}'`);
    const before = snapshot(load.outcomes);
    const publishing = publishMore(500);
    const t0 = Date.now();
    // The roles' own words when a scenario fails: `docker logs` keeps every run of a restarted container.
    onTestFailed(() => {
      for (const service of SERVICES) {
        const since = Math.floor(t0 / 1000) - 5;
        console.log(`--- ${service} since the fault:\n${project.logs(service, since).slice(-6000)}`);
      }
    });
    const measured = await fault();
    const retried = await publishing;
    await load.answered(20, `20 correct answers after '${name}'`);
    const during = since(before, load.outcomes);
    const stream = await streamCaughtUp(`the stream job caught up after '${name}'`);
    const restartedAgain = healed.splice(0);
    const line =
      `${name}: requests ${describeOutcomes(during)}; ${measured}; ` +
      (restartedAgain.length ? `NATS left ${restartedAgain.join(", ")} behind: restarted again; ` : "") +
      `stream: ${published.length} events acknowledged (${retried} publishes sent again), ${stream.results} results; ` +
      `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    report.push(line);
    console.log(`container tier: ${line}`);
    expect(during.failures).toEqual([]);
  }

  beforeAll(async () => {
    expect(token, "the first test read init's token").toBeDefined();
    auth = { authorization: `Bearer ${token}` };
    want = { v1: await rowsReference(V1, ROWS), v2: await rowsReference(V2, ROWS) };
    batchReference = await rowsReference(V1, batchRows);
    const servers = ["nats1", "nats2", "nats3"].map((n) => `nats://${project.ip(n)}:4222`);
    nc = await connectNats({ servers, name: "container-tier" });
    client = SwitchyardClient.fromConnection(nc);

    const coordinator = compose!.getContainer("coordinator1-1");
    await coordinator.copyContentToContainer([
      { content: Buffer.from(V1), target: "/tmp/v1.onnx" },
      { content: Buffer.from(V2), target: "/tmp/v2.onnx" },
      {
        content: `id,feature1,feature2\n${batchRows.map((r, i) => `${i},${r[0]},${r[1]}`).join("\n")}\n`,
        target: "/data/in/rows.csv",
      },
    ]);
    for (const v of ["v1", "v2"]) {
      const r = await coordinator.exec(["switchyard", "models", "register", "chaos_model", `/tmp/${v}.onnx`]);
      expect(r.exitCode, r.output).toBe(0);
    }
    // Two replicas (4 requests each), one per node as placement spreads them.
    const created = await fetch(`${bridge}/api/2.0/serving-endpoints`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({
        name: "chaos",
        config: {
          served_entities: [
            {
              entity_name: "chaos_model",
              entity_version: "1",
              min_provisioned_concurrency: 8,
              max_provisioned_concurrency: 8,
            },
          ],
        },
      }),
    });
    expect(created.status, await created.clone().text()).toBe(200);
    await twoReady("two READY replicas of chaos");

    await (await jetstreamManager(nc)).streams.add({
      name: "CHAOS_IN",
      subjects: ["chaosin.>"],
      num_replicas: 3,
      duplicate_window: 120_000_000_000,
    });
    await client.streams.create({
      name: "chaos",
      model: "models:/chaos_model/1",
      source_stream: "CHAOS_IN",
      sink_subject: sink,
      key: ["id"],
      columns: ["feature1", "feature2"],
      batch: 50,
    });

    const anyVersion = (p: unknown) => closeTo(p, want.v1) || closeTo(p, want.v2);
    load = startLoad({
      http: { url: `${bridge}/serving-endpoints/chaos/invocations`, headers: auth, loops: 3 },
      sdk: { client, endpoint: "chaos", loops: 1 },
      body: { dataframe_split: { columns: ["feature1", "feature2"], data: ROWS } },
      accept: anyVersion,
      deadlineMs: 10_000,
    });
  }, 300_000);

  afterAll(async () => {
    await load?.stop();
    await nc?.close();
    console.log(`container tier: faults under load\n  ${report.join("\n  ")}`);
  });

  it("kill -9 of one of two replicas: no request fails", async () => {
    await scenario("kill -9 of one of two replicas", async () => {
      const [victim] = await readyReplicas();
      project.exec(victim!.node_id, ["sh", "-c", `kill -9 ${victim!.pid}`]);
      const t = Date.now();
      await twoReady(
        "two READY replicas again",
        (rs) => !rs.some((r) => r.replica_id === victim!.replica_id && r.pid === victim!.pid),
      );
      return `replica back READY in ${Date.now() - t} ms`;
    });
  });

  it("kill of one nats-server of three: clients move to the others; the server returns and catches up", async () => {
    await scenario("kill one nats-server", async () => {
      const jsm = await jetstreamManager(nc);
      const leader = (await jsm.streams.info("CHAOS_IN")).cluster?.leader;
      expect(["nats1", "nats2", "nats3"]).toContain(leader);
      const batch = await startBatch("nats-kill");
      project.kill(leader!);
      const t = Date.now();
      let down: number;
      try {
        await load.answered(50, "50 correct answers with one server down");
        down = Date.now() - t;
      } finally {
        project.start(leader!);
      }
      await metaGroupWhole("the restarted server current in the meta group");
      const caughtUp = await eventually(
        async () => {
          const info = await jsm.streams.info("CHAOS_IN");
          const peers = info.cluster?.replicas ?? [];
          return peers.length === 2 && peers.every((p) => p.current) ? Date.now() - t : undefined;
        },
        "every replica of the source stream current",
        120_000,
      );
      return `${leader} (the source stream's leader) killed: 50 correct answers within ${down} ms, every stream replica current ${caughtUp} ms after the kill; ${await batch.finish()}`;
    });
  });

  it("kill of a node agent's container: its replicas come back on the other node", async () => {
    await scenario("kill a node agent's container", async () => {
      const victim = (await readyReplicas())[0]!.node_id;
      const other = victim === "node1" ? "node2" : "node1";
      const batch = await startBatch("node-kill");
      project.kill(victim);
      const t = Date.now();
      let moved: number;
      try {
        await twoReady(`two READY replicas on ${other}`, (rs) => rs.every((r) => r.node_id === other));
        moved = Date.now() - t;
      } finally {
        project.start(victim);
      }
      await heartbeatSince(victim, t, `${victim} heartbeating again`);
      return `${victim} killed: both replicas READY on ${other} ${moved} ms later; ${await batch.finish()}`;
    });
  });

  it("kill of the leading coordinator during a rollout: the standby leads within the lease bound and finishes it", async () => {
    await scenario("kill the leading coordinator during a rollout", async () => {
      const leader = await eventually(holder, "a lease holder");
      const standby = leader === "coordinator1" ? "coordinator2" : "coordinator1";
      const put = await fetch(`${bridge}/api/2.0/serving-endpoints/chaos/config`, {
        method: "PUT",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({
          served_entities: [
            {
              entity_name: "chaos_model",
              entity_version: "2",
              min_provisioned_concurrency: 8,
              max_provisioned_concurrency: 8,
            },
          ],
        }),
      });
      expect(put.status, await put.clone().text()).toBe(200);
      project.kill(leader);
      const t = Date.now();
      // Started again whatever happens, so a failure here does not leave the next scenarios one coordinator.
      onTestFinished(() => project.start(leader));
      await eventually(
        async () => ((await holder()) === standby ? true : undefined),
        `${standby} holding the lease`,
        LIVENESS_TTL_MS + 30_000,
      );
      const led = Date.now() - t;
      await eventually(
        async () => {
          const r = await fetch(`${bridge}/api/2.0/serving-endpoints/chaos`, { headers: auth });
          const ep = (await r.json()) as {
            state?: { ready?: string; config_update?: string };
            config?: { served_entities?: Array<{ entity_version?: string }> };
          };
          return ep.state?.ready === "READY" &&
            ep.state.config_update === "NOT_UPDATING" &&
            ep.config?.served_entities?.[0]?.entity_version === "2"
            ? true
            : undefined;
        },
        "the rollout to version 2 finished",
        120_000,
      );
      const rolled = Date.now() - t;
      // Every new request is served by version 2.
      for (let i = 0; i < 5; i++)
        expectClose(
          (
            (await client.invoke("chaos", {
              dataframe_split: { columns: ["feature1", "feature2"], data: ROWS },
            })) as { predictions: number[] }
          ).predictions,
          want.v2,
        );
      return `${leader} killed: ${standby} held the lease ${led} ms later (bound ${LIVENESS_TTL_MS} ms), rollout to version 2 done ${rolled} ms after the kill`;
    });
  });

  it("partition of a node: its heartbeats expire, its work moves, and it is fenced before anything runs twice", async () => {
    await scenario("partition a node", async () => {
      const replicas = await readyReplicas();
      // node1 when it holds a replica: the rolling restart then restarts the healed node first.
      const victim = replicas.some((r) => r.node_id === "node1") ? "node1" : replicas[0]!.node_id;
      const other = victim === "node1" ? "node2" : "node1";
      // The node's work (replicas, batch workers, stream scorers) by pid: its warm spare holds none and is
      // not fenced.
      const work = await workPids(victim);
      expect(work.length).toBeGreaterThan(0);
      project.disconnect(victim);
      const t = Date.now();
      let overlaps = 0;
      let moved: number;
      let fenced: number[];
      try {
        await eventually(
          async () => {
            const rs = await readyReplicas();
            const there = rs.length === 2 && rs.every((r) => r.node_id === other);
            if (there && project.alive(victim, work).length > 0) overlaps++;
            return there ? true : undefined;
          },
          `two READY replicas on ${other}`,
          120_000,
        );
        moved = Date.now() - t;
        fenced = project.alive(victim, work);
      } finally {
        project.connect(victim);
      }
      await heartbeatSince(victim, t, `${victim} heartbeating again after the heal`);
      await twoReady(`still two READY replicas, both on ${other}`, (rs) =>
        rs.every((r) => r.node_id === other),
      );
      expect({ overlaps, fenced }).toEqual({ overlaps: 0, fenced: [] });
      return `${victim} cut off: both replicas READY on ${other} ${moved} ms later, ${victim}'s replicas already killed (fenced) then; after the heal it runs none`;
    });
  });

  it("a rolling restart of every container, one at a time: no request fails", async () => {
    await scenario("rolling restart", async () => {
      const batch = await startBatch("rolling");
      const times: string[] = [];
      for (const service of SERVICES) {
        const t = Date.now();
        project.restart(service);
        if (service.startsWith("nats"))
          await metaGroupWhole(`the meta group whole after restarting ${service}`);
        else if (service.startsWith("coordinator")) await eventually(holder, "a lease holder");
        else if (service.startsWith("node")) {
          await heartbeatSince(service, t, `${service} heartbeating again`);
          await twoReady(`two READY replicas after restarting ${service}`);
        } else
          await eventually(
            async () => {
              const r = await fetch(`${bridge}/api/2.0/serving-endpoints`).catch(() => undefined);
              return r?.status === 401 ? true : undefined;
            },
            "the bridge answering again",
            120_000,
          );
        await load.answered(10, `10 correct answers after restarting ${service}`);
        times.push(`${service} ${((Date.now() - t) / 1000).toFixed(1)} s`);
      }
      return `restarted ${times.join(", ")}; ${await batch.finish()}`;
    });
  });

  it("the stream job wrote exactly one result per acknowledged event through every fault", async () => {
    await streamCaughtUp("the stream job caught up");
    const results = await readSink(nc, clusterNames().streams.sink("chaos"), sink);
    const { byId, missing, duplicated } = countById(published, results);
    expect({ missing, duplicated, results: results.length }).toEqual({
      missing: [],
      duplicated: [],
      results: published.length,
    });
    const reference = await rowsReference(
      V1,
      published.map((e) => [e.feature1, e.feature2]),
    );
    published.forEach((e, i) => {
      expect(Math.abs((byId.get(e.id)![0]!.prediction as number) - reference[i]!)).toBeLessThan(1e-5);
    });
    report.push(
      `stream job: ${published.length} events, ${results.length} results, none missing, none twice`,
    );
  });
});
