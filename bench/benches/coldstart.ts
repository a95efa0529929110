// Cold start of a replica (issue 10): from an assignment written to KV to the replica READY and answering, for the
// realtime bench's logistic regression (30 features). Two node agents on one nats-server, one spawning a fresh
// process per assignment (the baseline), one handing it to its warm spare; rounds alternate between them. Each
// row is one step of the start, from the replica's own start-up marks (its READY log line, relayed by its agent):
// the time from the step that finished before it to this one (steps overlap), as a median over the rounds whose
// artifact was already in the node's cache; the first round of each agent downloads the artifact into an empty
// cache and is reported on its own.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import type { KV } from "@nats-io/kv";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { NodeAgent } from "@switchyard/agent";
import { registerModel } from "@switchyard/ingest";
import { connectNats, openBucket } from "@switchyard/nats";
import { NatsServer } from "@switchyard/natsd";
import { clusterNames, H, keys, type ReplicaSpec, ReplicaStatus } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { writeTempModel } from "@switchyard/testkit";
import { pino } from "pino";
import { type Bench, type Cell, fmt } from "../types.js";
import { MODELS } from "./realtime.js";

const TOLERANCE = 1e-4;
/** Generous: a step never takes this long unless something is broken. */
const STEP_TIMEOUT_MS = 60_000;
const epochMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The replica's start-up marks, in the order they happen (see runtime/src/marks.ts and replica.ts). */
const STEPS: [mark: string, what: string][] = [
  ["process", "agent: assignment seen, STARTING written, process spawned"],
  ["imported", "node started, modules imported"],
  ["launched", "launch read (cold) / assignment handed over IPC (spare)"],
  ["connected", "NATS connected"],
  ["prepared", "cluster bucket and registry opened"],
  ["version", "model version read"],
  ["artifacts", "artifact fetched or found in the node's cache (sha256 checked)"],
  ["threads_imported", "worker threads started, worker modules imported"],
  ["model_loaded", "ORT session created"],
  ["warm", "warm-up inference on every thread"],
  ["subscribed", "subscribed (flushed)"],
  ["ready", "READY written"],
];

interface Round {
  mode: Mode;
  cached: boolean;
  /** Per step: ms after the step before it, or "ahead" when it happened before the assignment (a spare). */
  steps: Record<string, number | "ahead">;
  totalMs: number;
  firstRequestMs: number;
}

type Mode = "cold" | "spare";
const LABEL: Record<Mode, string> = { cold: "cold spawn (baseline)", spare: "warm spare" };

export const coldstartBench: Bench = {
  name: "coldstart",
  description:
    "assignment → replica READY and first answer: a fresh process per replica vs the agent's warm spare",
  baseline: "the agent spawning a fresh replica process for the assignment (warmSpare: false), same run",
  async run({ smoke, log }) {
    const cachedRounds = smoke ? 1 : 10;
    const model = MODELS.find((m) => m.key === "LR")!;
    // What placement gives the only replica of a node: the node's whole thread budget.
    const threads = os.availableParallelism();
    const server = await NatsServer.start({});
    const cluster = `cold${randomBytes(4).toString("hex")}`;
    const names = clusterNames(cluster);
    const dirs: string[] = [];
    const agents: NodeAgent[] = [];
    let nc: NatsConnection | undefined;
    try {
      nc = await connectNats({ servers: server.url, name: "bench-coldstart" });
      const registry = await Registry.open(nc, { cluster });
      const version = await registerModel(registry, "cold-lr", writeTempModel(model.bytes()));
      const kv = await openBucket(nc, names, "cluster");
      const lines = new LogLines();
      const agentFor = async (mode: Mode) => {
        const cacheDir = mkdtempSync(path.join(os.tmpdir(), `sy-bench-cold-${mode}-`));
        dirs.push(cacheDir);
        const agent = new NodeAgent({
          nats: { servers: server.url },
          cluster,
          nodeId: `node-${mode}`,
          threads,
          cacheDir,
          warmSpare: mode === "spare",
          logger: pino({ level: "info" }, lines.stream),
        });
        agents.push(agent);
        await agent.start();
        return agent;
      };
      const byMode: Record<Mode, NodeAgent> = {
        cold: await agentFor("cold"),
        spare: await agentFor("spare"),
      };
      const rows = model.reference([[...Array(model.features).keys()].map((i) => (i % 7) / 10 - 0.3)]);
      const input = [...Array(model.features).keys()].map((i) => (i % 7) / 10 - 0.3);
      const body = JSON.stringify({
        dataframe_split: { columns: input.map((_, i) => `f${i}`), data: [input] },
      });

      const results: Round[] = [];
      let n = 0;
      for (let round = 0; round <= cachedRounds; round++) {
        for (const mode of ["cold", "spare"] as Mode[]) {
          // Start from a quiet node: the spare agent's spare (re)started and waiting, no replica running.
          await until(() => byMode.spare.sparePid !== undefined, "the spare agent's warm spare to wait");
          const id = `r${++n}`;
          const spec: ReplicaSpec = {
            replica_id: id,
            endpoint: "cold",
            served_model: `cold-lr-${version.version}`,
            subject: `${names.subjects.served("cold", `cold-lr-${version.version}`)}.g${id}`,
            model_name: "cold-lr",
            model_version: version.version,
            threads,
            max_batch_size: 32,
            max_delay_us: 500,
            max_queue: 256,
            generation: `g${id}`,
          };
          const r = await oneStart(nc, kv, byMode[mode].nodeId, spec, body, lines);
          const got = (JSON.parse(r.reply) as { predictions?: unknown }).predictions;
          const flat = [got].flat(Number.POSITIVE_INFINITY) as number[];
          if (flat.length !== 1 || !(Math.abs(flat[0]! - rows[0]![0]!) <= TOLERANCE)) {
            throw new Error(`${mode}: wrong prediction ${r.reply}, expected ${rows[0]![0]} (±${TOLERANCE})`);
          }
          const result: Round = { mode, cached: round > 0, ...r.timing };
          results.push(result);
          log(
            `${LABEL[mode]} round ${round} (${result.cached ? "artifact cached" : "empty cache"}): ` +
              `assignment → READY ${fmt(result.totalMs)} ms, first request ${fmt(result.firstRequestMs, 2)} ms`,
          );
          await kv.delete(keys.assignment(byMode[mode].nodeId, id));
          await until(async () => (await kv.get(keys.replica(id)))?.operation !== "PUT", `${id} to stop`);
        }
      }
      return report(results, { threads, cachedRounds, model: model.key, features: model.features });
    } finally {
      await Promise.all(agents.map((a) => a.stop()));
      await nc?.close();
      await server.stop({ removeData: true });
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  },
};

/** Puts the assignment, waits for READY through a KV watch, sends the first request, reads the replica's marks. */
async function oneStart(
  nc: NatsConnection,
  kv: KV,
  nodeId: string,
  spec: ReplicaSpec,
  body: string,
  lines: LogLines,
): Promise<{ reply: string; timing: Omit<Round, "mode" | "cached"> }> {
  const watch = await kv.watch({ key: keys.replica(spec.replica_id) });
  const ready = (async () => {
    for await (const e of watch) {
      if (e.operation !== "PUT") continue;
      const s = ReplicaStatus.parse(e.json());
      if (s.state === "READY") return epochMs();
      if (s.state === "FAILED") throw new Error(`replica ${spec.replica_id} FAILED: ${s.message}`);
    }
    throw new Error("watch ended");
  })();
  const assigned = epochMs();
  await kv.put(keys.assignment(nodeId, spec.replica_id), JSON.stringify(spec));
  const readyAt = await withTimeout(ready, `${spec.replica_id} READY`);
  watch.stop();
  const h = natsHeaders();
  h.set(H.contentType, "application/json");
  const sent = epochMs();
  const msg = await nc.request(spec.subject, body, { timeout: STEP_TIMEOUT_MS, headers: h });
  const firstRequestMs = epochMs() - sent;
  const marks = await withTimeout(lines.readyOf(spec.replica_id), `${spec.replica_id}'s READY log line`);
  // Each step after the one that finished before it (steps overlap: a cold start's threads boot while it connects).
  const steps: Round["steps"] = {};
  const missing = STEPS.find(([mark]) => marks[mark] === undefined);
  if (missing) throw new Error(`replica ${spec.replica_id} logged no '${missing[0]}' mark`);
  let prev = assigned;
  for (const [mark, at] of STEPS.map(([m]) => [m, marks[m]!] as const).sort((a, b) => a[1] - b[1])) {
    steps[mark] = at <= assigned ? "ahead" : at - prev;
    prev = Math.max(prev, at);
  }
  return {
    reply: msg.string(),
    timing: { steps, totalMs: readyAt - assigned, firstRequestMs },
  };
}

function report(results: Round[], config: Record<string, unknown>) {
  const pick = (mode: Mode, cached: boolean) => results.filter((r) => r.mode === mode && r.cached === cached);
  const cell = (rs: Round[], f: (r: Round) => number | "ahead"): Cell => {
    const v = rs.map(f);
    if (v.length && v.every((x) => x === "ahead")) return "ahead";
    return fmt(median(v.map((x) => (x === "ahead" ? 0 : x))));
  };
  const columns = ["step", ...(["cold", "spare"] as Mode[]).map((m) => `${LABEL[m]} ms`), "what"];
  const line = (step: string, what: string, f: (r: Round) => number | "ahead", cached = true) => ({
    step,
    [`${LABEL.cold} ms`]: cell(pick("cold", cached), f),
    [`${LABEL.spare} ms`]: cell(pick("spare", cached), f),
    what,
  });
  const rows = [
    ...STEPS.map(([mark, what]) => line(mark, what, (r) => r.steps[mark]!)),
    line("TOTAL", "assignment → READY seen by a KV watcher (median, artifact cached)", (r) => r.totalMs),
    line("first_request", "first request after READY, round trip", (r) => r.firstRequestMs),
    line("TOTAL_download", "assignment → READY, empty cache (artifact downloaded)", (r) => r.totalMs, false),
  ];
  const max = (mode: Mode) => Math.max(...pick(mode, true).map((r) => r.totalMs));
  return {
    config: { ...config, rounds: "1 with an empty cache + cachedRounds per mode, alternating" },
    columns,
    rows,
    notes: [
      `slowest cached round: cold ${fmt(max("cold"))} ms, spare ${fmt(max("spare"))} ms`,
      "'ahead': done by the warm spare before the assignment existed (it is not part of the wait)",
    ],
  };
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The agents' pino lines, parsed; a replica's READY line (relayed from its stderr) carries its start-up marks. */
class LogLines {
  private readonly ready = new Map<string, Record<string, number>>();
  private readonly waiters = new Map<string, (marks: Record<string, number>) => void>();
  private partial = "";
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      const text = this.partial + chunk.toString();
      const parts = text.split("\n");
      this.partial = parts.pop()!;
      for (const p of parts) this.line(p);
      done();
    },
  });

  private line(text: string): void {
    let entry: { level?: number; msg?: string; replicaId?: string; replica?: Record<string, unknown> };
    try {
      entry = JSON.parse(text);
    } catch {
      return;
    }
    if ((entry.level ?? 0) >= 50) console.error(`  agent: ${text}`);
    const r = entry.replica;
    if (r?.event !== "ready" || typeof r.replicaId !== "string") return;
    const marks = r.startup_at as Record<string, number>;
    this.ready.set(r.replicaId, marks);
    this.waiters.get(r.replicaId)?.(marks);
  }

  readyOf(replicaId: string): Promise<Record<string, number>> {
    const have = this.ready.get(replicaId);
    if (have) return Promise.resolve(have);
    return new Promise((resolve) => this.waiters.set(replicaId, resolve));
  }
}

async function until(ok: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + STEP_TIMEOUT_MS;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
