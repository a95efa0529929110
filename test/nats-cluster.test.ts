// Switchyard on a three-node NATS cluster on one host: the roles a multi-host deployment runs (`switchyard
// coordinator`, `node`, `bridge`, each its own process) get every server URL and replication 3. Every stream,
// bucket and object store they create is kept by three servers; killing one server (kill -9) under a steady
// request loop loses no acknowledged write, and the endpoint answers again; a request the dead server took with it
// is sent again when its router or replica reconnects, so none waits for its deadline (504); a stream job scoring
// across the kill writes exactly one result per acknowledged event; the server rejoins on restart.
// References come from raw onnxruntime-node.
import { existsSync } from "node:fs";
import path from "node:path";
import { jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { Coordinator } from "@switchyard/coordinator";
import { BUCKET_OPTIONS, connectNats, openBucket } from "@switchyard/nats";
import { type NatsCluster, startCluster } from "@switchyard/natsd";
import { clusterNames, ERROR_CATALOG, isErrorCode } from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it, onTestFailed } from "vitest";
import { countById, events, publishAcked, readSink } from "./helpers/events.js";
import { createEndpoint, endpointReady, role, roles, stopRoles } from "./helpers/roles.js";
import { cli, eventually } from "./helpers/up.js";

let nats: NatsCluster | undefined;
let nc: NatsConnection | undefined;

afterAll(async () => {
  await stopRoles();
  await nc?.close();
  await nats?.stop({ removeData: true });
}, 120_000);

/** Every peer of the meta group caught up: the cluster places and keeps R3 streams. */
async function allPeersCurrent(cluster: NatsCluster, what: string, ms: number): Promise<string[]> {
  return eventually(
    async () => {
      const meta = await cluster.metaGroup();
      const current = meta?.peers.filter((p) => p.current).map((p) => p.name) ?? [];
      // Thrown, so a timeout says what the group looked like last.
      if (meta?.size !== 3 || current.length !== 3) throw new Error(`meta group: ${JSON.stringify(meta)}`);
      return current.sort();
    },
    what,
    ms,
  );
}

/** The reference predictions, within float32 rounding. */
const matches = (got: number[] | undefined, want: Float32Array) =>
  got?.length === want.length && got.every((v, i) => Math.abs(v - want[i]!) < 1e-5);

interface Outcomes {
  ok: number;
  retryable: number;
  failed: number;
  /** Non-retryable answers, to show what failed. */
  failures: string[];
  /** Retryable answers by error code. */
  retryableCodes: Record<string, number>;
  /** When the last OK answer arrived. */
  lastOkAt: number;
  /** The longest time without any correct answer, between two of them. */
  longestGapMs: number;
}

/**
 * Requests one after another until `stop` is set, each checked against the reference; a retryable error is
 * one whose catalog entry says so (overload, deadline), anything else fails.
 */
async function requestLoop(
  url: string,
  body: string,
  want: Float32Array,
  out: Outcomes,
  stop: { now: boolean },
): Promise<void> {
  while (!stop.now) {
    try {
      const res = await fetch(`${url}/serving-endpoints/ha-ep/invocations`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(60_000),
      });
      const json = (await res.json()) as { predictions?: number[]; error_code?: string; message?: string };
      if (res.status === 200 && matches(json.predictions, want)) {
        const now = Date.now();
        if (out.lastOkAt) out.longestGapMs = Math.max(out.longestGapMs, now - out.lastOkAt);
        out.ok++;
        out.lastOkAt = now;
      } else if (isErrorCode(json.error_code) && ERROR_CATALOG[json.error_code].retryable) {
        out.retryable++;
        out.retryableCodes[json.error_code] = (out.retryableCodes[json.error_code] ?? 0) + 1;
      } else {
        out.failed++;
        out.failures.push(`${res.status} ${JSON.stringify(json).slice(0, 200)}`);
      }
    } catch (err) {
      out.failed++;
      out.failures.push(String(err));
    }
  }
}

/** A management API call over NATS, as the CLI makes it. */
async function api(
  nc: NatsConnection,
  cluster: string,
  op: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const m = await nc.request(`${cluster}.api.${op}`, JSON.stringify(body), { timeout: 30_000 });
  const code = m.headers?.get("x-switchyard-error-code");
  const reply = m.json<Record<string, unknown>>();
  if (code) throw new Error(`${op}: ${code}: ${String(reply.message)}`);
  return reply;
}

describe("a three-node NATS cluster with replication 3", () => {
  it("replicates what the cluster creates and serves through the loss and return of one server", async () => {
    onTestFailed(() => {
      for (const r of roles()) console.log(`--- ${r.command}:\n${r.output().slice(-4000)}`);
    });
    nats = await startCluster(3, { monitorPort: -1 });
    await allPeersCurrent(nats, "the meta group's 3 peers current", 120_000);
    const cluster = `h${Math.random().toString(36).slice(2, 9)}`;
    const names = clusterNames(cluster);
    // Two stores a client made first, with one copy: the roles bring them to the setting.
    nc = await connectNats({ servers: nats.urls, name: "nats-cluster-test" });
    await new Kvm(nc).create(names.buckets.endpoints, { ...BUCKET_OPTIONS.endpoints, replicas: 1 });
    await new Objm(nc).create(names.buckets.artifacts, { replicas: 1 });
    const flags = ["--nats", nats.urls.join(","), "--cluster", cluster, "--replication", "3"];
    // A short ack wait, so the stream job's inputs held by a scorer cut off by the kill come back in seconds.
    role(["coordinator", ...flags, "--id", "c1", "--stream-ack-wait-ms", "3000"]);
    const cache = path.join(tempDir("sy-ha-"), "models");
    role(["node", ...flags, "--node-id", "host-a", "--threads", "2", "--cache-dir", cache]);
    const bridge = role(["bridge", ...flags, "--http-port", "0", "--no-auth"]);
    const url = await eventually(
      () => bridge.output().match(/listening on (http:\/\/\S+)/)?.[1],
      "the bridge URL",
      90_000,
    );

    const model = buildLinear({ inputs: 2, sigmoid: true, bias: [0.25] });
    const reg = await cli([
      "models",
      "register",
      "ha_model",
      writeTempModel(model),
      "--json",
      ...flags.slice(0, 4),
    ]);
    expect(reg.stderr).toBe("");
    expect(JSON.parse(reg.stdout).version).toBe(1);
    const created = await createEndpoint(url, "ha-ep", "ha_model");
    expect(created.status).toBe(200);
    await endpointReady(url, "ha-ep");

    const jsm = await jetstreamManager(nc);
    // A stream job from a user's R3 stream into a sink subject: the coordinator creates the sink stream.
    const source = { stream: `IN_${cluster}`, subject: `${cluster}in.ha` };
    await jsm.streams.add({ name: source.stream, subjects: [source.subject], num_replicas: 3 });
    const sink = `${cluster}out.ha`;
    const job = (await api(nc, cluster, "streams.create", {
      name: "ha",
      model: "models:/ha_model/1",
      source_stream: source.stream,
      sink_subject: sink,
      key: ["id"],
      columns: ["feature1", "feature2"],
      batch: 50,
    })) as { sink: { kind: string; stream: string } };
    expect(job.sink).toEqual({ kind: "subject", stream: names.streams.sink("ha"), subject: sink });

    // Every stream there is, read from the JetStream API: the six KV buckets, the artifact object store, the
    // capture, feedback, outcome and batch streams and the job's sink stream, all created by the roles, and the
    // user's source stream — each kept by three servers (the two a client made with one copy included).
    const streams: StreamInfo[] = [];
    for await (const s of jsm.streams.list()) streams.push(s);
    const byName = Object.fromEntries(streams.map((s) => [s.config.name, s.config.num_replicas]));
    const b = names.buckets;
    const s = names.streams;
    expect(byName).toEqual({
      [`KV_${b.models}`]: 3,
      [`KV_${b.endpoints}`]: 3,
      [`KV_${b.cluster}`]: 3,
      [`KV_${b.liveness}`]: 3,
      [`KV_${b.jobs}`]: 3,
      [`KV_${b.ratelimits}`]: 3,
      [`OBJ_${b.artifacts}`]: 3,
      [s.capture]: 3,
      [s.feedback]: 3,
      [s.outcomes]: 3,
      [s.batch]: 3,
      [s.sink("ha")]: 3,
      [source.stream]: 3,
    });

    const rows = [
      [1.0, 3.5],
      [-2, 0.5],
    ];
    const session = await ort.InferenceSession.create(model);
    const want = (
      await session.run({ input: new ort.Tensor("float32", Float32Array.from(rows.flat()), [2, 2]) })
    ).output!.data as Float32Array;
    const body = JSON.stringify({ dataframe_split: { columns: ["feature1", "feature2"], data: rows } });
    const first = await fetch(`${url}/serving-endpoints/ha-ep/invocations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(first.status).toBe(200);
    const got = ((await first.json()) as { predictions: number[] }).predictions;
    expect(got).toHaveLength(2);
    expect(matches(got, want)).toBe(true);

    // A write acknowledged before the kill, in a key nothing else reads; the server killed is the leader of
    // that bucket's stream, so the write survives only if a follower had it.
    const models = await openBucket(nc, names, "models");
    const ackedRevision = await models.put("probe.acked", "before the kill");
    const leaderName = (await jsm.streams.info(`KV_${b.models}`)).cluster?.leader;
    const victim = nats.servers.find((_, i) => leaderName === `sy-n${i + 1}`);
    expect(victim).toBeDefined();
    // What the kill cuts off (clients pick a server of the list at random): shown with the outcomes.
    const connz = (await (
      await fetch(`http://127.0.0.1:${victim!.monitorPort}/connz?limit=1024`)
    ).json()) as {
      connections?: Array<{ name?: string }>;
    };
    const onVictim = (connz.connections ?? []).map((c) => c.name ?? "?").sort();

    const out: Outcomes = {
      ok: 0,
      retryable: 0,
      failed: 0,
      failures: [],
      retryableCodes: {},
      lastOkAt: 0,
      longestGapMs: 0,
    };
    const stop = { now: false };
    const loops = [0, 1, 2, 3].map(() => requestLoop(url, body, want, out, stop));
    await eventually(() => (out.ok >= 20 ? true : undefined), "20 answers before the kill");
    const N = 3_000;
    const evs = events(0, N);
    let publishRetries = await publishAcked(nc, source.subject, evs.slice(0, N / 3));
    const before = { ...out };

    await victim!.kill();
    const killedAt = Date.now();
    // The endpoint answers again: a new request, sent at once, gets the reference prediction within 30 s of the
    // kill.
    const answeredAt = await eventually(
      async () => {
        const res = await fetch(`${url}/serving-endpoints/ha-ep/invocations`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(5_000),
        });
        const p = ((await res.json()) as { predictions?: number[] }).predictions;
        return res.status === 200 && matches(p, want) ? Date.now() : undefined;
      },
      "a correct answer to a new request after the kill",
      30_000,
    );
    // Published while one server of three is down: each acknowledged by the two left.
    publishRetries += await publishAcked(nc, source.subject, evs.slice(N / 3, (2 * N) / 3));
    const survived = await eventually(
      async () => (await models.get("probe.acked")) ?? undefined,
      "the acknowledged write read back with one server down",
    );
    expect(survived.string()).toBe("before the kill");
    expect(survived.revision).toBe(ackedRevision);

    const atRestart = { ...out };
    await victim!.restart();
    expect(await allPeersCurrent(nats, "the restarted server current in the meta group", 60_000)).toEqual([
      "sy-n1",
      "sy-n2",
      "sy-n3",
    ]);
    const okAtRestart = out.ok;
    publishRetries += await publishAcked(nc, source.subject, evs.slice((2 * N) / 3));
    await eventually(() => (out.ok >= okAtRestart + 20 ? true : undefined), "20 answers after the restart");
    stop.now = true;
    await Promise.all(loops);

    // Exactly one result per acknowledged event, each equal to the reference.
    let seen: unknown;
    const status = await eventually(
      async () => {
        const v = (await api(nc!, cluster, "streams.get", { name: "ha" })) as {
          status: { lag: number; results: number };
        };
        seen = v;
        return v.status.lag === 0 && v.status.results >= N ? v.status : undefined;
      },
      `job 'ha': every input acked and ${N} results`,
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last seen ${JSON.stringify(seen)}`);
    });
    const results = await readSink(nc, names.streams.sink("ha"), sink);
    // Counted by event id (the job's key): exactly one result each, from distinct source messages.
    const { byId, missing, duplicated } = countById(evs, results);
    const sourceSeqs = new Set(results.map((r) => (r.source as { seq: number }).seq));
    expect({
      missing,
      duplicated,
      results: results.length,
      sourceSeqs: sourceSeqs.size,
      status: status.results,
    }).toEqual({ missing: [], duplicated: [], results: N, sourceSeqs: N, status: N });
    expect((await jsm.streams.info(source.stream)).state.messages).toBe(N);
    const reference = (
      await session.run({
        input: new ort.Tensor("float32", Float32Array.from(evs.flatMap((e) => [e.feature1, e.feature2])), [
          N,
          2,
        ]),
      })
    ).output!.data as Float32Array;
    evs.forEach((e, i) => {
      const [r] = byId.get(e.id)!;
      expect(Math.abs((r!.prediction as number) - reference[i]!)).toBeLessThan(1e-5);
    });

    const phase = (a: Outcomes | undefined, z: Outcomes) =>
      `ok=${z.ok - (a?.ok ?? 0)} retryable=${z.retryable - (a?.retryable ?? 0)} failed=${z.failed - (a?.failed ?? 0)}`;
    console.log(
      `nats-cluster: requests before the kill ${phase(undefined, before)}; one server down ${phase(before, atRestart)}; ` +
        `after its restart ${phase(atRestart, out)}; longest time without a correct answer ${out.longestGapMs} ms; ` +
        `a new request answered ${answeredAt - killedAt} ms after the kill; ` +
        `retryable by code ${JSON.stringify(out.retryableCodes)}; ` +
        `connections on the killed server: ${onVictim.join(", ")}; ` +
        `stream job: ${N} events acknowledged (${publishRetries} publishes sent again), ${results.length} results`,
    );
    expect(out.failures).toEqual([]);
    expect(out.failed).toBe(0);
    // A request or reply lost with the server is sent again when its router or replica reconnects, not left to
    // its deadline (docs/realtime.md "When a nats-server dies").
    expect(out.retryableCodes).not.toHaveProperty("DEADLINE_EXCEEDED");
    expect(out.ok).toBeGreaterThanOrEqual(okAtRestart + 20);
  }, 480_000);
});

describe("the replication setting on the command line", () => {
  it.each([
    ["coordinator", ["--replication", "0"], {}, "'0'"],
    ["node", [], { SWITCHYARD_REPLICATION: "2.5" }, "'2.5'"],
    ["bridge", ["--replication", "6"], {}, "'6'"],
  ])("%s refuses a replica count outside 1..5, naming the flag", async (command, args, env, got) => {
    const r = await cli([command, "--nats", "nats://127.0.0.1:1", ...args], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      `error: --replication (SWITCHYARD_REPLICATION): expected an integer from 1 to 5, got ${got}\n`,
    );
  });

  it("`switchyard up` refuses replication above 1: it runs one nats-server", async () => {
    const dataDir = path.join(tempDir("sy-up-repl-"), "data");
    const r = await cli(["up", "--replication", "3", "--data-dir", dataDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^error: replication: `switchyard up` runs one nats-server, which keeps one copy of each stream, so it takes 1, not 3;/,
    );
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe("the replication option of the roles' classes", () => {
  it("is checked when a coordinator or a node agent is made, naming the option", () => {
    expect(() => new Coordinator({ nats: { servers: "nats://127.0.0.1:1" }, replication: 0 })).toThrow(
      "options.replication: expected an integer from 1 to 5, got '0'",
    );
    expect(() => new NodeAgent({ nats: { servers: "nats://127.0.0.1:1" }, replication: 6 })).toThrow(
      "options.replication: expected an integer from 1 to 5, got '6'",
    );
  });
});
