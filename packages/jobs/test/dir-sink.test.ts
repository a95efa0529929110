// The directory sink against a real nats-server and a real directory: committed outcomes land in numbered parts
// (results, dead letters and late events apart) with exact ledger counts; a redelivered input is never written
// twice, by the same scorer or by two scorers racing; the ack floor compacts the ledger; a commit that crashed
// between its ledger write and its renames is rolled forward at open, and only the opener's orphans are
// removed; Parquet parts are read back with DuckDB.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { DirSink, SinkLedger } from "@switchyard/jobs";
import { connectNats, openBucket, readValue } from "@switchyard/nats";
import { clusterNames, type StreamJob, streamKeys } from "@switchyard/protocol";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import type { Outcome, OutcomeKind } from "../src/stream/sink.js";

let nc: NatsConnection;
const dirs: string[] = [];
const log = pino({ level: "silent" });

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "dir-sink-test" });
});
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
afterAll(async () => {
  await nc?.close();
});

async function fixture(
  format: "jsonl" | "parquet" = "jsonl",
): Promise<{ jobs: KV; job: StreamJob; dir: string }> {
  const names = clusterNames(`t${randomBytes(5).toString("hex")}`);
  const jobs = await openBucket(nc, names, "jobs");
  const dir = await mkdtemp(join(tmpdir(), "dir-sink-"));
  dirs.push(dir);
  const now = Date.now();
  const job: StreamJob = {
    name: "scored",
    kind: "stream",
    request: { name: "scored" },
    source: { stream: "EVENTS", subject: "events.>", consumer: names.streamConsumer("scored") },
    sink: { kind: "dir", dir, format },
    ack_wait_ms: 30_000,
    state: "RUNNING",
    message: "",
    created_at: now,
    updated_at: now,
  };
  return { jobs, job, dir };
}

/** The outcome of input `seq` from stream EVENTS: a result by default. */
function outcome(seq: number, kind: OutcomeKind = "result"): Outcome {
  const source = { stream: "EVENTS", seq };
  const body =
    kind === "dlq"
      ? { reason: `field "amount": expected a number`, payload: `{"seq":${seq}}`, source }
      : {
          card: `c${seq}`,
          prediction: seq / 4,
          model: { name: "fraud", version: 2 },
          event_time: 1000 + seq,
          source,
        };
  return { input: { seq, msgId: `scored:EVENTS:${seq}`, source, publishedMs: 0 }, kind, body };
}

const lines = async (path: string) =>
  (await readFile(path, "utf8"))
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l));

async function ledger(jobs: KV, job: StreamJob): Promise<SinkLedger> {
  return (await readValue(jobs, streamKeys.sinkLedger(job.name), SinkLedger, "ledger"))!.value;
}

/** Every result line in every JSONL part, in part order. */
async function allResults(dir: string): Promise<Array<{ source: { seq: number } }>> {
  const parts = (await readdir(dir)).filter((n) => n.startsWith("part-")).sort();
  return (await Promise.all(parts.map((p) => lines(join(dir, p))))).flat();
}

describe("DirSink", () => {
  it("commits results, dead letters and late events as numbered parts with exact counts", async () => {
    const { jobs, job, dir } = await fixture();
    const sink = await DirSink.open({ jobs, job, owner: "node1-scored-0", log });
    expect(sink.acksOnWrite).toBe(false);
    await sink.write([outcome(1), outcome(2, "dlq"), outcome(3)]);
    await sink.write([outcome(4, "late"), outcome(5)]);
    expect(sink.holds(1)).toBe(false);
    await sink.commit(0);

    expect(await lines(join(dir, "part-000001.jsonl"))).toEqual([
      outcome(1).body,
      outcome(3).body,
      outcome(5).body,
    ]);
    expect(await lines(join(dir, "_dlq", "part-000001.jsonl"))).toEqual([outcome(2, "dlq").body]);
    expect(await lines(join(dir, "_late", "part-000001.jsonl"))).toEqual([outcome(4, "late").body]);
    expect(await readdir(join(dir, "_tmp"))).toEqual([]);
    expect(await ledger(jobs, job)).toMatchObject({
      floor: 0,
      applied: [1, 2, 3, 4, 5],
      next_part: 2,
      rows: 3,
      dlq: 1,
      late: 1,
      pending: [],
    });
    expect([1, 2, 3, 4, 5].every((s) => sink.holds(s))).toBe(true);
    expect(sink.holds(6)).toBe(false);

    // Nothing buffered: no part, and no ledger write until the ack floor empties part of `applied`.
    await sink.commit(0);
    expect((await readdir(dir)).filter((n) => n.startsWith("part-"))).toEqual(["part-000001.jsonl"]);

    // A second batch goes to part 2, results only: no dead-letter or late file for it.
    await sink.write([outcome(6), outcome(7)]);
    await sink.commit(5);
    expect(await lines(join(dir, "part-000002.jsonl"))).toEqual([outcome(6).body, outcome(7).body]);
    expect(await readdir(join(dir, "_dlq"))).toEqual(["part-000001.jsonl"]);
    expect(await ledger(jobs, job)).toMatchObject({
      floor: 5,
      applied: [6, 7],
      next_part: 3,
      rows: 5,
      dlq: 1,
      late: 1,
    });
    expect(sink.holds(3)).toBe(true);
  });

  it("never writes a redelivered input twice, and the ack floor compacts the ledger", async () => {
    const { jobs, job, dir } = await fixture();
    const sink = await DirSink.open({ jobs, job, owner: "s1", log });
    await sink.write([outcome(1), outcome(2), outcome(2)]);
    await sink.commit(0);
    // Redelivered after the commit (the acks were lost): dropped at write.
    await sink.write([outcome(2), outcome(1), outcome(3)]);
    await sink.commit(0);
    expect((await allResults(dir)).map((r) => r.source.seq)).toEqual([1, 2, 3]);
    expect(await ledger(jobs, job)).toMatchObject({ applied: [1, 2, 3], rows: 3, next_part: 3 });

    // Everything up to 3 is acked: `applied` empties, and 1-3 are still held through the floor.
    await sink.commit(3);
    expect(await ledger(jobs, job)).toMatchObject({ floor: 3, applied: [], rows: 3, next_part: 3 });
    expect([1, 2, 3].every((s) => sink.holds(s))).toBe(true);
  });

  it("two scorers that both hold an input commit it once; each sees the other's commits", async () => {
    const { jobs, job, dir } = await fixture();
    const a = await DirSink.open({ jobs, job, owner: "a", log });
    const b = await DirSink.open({ jobs, job, owner: "b", log });
    // 10-19 reach both (redelivered to b past ack wait); a has 1-19, b has 10-29.
    await a.write(Array.from({ length: 19 }, (_, i) => outcome(i + 1)));
    await b.write(Array.from({ length: 20 }, (_, i) => outcome(i + 10)));
    await Promise.all([a.commit(0), b.commit(0)]);
    const seqs = (await allResults(dir)).map((r) => r.source.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 29 }, (_, i) => i + 1));
    expect(await ledger(jobs, job)).toMatchObject({ rows: 29, next_part: 3, pending: [] });
    expect(await readdir(join(dir, "_tmp"))).toEqual([]);
    // Each learned the other's commit at its own (the second to commit re-read the ledger).
    await Promise.all([a.commit(0), b.commit(0)]);
    expect(a.holds(29) && b.holds(1)).toBe(true);

    // Both hold the same two inputs: one part, and the loser's temp files are removed.
    await a.write([outcome(30), outcome(31)]);
    await b.write([outcome(30), outcome(31)]);
    await Promise.all([a.commit(0), b.commit(0)]);
    expect((await allResults(dir)).map((r) => r.source.seq).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 31 }, (_, i) => i + 1),
    );
    expect(await ledger(jobs, job)).toMatchObject({ rows: 31, next_part: 4, pending: [] });
    expect(await readdir(join(dir, "_tmp"))).toEqual([]);
  });

  it("rolls forward a commit that crashed between its ledger write and its renames, and removes only its own orphans", async () => {
    const { jobs, job, dir } = await fixture();
    // A first scorer committed part 1 and died before renaming; its part 2 was renamed but not cleared.
    await mkdir(join(dir, "_tmp"), { recursive: true });
    await mkdir(join(dir, "_dlq"), { recursive: true });
    const body = (seq: number) => `${JSON.stringify(outcome(seq).body)}\n`;
    await writeFile(join(dir, "_tmp", "dead.aaaaaaaaaaaa.result.jsonl"), body(1) + body(2));
    await writeFile(
      join(dir, "_tmp", "dead.aaaaaaaaaaaa.dlq.jsonl"),
      `${JSON.stringify(outcome(3, "dlq").body)}\n`,
    );
    await writeFile(join(dir, "part-000002.jsonl"), body(4));
    // Orphans: a temp of this scorer's never committed, and one of another scorer's (maybe mid-commit).
    await writeFile(join(dir, "_tmp", "s1.bbbbbbbbbbbb.result.jsonl"), body(9));
    await writeFile(join(dir, "_tmp", "s2.cccccccccccc.result.jsonl"), body(8));
    const crashed: SinkLedger = {
      floor: 0,
      applied: [1, 2, 3, 4],
      next_part: 3,
      rows: 3,
      dlq: 1,
      late: 0,
      pending: [
        { tmp: "_tmp/dead.aaaaaaaaaaaa.result.jsonl", final: "part-000001.jsonl" },
        { tmp: "_tmp/dead.aaaaaaaaaaaa.dlq.jsonl", final: "_dlq/part-000001.jsonl" },
        { tmp: "_tmp/dead.dddddddddddd.result.jsonl", final: "part-000002.jsonl" },
      ],
      updated_at: 0,
    };
    await jobs.create(streamKeys.sinkLedger(job.name), JSON.stringify(crashed));

    const sink = await DirSink.open({ jobs, job, owner: "s1", log });
    expect((await allResults(dir)).map((r) => r.source.seq)).toEqual([1, 2, 4]);
    expect(await lines(join(dir, "_dlq", "part-000001.jsonl"))).toEqual([outcome(3, "dlq").body]);
    expect(await readdir(join(dir, "_tmp"))).toEqual(["s2.cccccccccccc.result.jsonl"]);
    expect(await ledger(jobs, job)).toMatchObject({ pending: [], rows: 3, dlq: 1, next_part: 3 });

    // The inputs of the rolled-forward parts come back (never acked): held, not written again.
    expect([1, 2, 3, 4].every((s) => sink.holds(s))).toBe(true);
    await sink.write([outcome(1), outcome(3, "dlq"), outcome(5)]);
    await sink.commit(0);
    expect((await allResults(dir)).map((r) => r.source.seq)).toEqual([1, 2, 4, 5]);
    expect(await ledger(jobs, job)).toMatchObject({
      rows: 4,
      dlq: 1,
      late: 0,
      next_part: 4,
      applied: [1, 2, 3, 4, 5],
    });
  });

  it("writes Parquet parts: numbers as DOUBLE, text as VARCHAR, objects as JSON; dead letters stay JSONL", async () => {
    const { jobs, job, dir } = await fixture("parquet");
    const sink = await DirSink.open({ jobs, job, owner: "s1", log });
    await sink.write([outcome(1), outcome(2, "dlq"), outcome(3)]);
    await sink.commit(0);
    expect((await readdir(dir)).sort()).toEqual(["_dlq", "_late", "_tmp", "part-000001.parquet"]);
    expect(await lines(join(dir, "_dlq", "part-000001.jsonl"))).toEqual([outcome(2, "dlq").body]);
    const db = await DuckDBInstance.create(":memory:");
    const c = await db.connect();
    try {
      const file = `'${join(dir, "part-000001.parquet")}'`;
      const types = (await c.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${file})`)).getRowsJS();
      expect(types.map(([name, type]) => `${name}:${type}`)).toEqual([
        "card:VARCHAR",
        "prediction:DOUBLE",
        "model:JSON",
        "event_time:DOUBLE",
        "source:JSON",
      ]);
      const rows = (
        await c.runAndReadAll(
          `SELECT card, prediction, model->>'name' AS model, (source->>'seq')::INT AS seq FROM read_parquet(${file})`,
        )
      ).getRowObjectsJS();
      expect(rows).toEqual([
        { card: "c1", prediction: 0.25, model: "fraud", seq: 1 },
        { card: "c3", prediction: 0.75, model: "fraud", seq: 3 },
      ]);
    } finally {
      c.closeSync();
      db.closeSync();
    }
    expect(await ledger(jobs, job)).toMatchObject({ rows: 2, dlq: 1, late: 0 });
  });

  it("refuses a job whose sink is a subject", async () => {
    const { jobs, job } = await fixture();
    const subjectJob: StreamJob = { ...job, sink: { kind: "subject", subject: "out", stream: "OUT" } };
    await expect(DirSink.open({ jobs, job: subjectJob, owner: "s1", log })).rejects.toThrow(
      "DirSink: job 'scored' writes to a subject, not a directory",
    );
  });
});
