// Streaming inference (issue 9): events of 30 numeric fields (bench/lib/stream-events.ts) published to a
// JetStream stream at a fixed offered rate by an open-loop publisher process (bench/load/stream-publisher.ts),
// scored with the realtime bench's LR model, one result per event written to a sink stream; every stream on file
// storage, all on the nats-server of one `switchyard up --node-threads 2`. Contenders: (1) the baseline loop
// (bench/baseline/stream-loop.ts: one message at a time, session.run, publish with a msg id, double ack), (2)
// Switchyard stream jobs exactly-once with one and two scorers, (3) at-least-once with one; jobs are created
// through the management API over NATS with the product's defaults (batch, max wait).
//
// Per contender: a short probe at more than anything takes gives a first estimate; a step search over LADDER then
// finds the highest offered rate it sustains — over the step's second half at most LAG_BOUND_S seconds of events unacked,
// results per second close to the offered rate, and every event of the step with exactly one correct result in the
// sink (read back: counted per id, predictions against the JS reference). End-to-end latency (the event's
// `sent_ms`, stamped by the publisher just before publishing, to the result's timestamp in the sink stream) is
// measured at half that rate. CPU of each process (nats-server, scorers, publisher, `up`) is read from /proc
// around every step: that split is where the time goes.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "@switchyard/nats";
import {
  type ApiOp,
  type ClusterNames,
  clusterNames,
  H,
  requiredDuplicateWindowMs,
  STREAM_DEFAULTS,
  type StreamJobRequest,
  type StreamJobView,
} from "@switchyard/protocol";
import * as ort from "onnxruntime-node";
import { clockTicks, machineBusySeconds, treeCpuTicks } from "../lib/cpu.js";
import { benchDist, type Server, spawnJsonChild, startJsonServer } from "../lib/procs.js";
import {
  eventEncoder,
  eventIndex,
  eventPool,
  FEATURES,
  KEY_FIELD,
  POOL_ROWS,
  SENT_FIELD,
} from "../lib/stream-events.js";
import { redact, registerModel, type SwitchyardCluster, startSwitchyard } from "../lib/switchyard.js";
import { cmdline } from "../lib/tree-sampler.js";
import { createRecorder } from "../load/common.js";
import type { PublisherResult } from "../load/stream-publisher.js";
import { type Bench, type Cell, fmt, opsPerSecond } from "../types.js";
import { MODELS } from "./realtime.js";

/** The node agent's thread budget: the machine the targets were set for has 2 cores. */
const NODE_THREADS = 2;
/** Offered rates the search steps through, events/s. */
const LADDER = [
  250, 500, 750, 1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 6_000, 7_500, 10_000, 12_500, 15_000, 20_000,
];
/** What the probe offers: more than any contender takes; its result rate is where the search starts. */
const PROBE_RATE = 20_000;
/** Sustained: at the step's end at most this many seconds of events not yet acked … */
const LAG_BOUND_S = 2;
/** … results per second over the step at least this share of the offered rate … */
const MIN_RESULT_SHARE = 0.95;
/** … and the publisher kept to its schedule (else the step measured the publisher). */
const MIN_SENT_SHARE = 0.98;
/** A step is stopped once its lag passes this many seconds of events: it has failed, and draining costs time. */
const ABORT_LAG_S = 10;
const DRAIN_TIMEOUT_MS = 180_000;
/** Published and awaited before a contender is measured: its model is loaded and its consumer bound. */
const WARMUP_EVENTS = 200;
/** Predictions are float32 from ORT; the reference is float64. */
const TOLERANCE = 1e-4;
/** The publisher's bound on unacked publishes. */
const MAX_OUTSTANDING = 4096;
/** Above this much CPU of unrelated processes (cores) during a step, its figures are flagged as disturbed. */
const NOISY_CORES = 0.25;
/** Issue 9's targets on this machine (exactly-once cells). */
const TARGET_RATE = 5_000;
const STRETCH_RATE = 10_000;
const TARGET_P99_MS = 100;
const TARGET_RATIO = 3;
/** A scorer process (the agent runs `node …/@switchyard/jobs/dist/stream/main.js`). */
const isScorer = (cmd: string) => /\bstream\/main\.js\b/.test(cmd);

interface Timing {
  /** What the probe offers, and for how long. */
  probeRate: number;
  probeS: number;
  stepS: number;
  halfS: number;
  /** Steps of the search per contender, at most. */
  maxSteps: number;
  /** Every contender's one step at this rate, whatever the probe said (smoke). */
  fixedRate?: number;
  /** How long the run may wait in all for the machine to be quiet before steps. */
  quietBudgetS: number;
}
const FULL: Timing = {
  probeRate: PROBE_RATE,
  probeS: 10,
  stepS: 60,
  halfS: 60,
  maxSteps: 6,
  quietBudgetS: 300,
};
/** CI: every code path once, briefly and at low rates (no figure of a smoke run means anything). */
const SMOKE: Timing = {
  probeRate: 2_000,
  probeS: 2,
  stepS: 4,
  halfS: 3,
  maxSteps: 1,
  fixedRate: 1_000,
  quietBudgetS: 0,
};

interface CellSpec {
  key: string;
  label: string;
  /** A Switchyard stream job; none: the baseline loop. */
  job?: { parallelism: number; delivery: "exactly-once" | "at-least-once" };
  /** Held to issue 9's targets. */
  targets: boolean;
  /** Part of the smoke run. */
  smoke: boolean;
}

const CELLS: CellSpec[] = [
  { key: "base", label: "(1) baseline loop", targets: false, smoke: true },
  {
    key: "eo1",
    label: "(2) Switchyard exactly-once, 1 scorer",
    job: { parallelism: 1, delivery: "exactly-once" },
    targets: true,
    smoke: true,
  },
  {
    key: "eo2",
    label: "(2) Switchyard exactly-once, 2 scorers",
    job: { parallelism: 2, delivery: "exactly-once" },
    targets: true,
    smoke: false,
  },
  {
    key: "alo1",
    label: "(3) Switchyard at-least-once, 1 scorer",
    job: { parallelism: 1, delivery: "at-least-once" },
    targets: false,
    smoke: true,
  },
];

/** What every step needs: the cluster, a connection, the model and its reference predictions per pool row. */
interface Env {
  sy: SwitchyardCluster;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: ClusterNames;
  modelFile: string;
  modelUri: string;
  reference: number[];
  timing: Timing;
  /** What is left of timing.quietBudgetS, in ms. */
  quietBudgetMs: number;
  log(msg: string): void;
}

/** A contender set up and warm: where its events go, where its results land, and which processes score. */
interface Running {
  spec: CellSpec;
  source: { stream: string; subject: string; consumer: string };
  sink: { stream: string; subject: string };
  /** The processes that score: the baseline loop, or the job's scorers. */
  scorers: number[];
  /** Roots besides `switchyard up` whose process trees are accounted (the baseline loop). */
  roots: number[];
  stop(): Promise<void>;
}

interface Check {
  /** Events the publisher sent (and the stream acked). */
  expected: number;
  /** Results of this step's events in the sink, duplicates included. */
  results: number;
  duplicates: number;
  missing: number;
  /** Predictions off the reference by more than TOLERANCE. */
  wrong: number;
  /** Dead letters and late events (none expected). */
  deadLetters: number;
  p50Ms: number;
  p99Ms: number;
}

const CPU_GROUPS = ["nats", "scorer", "publisher", "up", "bench", "other"] as const;
type CpuGroup = (typeof CPU_GROUPS)[number];

interface StepResult {
  kind: "probe" | "step" | "half";
  rate: number;
  pub: PublisherResult;
  /** This step's results in the sink when the publisher finished, per second of publishing. */
  resultRate: number;
  lagEnd: number;
  maxLag: number;
  /** The largest lag sampled (each second) in the second half of the step, its end included. */
  lateLag: number;
  aborted: boolean;
  check?: Check;
  /** Cores used while publishing, per group of processes. */
  cores: Record<CpuGroup, number>;
  sustained: boolean;
  /** Why the step was not sustained. */
  why: string[];
}

interface CellResult {
  spec: CellSpec;
  probe?: StepResult;
  steps: StepResult[];
  best?: StepResult;
  half?: StepResult;
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NS = 1_000_000;

/** Polls `fn` every 200 ms until it returns something other than undefined; throws after `timeoutMs`. */
async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

async function api<T>(env: Env, op: ApiOp, body: unknown): Promise<T> {
  const m = await env.nc.request(env.names.subjects.api(op), JSON.stringify(body), { timeout: 30_000 });
  const code = m.headers?.get(H.errorCode);
  if (code) throw new Error(`${op}: ${code}: ${m.json<{ message?: string }>().message}`);
  return m.json<T>();
}

/** Messages of the contender's source not acked yet: undelivered plus delivered and unacked. */
async function lagOf(env: Env, cell: Running): Promise<number> {
  const info = await env.jsm.consumers.info(cell.source.stream, cell.source.consumer);
  return info.num_pending + info.num_ack_pending;
}

const lastSeq = async (env: Env, stream: string) => (await env.jsm.streams.info(stream)).state.last_seq;

const scorerPids = (root: number) => [...treeCpuTicks([root]).keys()].filter((p) => isScorer(cmdline(p)));

async function addFileStream(env: Env, name: string, subjects: string[], duplicateWindowMs?: number) {
  await env.jsm.streams.add({
    name,
    subjects,
    storage: StorageType.File,
    ...(duplicateWindowMs === undefined ? {} : { duplicate_window: duplicateWindowMs * NS }),
  });
}

/** Creates the contender's streams and its scorer(s), and waits for results of a warm-up. */
async function startCell(env: Env, spec: CellSpec): Promise<Running> {
  const tag = spec.key.toUpperCase();
  const source = { stream: `BENCH_${tag}_IN`, subject: `bench.${spec.key}.in` };
  const sinkSubject = `bench.${spec.key}.out`;
  await addFileStream(env, source.stream, [source.subject]);
  let cell: Running;
  if (!spec.job) {
    // The sink stream and the consumer a stream job would get: the same duplicate window, ack wait and limits.
    const sink = { stream: `BENCH_${tag}_OUT`, subject: sinkSubject };
    await addFileStream(
      env,
      sink.stream,
      [sink.subject],
      requiredDuplicateWindowMs(STREAM_DEFAULTS.ack_wait_ms),
    );
    const consumer = "baseline";
    await env.jsm.consumers.add(source.stream, {
      durable_name: consumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: STREAM_DEFAULTS.ack_wait_ms * NS,
      max_deliver: -1,
      max_ack_pending: STREAM_DEFAULTS.max_ack_pending,
    });
    let server: Server;
    try {
      ({ server } = await startJsonServer(path.join(benchDist, "baseline", "stream-loop.js"), [
        ...["--url", env.sy.file.natsUrl, "--stream", source.stream, "--consumer", consumer],
        ...["--sink-subject", sink.subject, "--model", env.modelFile],
      ]));
    } catch (err) {
      await deleteStreams(env, [source.stream, sink.stream]);
      throw err;
    }
    cell = {
      spec,
      source: { ...source, consumer },
      sink,
      scorers: [server.pid],
      roots: [server.pid],
      stop: async () => {
        await server.stop();
        await deleteStreams(env, [source.stream, sink.stream]);
      },
    };
  } else {
    const name = `bench-${spec.key}`;
    const request: StreamJobRequest = {
      name,
      model: env.modelUri,
      source_stream: source.stream,
      sink_subject: sinkSubject,
      key: [KEY_FIELD],
      event_time: SENT_FIELD,
      parallelism: spec.job.parallelism,
      delivery: spec.job.delivery,
    };
    const view = await api<StreamJobView>(env, "streams.create", request);
    if (view.sink.kind !== "subject") throw new Error(`stream job ${name}: expected a subject sink`);
    const sink = { stream: view.sink.stream, subject: sinkSubject };
    const stop = async () => {
      await api(env, "streams.delete", { name });
      await waitFor(`the scorers of ${name} to exit`, 60_000, async () =>
        scorerPids(env.sy.pid).length === 0 ? true : undefined,
      );
      await deleteStreams(env, [source.stream, sink.stream]);
    };
    try {
      const scorers = await waitFor(
        `${spec.job.parallelism} scorer(s) of ${name} running`,
        120_000,
        async () => {
          const v = await api<StreamJobView>(env, "streams.get", { name });
          if (v.status.scorers.filter((s) => s.state === "RUNNING").length < spec.job!.parallelism)
            return undefined;
          const pids = scorerPids(env.sy.pid);
          return pids.length === spec.job!.parallelism ? pids : undefined;
        },
      );
      cell = { spec, source: { ...source, consumer: view.source.consumer }, sink, scorers, roots: [], stop };
    } catch (err) {
      await stop().catch(() => undefined);
      throw err;
    }
  }
  try {
    const seq0 = await lastSeq(env, cell.sink.stream);
    const encode = eventEncoder("warm");
    await Promise.all(
      Array.from({ length: WARMUP_EVENTS }, (_, n) =>
        env.js.publish(cell.source.subject, encode(n, Date.now())),
      ),
    );
    await waitFor(`${spec.label}: results of ${WARMUP_EVENTS} warm-up events`, 120_000, async () =>
      (await lagOf(env, cell)) === 0 && (await lastSeq(env, cell.sink.stream)) - seq0 >= WARMUP_EVENTS
        ? true
        : undefined,
    );
  } catch (err) {
    await cell.stop().catch(() => undefined);
    throw err;
  }
  return cell;
}

async function deleteStreams(env: Env, streams: string[]): Promise<void> {
  for (const s of streams) await env.jsm.streams.delete(s).catch(() => undefined);
}

interface Snapshot {
  ticks: Map<number, number>;
  busyS: number;
  self: NodeJS.CpuUsage;
  at: number;
}

const snapshot = (env: Env, cell: Running): Snapshot => ({
  ticks: treeCpuTicks([env.sy.pid, ...cell.roots]),
  busyS: machineBusySeconds(),
  self: process.cpuUsage(),
  at: performance.now(),
});

/** Cores each group of processes used between two snapshots (the publisher's from its own report). */
function coresBetween(cell: Running, a: Snapshot, b: Snapshot, publisherS: number) {
  const s = Object.fromEntries(CPU_GROUPS.map((g) => [g, 0])) as Record<CpuGroup, number>;
  for (const [pid, ticks] of b.ticks) {
    const cpuS = (ticks - (a.ticks.get(pid) ?? 0)) / clockTicks();
    // `up` runs the coordinator, the node agent and the bridge in one process; nats-server is its child.
    const group: CpuGroup = cell.scorers.includes(pid)
      ? "scorer"
      : /nats-server/.test(cmdline(pid))
        ? "nats"
        : "up";
    s[group] += cpuS;
  }
  s.publisher = publisherS;
  s.bench = (b.self.user - a.self.user + b.self.system - a.self.system) / 1e6;
  s.other = Math.max(0, b.busyS - a.busyS - CPU_GROUPS.reduce((t, g) => t + (g === "other" ? 0 : s[g]), 0));
  const wallS = (b.at - a.at) / 1000;
  return Object.fromEntries(CPU_GROUPS.map((g) => [g, s[g] / wallS])) as Record<CpuGroup, number>;
}

/**
 * Reads the sink from `fromSeq` to its end and counts this step's results per event id: every event of
 * 0…expected-1 once, with the right prediction; the latency of each from its `event_time` (sent_ms) to its
 * timestamp in the sink.
 */
async function checkSink(env: Env, cell: Running, fromSeq: number, prefix: string, expected: number) {
  const last = await lastSeq(env, cell.sink.stream);
  const seen = new Uint8Array(expected);
  const latency = createRecorder();
  const c: Check = {
    expected,
    results: 0,
    duplicates: 0,
    missing: 0,
    wrong: 0,
    deadLetters: 0,
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
  };
  if (last >= fromSeq) {
    const consumer = await env.js.consumers.get(cell.sink.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
    });
    let at = fromSeq - 1;
    while (at < last) {
      const batch = await consumer.fetch({ max_messages: 10_000, expires: 5_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        at = m.info.streamSequence;
        if (m.subject !== cell.sink.subject) {
          c.deadLetters++;
        } else {
          const r = m.json<Record<string, unknown>>();
          const n = eventIndex(r[KEY_FIELD], prefix);
          // Another prefix: a straggler of the probe before (its backlog was purged, not drained).
          if (n !== undefined) {
            c.results++;
            if (n >= expected || seen[n]! > 0) c.duplicates++;
            else seen[n] = 1;
            if (!(Math.abs((r.prediction as number) - env.reference[n % POOL_ROWS]!) <= TOLERANCE)) c.wrong++;
            latency.record(m.info.timestampNanos / NS - (r.event_time as number));
          }
        }
        if (at >= last) break;
      }
      if (got === 0) throw new Error(`${cell.sink.stream}: reading back stalled at seq ${at} of ${last}`);
    }
  }
  for (let n = 0; n < expected; n++) if (seen[n] === 0) c.missing++;
  c.p50Ms = latency.percentile(50);
  c.p99Ms = latency.percentile(99);
  return c;
}

const exactlyOnce = (c: Check) =>
  c.results === c.expected && c.duplicates === 0 && c.missing === 0 && c.wrong === 0 && c.deadLetters === 0;

let stepCounter = 0;

/**
 * Waits (within the run's budget) until processes other than the cluster, the contender and the bench use less
 * than NOISY_CORES: on a shared machine, unrelated load would be measured as the contender's slowness.
 */
async function waitQuiet(env: Env, cell: Running): Promise<void> {
  const t0 = performance.now();
  let other = 0;
  while (env.quietBudgetMs > 0) {
    const a = snapshot(env, cell);
    await sleep(1_000);
    const b = snapshot(env, cell);
    env.quietBudgetMs -= b.at - a.at;
    other = coresBetween(cell, a, b, 0).other;
    if (other <= NOISY_CORES) break;
  }
  const waitedS = (performance.now() - t0) / 1000;
  if (waitedS > 1.5) {
    env.log(
      `waited ${fmt(waitedS, 0)} s for a quiet machine (other processes: ${fmt(other, 2)} cores at the end)`,
    );
  }
}

/**
 * One run of the publisher at `rate` for `durationS` against a warm contender. A probe only measures the result
 * rate, then drops its backlog (purge); a step is stopped early once hopelessly behind, drained, and checked.
 */
async function runStep(
  env: Env,
  cell: Running,
  kind: StepResult["kind"],
  rate: number,
  durationS: number,
): Promise<StepResult> {
  await waitQuiet(env, cell);
  const prefix = `${kind}${++stepCounter}`;
  const seq0 = (await lastSeq(env, cell.sink.stream)) + 1;
  // Taken when the publisher starts and when it has made its last publish call: the step's window.
  let start: { cpu: Snapshot; sinkSeq: Promise<number> } | undefined;
  let end: { cpu: Snapshot; sinkSeq: Promise<number>; lag: Promise<number> } | undefined;
  const child = spawnJsonChild<PublisherResult>(
    path.join(benchDist, "load", "stream-publisher.js"),
    [
      ...["--url", env.sy.file.natsUrl, "--subject", cell.source.subject, "--prefix", prefix],
      ...[
        "--rate",
        String(rate),
        "--duration",
        String(durationS),
        "--max-outstanding",
        String(MAX_OUTSTANDING),
      ],
    ],
    {
      timeoutMs: (durationS + 120) * 1000,
      onLine: (v) => {
        if (typeof v !== "object" || v === null) return;
        if ("started" in v) start = { cpu: snapshot(env, cell), sinkSeq: lastSeq(env, cell.sink.stream) };
        if ("finished" in v) {
          end = { cpu: snapshot(env, cell), sinkSeq: lastSeq(env, cell.sink.stream), lag: lagOf(env, cell) };
        }
      },
    },
  );
  let finished = false;
  const done = child.done.finally(() => {
    finished = true;
  });
  done.catch(() => undefined);
  const lags: Array<{ at: number; lag: number }> = [];
  let aborted = false;
  while (!finished && !end) {
    await Promise.race([done.catch(() => undefined), sleep(1_000)]);
    if (finished || end) break;
    const lag = await lagOf(env, cell);
    lags.push({ at: performance.now(), lag });
    if (kind !== "probe" && !aborted && lag > ABORT_LAG_S * rate) {
      aborted = true;
      child.child.kill("SIGTERM");
    }
  }
  const pub = await done;
  if (!start || !end) throw new Error("stream-publisher did not report its start and finish");
  const lagEnd = await end.lag;
  const half = (start.cpu.at + end.cpu.at) / 2;
  const maxLag = Math.max(lagEnd, ...lags.map((l) => l.lag));
  const lateLag = Math.max(lagEnd, ...lags.filter((l) => l.at >= half).map((l) => l.lag));
  const resultRate = ((await end.sinkSeq) - (await start.sinkSeq)) / ((end.cpu.at - start.cpu.at) / 1000);
  const cores = coresBetween(cell, start.cpu, end.cpu, pub.cpuS);
  const r: StepResult = {
    kind,
    rate,
    pub,
    resultRate,
    lagEnd,
    maxLag,
    lateLag,
    aborted,
    cores,
    sustained: false,
    why: [],
  };
  if (kind === "probe") {
    // The backlog goes, what the scorers hold finishes (its results are told apart by prefix later).
    await env.jsm.streams.purge(cell.source.stream);
    await waitFor(`${cell.spec.label}: lag 0 after the probe`, DRAIN_TIMEOUT_MS, async () =>
      (await lagOf(env, cell)) === 0 ? true : undefined,
    );
    return r;
  }
  await waitFor(`${cell.spec.label}: drain after ${rate}/s`, DRAIN_TIMEOUT_MS, async () =>
    (await lagOf(env, cell)) === 0 ? true : undefined,
  );
  r.check = await checkSink(env, cell, seq0, prefix, pub.sent);
  await env.jsm.streams.purge(cell.source.stream);
  await env.jsm.streams.purge(cell.sink.stream);
  const scheduled = Math.floor(rate * durationS);
  if (aborted) r.why.push(`lag passed ${ABORT_LAG_S} s of events: stopped after ${fmt(pub.durationS, 0)} s`);
  else if (pub.sent < MIN_SENT_SHARE * scheduled) {
    r.why.push(`the publisher sent ${pub.sent} of ${scheduled} (it was ${pub.maxBehindMs} ms behind)`);
  }
  if (lateLag > LAG_BOUND_S * rate) {
    r.why.push(`lag up to ${lateLag} in the second half (> ${LAG_BOUND_S} s of events)`);
  }
  if (!aborted && resultRate < MIN_RESULT_SHARE * rate) r.why.push(`${fmt(resultRate, 0)} results/s`);
  if (pub.errors > 0) r.why.push(`${pub.errors} publishes failed (${pub.firstError})`);
  if (!exactlyOnce(r.check)) r.why.push(`not one result per event: ${describeCheck(r.check)}`);
  r.sustained = r.why.length === 0;
  return r;
}

const describeCheck = (c: Check) =>
  `${c.results} results for ${c.expected} events, ${c.duplicates} duplicates, ${c.missing} missing, ` +
  `${c.wrong} wrong predictions, ${c.deadLetters} dead letters`;

const describeCores = (c: Record<CpuGroup, number>) =>
  CPU_GROUPS.map((g) => `${g} ${fmt(c[g], 2)}`).join(", ");

function describeStep(r: StepResult): string {
  const head = `${r.kind} ${r.rate}/s: sent ${r.pub.sent} in ${fmt(r.pub.durationS, 1)} s (behind ≤ ${r.pub.maxBehindMs} ms), `;
  const cpu = `cores: ${describeCores(r.cores)}`;
  if (r.kind === "probe") return `${head}${fmt(r.resultRate, 0)} results/s; ${cpu}`;
  const c = r.check!;
  return (
    `${head}${fmt(r.resultRate, 0)} results/s, lag at end ${r.lagEnd} (second half ≤ ${r.lateLag}, max ${r.maxLag}); ${describeCheck(c)}; ` +
    `latency p50 ${fmt(c.p50Ms, 1)} ms, p99 ${fmt(c.p99Ms, 1)} ms; ${cpu} → ` +
    (r.sustained ? "sustained" : `not sustained: ${r.why.join("; ")}`)
  );
}

/** Probe, step search, half-load run: see the header. */
async function measureCell(env: Env, cell: Running, result: CellResult): Promise<void> {
  const { timing, log } = env;
  const say = (r: StepResult) => log(`${cell.spec.label}: ${describeStep(r)}`);
  const probe = await runStep(env, cell, "probe", timing.probeRate, timing.probeS);
  say(probe);
  result.probe = probe;
  const from = timing.fixedRate ?? probe.resultRate;
  let i = Math.max(
    0,
    LADDER.findLastIndex((rate) => rate <= from),
  );
  let direction = 0;
  for (let k = 0; k < timing.maxSteps; k++) {
    const r = await runStep(env, cell, "step", LADDER[i]!, timing.stepS);
    say(r);
    result.steps.push(r);
    if (r.sustained) {
      result.best = r;
      if (direction < 0 || i + 1 >= LADDER.length) break;
      direction = 1;
      i++;
    } else {
      if (direction > 0 || i === 0) break;
      direction = -1;
      i--;
    }
  }
  if (result.best) {
    result.half = await runStep(env, cell, "half", result.best.rate / 2, timing.halfS);
    say(result.half);
  }
}

/** What the scorer's work costs in this process on this machine, per event: the floor under its CPU. */
async function inProcessCosts(modelFile: string): Promise<string> {
  const session = await ort.InferenceSession.create(modelFile, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const [input] = session.inputNames;
  const body = eventEncoder("cost")(1, Date.now());
  const parse = await opsPerSecond(() => JSON.parse(body), 300);
  const result = {
    id: "cost-1",
    prediction: 0.5,
    model: { name: "bench-lr", version: 1 },
    event_time: Date.now(),
    source: { stream: "BENCH_IN", seq: 123_456 },
  };
  const stringify = await opsPerSecond(() => JSON.stringify(result), 300);
  const runUs = async (rows: number) => {
    const feeds = {
      [input!]: new ort.Tensor("float32", new Float32Array(rows * FEATURES.length), [rows, 30]),
    };
    for (let k = 0; k < 50; k++) await session.run(feeds);
    const n = rows === 1 ? 5_000 : 500;
    const t0 = performance.now();
    for (let k = 0; k < n; k++) await session.run(feeds);
    return ((performance.now() - t0) * 1000) / n / rows;
  };
  const one = await runUs(1);
  const batch = await runUs(STREAM_DEFAULTS.batch);
  await session.release();
  return (
    `In this process, per event: JSON.parse of an event ${fmt(parse.perOpUs, 2)} µs, JSON.stringify of a result ` +
    `${fmt(stringify.perOpUs, 2)} µs, LR session.run ${fmt(one, 1)} µs for one row alone, ${fmt(batch, 2)} µs per ` +
    `row in a batch of ${STREAM_DEFAULTS.batch} (ORT 1 thread).`
  );
}

/** The probe, the steps and the half-load run of a contender, in order. */
const runsOf = (r: CellResult) => [...(r.probe ? [r.probe] : []), ...r.steps, ...(r.half ? [r.half] : [])];

const k = (rate: number) => `${rate >= 1000 ? `${rate / 1000}k` : rate}`;

function tableRow(r: CellResult, baseline: CellResult | undefined): Record<string, Cell> {
  const checks = runsOf(r).flatMap((s) => (s.check ? [s.check] : []));
  const events = checks.reduce((a, c) => a + c.expected, 0);
  const unique = checks.reduce((a, c) => a + c.expected - c.missing, 0);
  const dups = checks.reduce((a, c) => a + c.duplicates, 0);
  const wrong = checks.reduce((a, c) => a + c.wrong, 0);
  const once = checks.length > 0 && checks.every(exactlyOnce);
  const ratio = r.best && baseline?.best ? r.best.rate / baseline.best.rate : Number.NaN;
  const p99 = r.half?.check?.p99Ms ?? Number.NaN;
  const targets = r.spec.targets
    ? [
        `>=${k(TARGET_RATE)}/s ${(r.best?.rate ?? 0) >= TARGET_RATE ? "met" : "MISSED"}` +
          ((r.best?.rate ?? 0) >= STRETCH_RATE ? ` (stretch ${k(STRETCH_RATE)} met)` : ""),
        `p99<=${TARGET_P99_MS} ${p99 <= TARGET_P99_MS ? "met" : "MISSED"}`,
        `>=${TARGET_RATIO}x ${ratio >= TARGET_RATIO ? "met" : "MISSED"}`,
      ].join(", ")
    : "-";
  return {
    cell: r.spec.label,
    "sustained ev/s": r.best ? r.best.rate : r.error ? "error" : `< ${LADDER[0]}`,
    "peak results/s": fmt(Math.max(...runsOf(r).map((s) => s.resultRate)), 0),
    steps: r.steps.map((s) => `${k(s.rate)} ${s.sustained ? "ok" : "no"}`).join(", "),
    "half-load ev/s": r.half ? r.half.rate : "-",
    "p50 ms": fmt(r.half?.check?.p50Ms ?? Number.NaN, 1),
    "p99 ms": fmt(p99, 1),
    "vs baseline": Number.isFinite(ratio) ? `${fmt(ratio, 2)}x` : "-",
    "one result per event": checks.length
      ? `${once ? "pass" : "FAIL"} ${unique}/${events}, ${dups} dup${wrong ? `, ${wrong} wrong` : ""}`
      : "-",
    "cores at best (nats/scorer/publisher/up/other)": r.best
      ? (["nats", "scorer", "publisher", "up", "other"] as const)
          .map((g) => fmt(r.best!.cores[g], 2))
          .join(" / ")
      : "-",
    targets,
    status: r.error ? `FAILED: ${r.error.split("\n")[0]!.slice(0, 120)}` : "ok",
  };
}

export const streamBench: Bench = {
  name: "stream",
  description:
    "JetStream events (30 numeric fields) scored by LR into a sink stream: highest sustained rate with exactly " +
    "one result per event, latency at half that rate",
  baseline:
    "(1) a hand-written loop: fetch one message from a durable pull consumer, ORT session.run, publish the result " +
    "with a msg id, double ack (bench/baseline/stream-loop.ts)",
  async run({ smoke, log }) {
    const timing = smoke ? SMOKE : FULL;
    const cells = CELLS.filter((c) => !smoke || c.smoke);
    const lr = MODELS.find((m) => m.key === "LR")!;
    const dir = mkdtempSync(path.join(os.tmpdir(), "sy-bench-stream-"));
    const modelFile = path.join(dir, `${lr.name}.onnx`);
    writeFileSync(modelFile, lr.bytes());
    const reference = lr.reference(eventPool()).map((y) => y[0]!);
    const results: CellResult[] = [];
    const notes: string[] = [];
    const sy = await startSwitchyard(log, { nodeThreads: NODE_THREADS });
    let nc: NatsConnection | undefined;
    let quietLeftMs = timing.quietBudgetS * 1000;
    try {
      nc = await connectNats({ servers: sy.file.natsUrl, name: "switchyard-bench-stream" }).catch((err) => {
        throw new Error(`connecting to ${redact(sy.file.natsUrl)}: ${(err as Error).message}`);
      });
      const version = await registerModel(sy, lr.name, modelFile);
      const env: Env = {
        sy,
        nc,
        js: jetstream(nc),
        jsm: await jetstreamManager(nc),
        names: clusterNames(sy.file.cluster),
        modelFile,
        modelUri: `models:/${lr.name}/${version}`,
        reference,
        timing,
        quietBudgetMs: timing.quietBudgetS * 1000,
        log,
      };
      for (const spec of cells) {
        const result: CellResult = { spec, steps: [] };
        results.push(result);
        const t0 = performance.now();
        try {
          const cell = await startCell(env, spec);
          log(`${spec.label}: ready (scoring pids ${cell.scorers.join(", ")})`);
          try {
            await measureCell(env, cell, result);
          } finally {
            await cell.stop();
          }
        } catch (err) {
          result.error = (err as Error).message ?? String(err);
          log(`${spec.label}: FAILED: ${(err as Error).stack ?? err}`);
        }
        log(`${spec.label}: ${fmt((performance.now() - t0) / 1000, 0)} s`);
      }
      quietLeftMs = Math.max(0, env.quietBudgetMs);
      notes.push(await inProcessCosts(modelFile));
    } finally {
      await nc?.close();
      await sy.stop();
      rmSync(dir, { recursive: true, force: true });
    }

    const baseline = results.find((r) => !r.spec.job);
    for (const r of results) {
      for (const s of runsOf(r)) notes.push(`${r.spec.label}: ${describeStep(s)}`);
    }
    const measured = results.flatMap(runsOf);
    const disturbed = measured.filter((m) => m.cores.other > NOISY_CORES);
    if (disturbed.length) {
      notes.push(
        `DISTURBED: in ${disturbed.length} of ${measured.length} steps other processes used more than ${NOISY_CORES} ` +
          "cores ('other' of each step): those figures are not clean; rerun on a quiet machine.",
      );
    }
    notes.push(
      `Sustained: the publisher kept its schedule (>= ${MIN_SENT_SHARE * 100}% sent), at most ${LAG_BOUND_S} s of ` +
        "events unacked (consumer num_pending + num_ack_pending, sampled each second) over the second half of the step " +
        `and at its end, results over the step >= ` +
        `${MIN_RESULT_SHARE * 100}% of the offered rate, and after draining every event exactly one result in the sink ` +
        `with the reference prediction (±${TOLERANCE}), no dead letters. A step whose lag passes ${ABORT_LAG_S} s of ` +
        "events is stopped early (failed).",
      "Search: a probe offering more than anything takes gives a result rate; steps start at the highest ladder rate " +
        "at or below it, go up while sustained (down while not) and stop at the first change. Latency at half the best " +
        "rate: event sent_ms (publisher, just before publish) → the result's timestamp in the sink stream. 'peak " +
        "results/s': the highest result rate of any run (at a rate not sustained, about the contender's capacity); " +
        "'vs baseline' compares sustained ladder rates, so it is as coarse as the ladder.",
      "Cores: CPU seconds / wall seconds while publishing, from /proc (utime+stime): nats-server; the scoring " +
        "processes (scorers, or the baseline loop); the publisher (its own report); `up` (coordinator, node agent, " +
        "bridge in one process); other = machine busy time minus all of these (unrelated load).",
    );
    if (results.some((r) => r.error)) {
      throw new Error(
        `stream: ${results
          .filter((r) => r.error)
          .map((r) => `${r.spec.label}: ${r.error}`)
          .join("\n")}`,
      );
    }
    return {
      config: {
        cluster: `switchyard up --node-threads ${NODE_THREADS}: one coordinator, one node agent`,
        storage: "file (every source and sink stream); nats-server sync_interval default (not always)",
        model: `LR of the realtime bench: ${lr.features} inputs, sigmoid, ONNX; ORT 1 intra-op thread per scorer`,
        events: `{"${KEY_FIELD}": "<prefix>-<n>", "${SENT_FIELD}": <epoch ms>, ${FEATURES[0]}…${FEATURES.at(-1)}: 5-decimal numbers} (~${eventEncoder("p")(0, Date.now()).length} bytes JSON)`,
        job: {
          batch: STREAM_DEFAULTS.batch,
          max_wait_ms: STREAM_DEFAULTS.max_wait_ms,
          ack_wait_ms: STREAM_DEFAULTS.ack_wait_ms,
          max_ack_pending: STREAM_DEFAULTS.max_ack_pending,
          key: KEY_FIELD,
          event_time: SENT_FIELD,
          sink_duplicate_window_s: requiredDuplicateWindowMs(STREAM_DEFAULTS.ack_wait_ms) / 1000,
        },
        cells: cells.map((c) => c.label),
        ladder: LADDER,
        probe: { offered: timing.probeRate, seconds: timing.probeS },
        ...(timing.fixedRate === undefined ? {} : { fixedStepRate: timing.fixedRate }),
        stepSeconds: timing.stepS,
        halfLoadSeconds: timing.halfS,
        quietWaitS: {
          budget: timing.quietBudgetS,
          used: Math.round(timing.quietBudgetS - quietLeftMs / 1000),
        },
        maxStepsPerCell: timing.maxSteps,
        publisher: `own process, JetStream publish acks pipelined, <= ${MAX_OUTSTANDING} outstanding, 1 ms schedule`,
        node: process.version,
        cpus: os.availableParallelism(),
        cpu: os.cpus()[0]?.model,
      },
      columns: [
        "cell",
        "sustained ev/s",
        "peak results/s",
        "steps",
        "half-load ev/s",
        "p50 ms",
        "p99 ms",
        "vs baseline",
        "one result per event",
        "cores at best (nats/scorer/publisher/up/other)",
        "targets",
        "status",
      ],
      rows: results.map((r) => tableRow(r, baseline)),
      notes,
    };
  },
};
