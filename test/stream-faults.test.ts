// Exactly once under faults, with real processes: a stream job's scorers (spawned by a node agent) are killed
// with SIGKILL mid-batch, frozen with SIGSTOP past the ack wait, and — on a nats-server of this file's own, with
// its JetStream store in a temp dir — every process is killed at once, nats-server included, and started again
// on the same store. After each, every message of the sink subject is read back and counted per source
// sequence: exactly one result per input, none missing, each prediction equal to raw onnxruntime-node's.
//
// The faults land mid-batch on purpose: a core subscription on the sink subject fires the kill the moment a
// result of a batch is seen, so the scorer dies after publishing results and before acking their inputs — the
// case the sink stream's duplicate window exists for (the inputs are redelivered and their results published
// again under the same msg ids).
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { Coordinator } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { connectNats, listKeys, openBucket, readValue } from "@switchyard/nats";
import { NatsServer } from "@switchyard/natsd";
import {
  clusterNames,
  keys,
  type StreamJobRequest,
  type StreamJobView,
  WorkerStatus,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildMlp, eventually, prng, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

const log = pino({ level: process.env.SY_TEST_LOG ?? "silent" });
/** The one entry point of every role, as users run it. */
const SWITCHYARD = fileURLToPath(new URL("../packages/cli/bin/switchyard.js", import.meta.url));
const FEATURES = ["f0", "f1", "f2", "f3"];
const MLP = buildMlp([4, 8, 1], { seed: 9 });
/** Short, so a killed scorer's inputs come back in seconds; the sink streams' duplicate window is 4× this. */
const ACK_WAIT_MS = 3_000;
/** Events per test, published in rounds around the faults. */
const N = 4_000;

let session: ort.InferenceSession;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  session = await ort.InferenceSession.create(MLP, { intraOpNumThreads: 1 });
});
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await Promise.resolve(f()).catch(() => undefined);
});

function events(n: number, seed: number): Array<Record<string, unknown>> {
  const rand = prng(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: `e${i}`,
    ...Object.fromEntries(FEATURES.map((f) => [f, Math.round((rand() * 4 - 2) * 1000) / 1000])),
  }));
}

/** What raw onnxruntime-node predicts for `evs`, in order. */
async function reference(evs: Array<Record<string, unknown>>): Promise<number[]> {
  const data = Float32Array.from(evs.flatMap((e) => FEATURES.map((f) => e[f] as number)));
  const out = await session.run({ input: new ort.Tensor("float32", data, [evs.length, 4]) });
  return Array.from(Object.values(out)[0]!.data as Float32Array);
}

/** One cluster as the tests see it: its NATS connection and management API. */
class Cluster {
  readonly name = `t${randomBytes(5).toString("hex")}`;
  constructor(public nc: NatsConnection) {}

  async api(op: string, body: unknown): Promise<Record<string, unknown>> {
    const m = await this.nc.request(`${this.name}.api.${op}`, JSON.stringify(body), { timeout: 30_000 });
    const code = m.headers?.get("x-switchyard-error-code");
    const reply = m.json<Record<string, unknown>>();
    if (code) throw new Error(`${op}: ${code}: ${String(reply.message)}`);
    return reply;
  }

  async create(req: StreamJobRequest): Promise<StreamJobView> {
    return (await this.api("streams.create", req)) as unknown as StreamJobView;
  }

  async view(name: string): Promise<StreamJobView> {
    return (await this.api("streams.get", { name })) as unknown as StreamJobView;
  }

  /** A source stream `IN_<tag>` capturing `<cluster>in.<tag>`. */
  async source(tag: string): Promise<{ stream: string; subject: string }> {
    const stream = `IN_${this.name}_${tag}`;
    const subject = `${this.name}in.${tag}`;
    await (await jetstreamManager(this.nc)).streams.add({ name: stream, subjects: [subject] });
    return { stream, subject };
  }

  /**
   * Publishes in order (one connection keeps the order), a chunk of acks awaited at a time. Each event's id is
   * its msg id, so publishing the same events again (a retry) adds nothing to the source stream.
   */
  async publish(subject: string, evs: Array<Record<string, unknown>>): Promise<void> {
    const js = jetstream(this.nc);
    for (let i = 0; i < evs.length; i += 200) {
      await Promise.all(
        evs.slice(i, i + 200).map((e) => js.publish(subject, JSON.stringify(e), { msgID: String(e.id) })),
      );
    }
  }

  /** Pids of the job's scorers that report RUNNING (each scorer writes its own pid once it scores). */
  async scorerPids(job: string): Promise<number[]> {
    const kv = await openBucket(this.nc, clusterNames(this.name), "cluster");
    const pids: number[] = [];
    for (const key of await listKeys(kv, keys.workers)) {
      const s = (await readValue(kv, key, WorkerStatus, "worker status"))?.value;
      if (s?.job_id === job && s.state === "RUNNING" && s.pid) pids.push(s.pid);
    }
    return pids;
  }

  /** Waits until every input is acked (lag 0) and at least `n` results are in the sink stream. */
  async drained(job: string, n: number): Promise<StreamJobView> {
    return eventually(
      async () => {
        const v = await this.view(job);
        expect(v.status.lag).toBe(0);
        expect(v.status.results).toBeGreaterThanOrEqual(n);
        return v;
      },
      `job '${job}': every input acked and ${n} results`,
      90_000,
    );
  }

  /** Every message of `subject` in `stream`, as JSON, read with an ordered consumer. */
  async readAll(stream: string, subject: string): Promise<Array<Record<string, unknown>>> {
    const jsm = await jetstreamManager(this.nc);
    const info = await jsm.streams.info(stream, { subjects_filter: subject });
    const total = info.state.subjects?.[subject] ?? 0;
    const c = await jetstream(this.nc).consumers.get(stream, { filter_subjects: [subject] });
    const out: Array<Record<string, unknown>> = [];
    while (out.length < total) {
      const batch = await c.fetch({ max_messages: Math.min(500, total - out.length), expires: 2_000 });
      for await (const m of batch) out.push(m.json());
    }
    return out;
  }
}

/**
 * Calls `fault` synchronously, from the subscription's callback, on a result published after `arm` (the
 * `after + 1`-th seen): the scorer that published it is then between its result publishes and its acks.
 */
class Tripwire {
  private armed: { fault: () => void; left: number } | undefined;
  private readonly sub: Subscription;
  /** Whether the fault of the last `arm` has run. */
  fired = false;

  constructor(nc: NatsConnection, subject: string) {
    this.sub = nc.subscribe(subject, {
      callback: () => {
        const a = this.armed;
        if (!a || a.left-- > 0) return;
        this.armed = undefined;
        a.fault();
        this.fired = true;
      },
    });
  }

  arm(fault: () => void, after = 0): void {
    this.fired = false;
    this.armed = { fault, left: after };
  }

  /** Waits until the armed fault has run (results keep coming while events are published). */
  tripped(what: string): Promise<true> {
    return eventually(() => (this.fired ? true : undefined), what, 60_000);
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

/**
 * Exactly one result per input: counted by `source.seq` (event i was published as sequence i + 1), with the
 * event's key and a prediction equal to the reference. Duplicates and missing sequences are listed whole.
 */
async function expectOnePerInput(
  results: Array<Record<string, unknown>>,
  evs: Array<Record<string, unknown>>,
  stream: string,
  atLeastOnce = false,
): Promise<void> {
  const bySeq = new Map<number, Array<Record<string, unknown>>>();
  for (const r of results) {
    const src = r.source as { stream: string; seq: number };
    expect(src.stream).toBe(stream);
    bySeq.set(src.seq, [...(bySeq.get(src.seq) ?? []), r]);
  }
  const missing = evs.map((_, i) => i + 1).filter((seq) => !bySeq.has(seq));
  const duplicated = [...bySeq].filter(([, rs]) => rs.length > 1).map(([seq, rs]) => `${seq}×${rs.length}`);
  const unknown = [...bySeq.keys()].filter((seq) => seq < 1 || seq > evs.length);
  expect({ missing, unknown }).toEqual({ missing: [], unknown: [] });
  if (!atLeastOnce) {
    expect(duplicated).toEqual([]);
    expect(results.length).toBe(evs.length);
  }
  const want = await reference(evs);
  evs.forEach((e, i) => {
    for (const r of bySeq.get(i + 1)!) {
      expect(r.id).toBe(e.id);
      expect(r.prediction as number).toBeCloseTo(want[i]!, 5);
      expect(r.model).toEqual({ name: "mlp", version: 1 });
    }
  });
}

describe("stream jobs under scorer faults", () => {
  let nc: NatsConnection;
  let c: Cluster;
  let coordinator: Coordinator;
  let agent: NodeAgent;

  beforeAll(async () => {
    nc = await connectNats({ servers: inject("natsUrl"), name: "stream-faults" });
    c = new Cluster(nc);
    const registry = await Registry.open(nc, { cluster: c.name });
    await registerModel(registry, "mlp", writeTempModel(MLP), { alias: "champion" });
    coordinator = new Coordinator({ nc, cluster: c.name, logger: log, streamAckWaitMs: ACK_WAIT_MS });
    await coordinator.start();
    agent = new NodeAgent({
      nats: { servers: inject("natsUrl") },
      cluster: c.name,
      nodeId: "n1",
      threads: 2,
      cacheDir: tempDir("sy-stream-faults-cache-"),
      logger: log,
    });
    await agent.start();
  });
  afterAll(async () => {
    await agent?.stop();
    await coordinator?.stop();
    await nc?.close();
  });

  /** Creates a job reading a fresh source stream into a fresh sink subject; deleted after the test. */
  async function job(name: string, extra: Partial<StreamJobRequest> = {}) {
    const { stream, subject } = await c.source(name);
    const sink = `${c.name}out.${name}`;
    const tripwire = new Tripwire(nc, sink);
    cleanups.push(() => tripwire.close());
    const view = await c.create({
      name,
      model: "models:/mlp@champion",
      source_stream: stream,
      sink_subject: sink,
      key: ["id"],
      batch: 100,
      ...extra,
    });
    cleanups.push(async () => {
      await c.api("streams.delete", { name });
    });
    if (view.sink.kind !== "subject") throw new Error("expected a subject sink");
    return { stream, subject, sink, sinkStream: view.sink.stream, tripwire };
  }

  it("kill -9 of a scorer mid-batch, three times: exactly one result per input", async () => {
    const j = await job("kill");
    const evs = events(N, 11);
    const killed: number[] = [];
    const rounds = 4;
    const per = N / rounds;
    for (let r = 0; r < rounds; r++) {
      if (r < rounds - 1) {
        // The scorer the agent runs now (a new process after each kill).
        const pid = await eventually(
          async () => (await c.scorerPids("kill")).find((p) => !killed.includes(p)),
          "a running scorer",
          60_000,
        );
        // Well into the round, so the three kills land on different batches.
        j.tripwire.arm(() => {
          process.kill(pid, "SIGKILL");
          killed.push(pid);
        }, per / 4);
        await c.publish(j.subject, evs.slice(r * per, (r + 1) * per));
        await j.tripwire.tripped(`kill ${r + 1}`);
      } else {
        await c.publish(j.subject, evs.slice(r * per));
      }
    }
    const view = await c.drained("kill", N);
    expect(killed).toHaveLength(3);
    expect(view.status.delivery).toBe("exactly-once");
    await expectOnePerInput(await c.readAll(j.sinkStream, j.sink), evs, j.stream);
    expect((await c.view("kill")).status.results).toBe(N);
  }, 150_000);

  it("SIGSTOP of one of two scorers past the ack wait, then SIGCONT: exactly one result per input", async () => {
    const j = await job("stop", { parallelism: 2 });
    const evs = events(N, 12);
    const pids = await eventually(
      async () => {
        const p = await c.scorerPids("stop");
        return p.length === 2 ? p : undefined;
      },
      "two running scorers",
      60_000,
    );
    const [frozen] = pids;
    cleanups.push(() => {
      // Never leave a stopped process behind, whatever failed.
      try {
        process.kill(frozen!, "SIGCONT");
      } catch {}
    });
    j.tripwire.arm(() => process.kill(frozen!, "SIGSTOP"), N / 8);
    await c.publish(j.subject, evs.slice(0, N / 2));
    await j.tripwire.tripped("the SIGSTOP");
    const before = (await c.view("stop")).status.results;
    await c.publish(j.subject, evs.slice(N / 2));
    // The fault itself: frozen for twice the ack wait, so what it holds is redelivered to the other scorer.
    await new Promise((r) => setTimeout(r, 2 * ACK_WAIT_MS));
    const during = (await c.view("stop")).status.results;
    expect(during).toBeGreaterThan(before);
    process.kill(frozen!, "SIGCONT");
    await c.drained("stop", N);
    await expectOnePerInput(await c.readAll(j.sinkStream, j.sink), evs, j.stream);
    expect((await c.view("stop")).status.results).toBe(N);
  }, 120_000);

  it("at-least-once says so in its status and scores every input", async () => {
    const j = await job("alo", { delivery: "at-least-once" });
    const evs = events(1_000, 13);
    await c.publish(j.subject, evs);
    const view = await c.drained("alo", evs.length);
    expect(view.status.delivery).toBe("at-least-once");
    await expectOnePerInput(await c.readAll(j.sinkStream, j.sink), evs, j.stream, true);
  }, 60_000);
});

describe("stream jobs when every process dies", () => {
  /** A role process (`switchyard coordinator|node`) in its own process group, so SIGKILL takes its children. */
  function role(url: string, cluster: string, args: string[]): ChildProcess {
    const child = spawn(process.execPath, [SWITCHYARD, ...args, "--nats", url, "--cluster", cluster], {
      detached: true,
      env: {
        ...process.env,
        ...(process.env.SY_TEST_LOG ? { SWITCHYARD_LOG_LEVEL: process.env.SY_TEST_LOG } : {}),
      },
      stdio: ["ignore", process.env.SY_TEST_LOG ? "inherit" : "ignore", "inherit"],
    });
    cleanups.push(() => killGroup(child));
    return child;
  }

  it("kill -9 of the scorer, agent, coordinator and nats-server, then a restart: exactly one result per input", async () => {
    const dir = tempDir("sy-stream-crash-");
    // JetStream on disk in this test's own temp dir: the server is killed and started again on it.
    const server = await NatsServer.start({ storeDir: path.join(dir, "jetstream") });
    cleanups.push(() => server.stop({ removeData: true }));
    const cacheDir = path.join(dir, "cache");
    const ackWait = 5_000;
    let nc = await connectNats({ servers: server.url, name: "stream-crash" });
    cleanups.push(() => nc.close());
    const c = new Cluster(nc);
    await registerModel(await Registry.open(nc, { cluster: c.name }), "mlp", writeTempModel(MLP));
    const start = () => [
      role(server.url, c.name, ["coordinator", "--stream-ack-wait-ms", String(ackWait)]),
      role(server.url, c.name, ["node", "--node-id", "n1", "--threads", "1", "--cache-dir", cacheDir]),
    ];
    const [coordinator, agent] = start();
    const { stream, subject } = await c.source("crash");
    const sink = `${c.name}out.crash`;
    await eventually(() => c.api("streams.list", {}), "the coordinator's API", 60_000);
    const view = await c.create({
      name: "crash",
      model: "models:/mlp/1",
      source_stream: stream,
      sink_subject: sink,
      key: ["id"],
      batch: 100,
    });
    expect(view.ack_wait_ms).toBe(ackWait);
    const sinkStream = view.sink.kind === "subject" ? view.sink.stream : "";
    const evs = events(N, 14);
    const scorer = await eventually(async () => (await c.scorerPids("crash"))[0], "a running scorer", 60_000);
    const tripwire = new Tripwire(nc, sink);
    // Every process at once, a quarter of the way in: results written, inputs acked or not, batches in flight.
    tripwire.arm(() => {
      process.kill(scorer, "SIGKILL");
      killGroup(agent!);
      killGroup(coordinator!);
      void server.kill();
    }, N / 4);
    await c.publish(subject, evs.slice(0, N / 2)).catch(() => undefined);
    await tripwire.tripped("the crash");
    await server.kill();
    await nc.close().catch(() => undefined);

    // Back well within the sink stream's duplicate window (four ack waits, 20 s): a result written before the
    // crash whose input comes again — never acked, or acked but the ack lost with the server's unflushed
    // consumer state — is recognised by its msg id only within that window.
    await server.restart();
    nc = await connectNats({ servers: server.url, name: "stream-crash-2" });
    c.nc = nc;
    start();
    // The first half again: whatever the crash cut off is published now (msg ids keep the rest single), then
    // the second. JetStream may still be recovering the stream for a moment after the restart.
    await eventually(
      () => c.publish(subject, evs).then(() => true),
      "the events published after the restart",
      30_000,
    );
    await c.drained("crash", N);
    await expectOnePerInput(await c.readAll(sinkStream, sink), evs, stream);
    expect((await c.view("crash")).status.results).toBe(N);
  }, 150_000);
});

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}
