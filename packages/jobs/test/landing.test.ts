// The landing-directory loader against a real nats-server and real files: files that appear are published one
// message per row with their headers, names still being written are left alone until renamed, each content is
// loaded once (a copy under another name is skipped), a file taken over from a dead or stopped scorer goes on
// from the row after the last one on its subject (rows published before without a message id would show up
// twice otherwise), an unparseable file is marked FAILED once, and two loaders share a directory.
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { LandingFile, LandingLoader, type LandingLoaderOptions } from "@switchyard/jobs";
import { connectNats, openBucket, readAll, readValue } from "@switchyard/nats";
import {
  type ClusterNames,
  clusterNames,
  LANDING_HEADERS,
  type StreamJob,
  streamKeys,
} from "@switchyard/protocol";
import { eventually } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

let nc: NatsConnection;
let jsm: JetStreamManager;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "landing-test" });
  jsm = await jetstreamManager(nc);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await nc?.close();
});

interface Fixture {
  names: ClusterNames;
  jobs: KV;
  job: StreamJob;
  dir: string;
  logs: Array<Record<string, unknown>>;
  loader(owner: string, extra?: Partial<LandingLoaderOptions>): LandingLoader;
}

/**
 * A fresh cluster with its landing stream, a landing directory and a job record. The stream's duplicate window
 * is 100 ms (the coordinator's is 120 s): a row the loader published twice would be stored twice and counted.
 */
async function fixture(): Promise<Fixture> {
  const names = clusterNames(`t${randomBytes(5).toString("hex")}`);
  const jobs = await openBucket(nc, names, "jobs");
  await jsm.streams.add({
    name: names.streams.landing,
    subjects: [names.subjects.allLanding],
    duplicate_window: 100_000_000,
  });
  const dir = await mkdtemp(join(tmpdir(), "landing-"));
  cleanups.push(() => jsm.streams.delete(names.streams.landing));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const now = Date.now();
  const job: StreamJob = {
    name: "fraud",
    kind: "stream",
    request: { name: "fraud", source_dir: dir },
    source: {
      stream: names.streams.landing,
      subject: names.subjects.landingOf("fraud"),
      consumer: names.streamConsumer("fraud"),
    },
    sink: { kind: "subject", subject: `${names.cluster}.scored`, stream: `${names.cluster}_scored` },
    ack_wait_ms: 30_000,
    state: "RUNNING",
    message: "",
    created_at: now,
    updated_at: now,
  };
  const logs: Array<Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (line: string) => logs.push(JSON.parse(line)) });
  return {
    names,
    jobs,
    job,
    dir,
    logs,
    loader(owner, extra = {}) {
      const loader = new LandingLoader({
        nc,
        names,
        jobs,
        job,
        dir,
        owner,
        log,
        quietMs: 300,
        pollMs: 50,
        ...extra,
      });
      cleanups.push(() => loader.stop());
      return loader;
    },
  };
}

const digestOf = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex")
    .slice(0, 32);

async function entry(f: Fixture, digest: string): Promise<LandingFile | undefined> {
  return (await readValue(f.jobs, streamKeys.file(f.job.name, digest), LandingFile, "entry"))?.value;
}

async function loaded(f: Fixture, digest: string): Promise<LandingFile> {
  return eventually(async () => {
    const e = await entry(f, digest);
    return e?.state === "LOADED" ? e : undefined;
  }, `file ${digest} LOADED`);
}

interface Row {
  body: unknown;
  file: string;
  digest: string;
  row: number;
  msgId: string;
}

/** Every message on a file's subject, in stream order. */
async function rowsOf(f: Fixture, digest: string): Promise<Row[]> {
  const subject = f.names.subjects.landing(f.job.name, digest);
  const info = await jsm.streams.info(f.names.streams.landing, { subjects_filter: subject });
  const count = info.state.subjects?.[subject] ?? 0;
  if (count === 0) return [];
  const consumer = await jetstream(nc).consumers.get(f.names.streams.landing, { filter_subjects: [subject] });
  const rows: Row[] = [];
  const messages = await consumer.consume({ max_messages: 5_000 });
  for await (const m of messages) {
    rows.push({
      body: m.json(),
      file: m.headers!.get(LANDING_HEADERS.file),
      digest: m.headers!.get(LANDING_HEADERS.digest),
      row: Number(m.headers!.get(LANDING_HEADERS.row)),
      msgId: m.headers!.get("Nats-Msg-Id"),
    });
    if (rows.length === count) break;
  }
  return rows;
}

/** Asserts the subject holds rows 1..n exactly once each, in order, with the bodies `expected(row)`. */
async function expectRows(
  f: Fixture,
  digest: string,
  path: string,
  n: number,
  expected: (row: number) => unknown,
) {
  const rows = await rowsOf(f, digest);
  expect(rows.length).toBe(n);
  rows.forEach((r, i) => {
    expect(r.row).toBe(i + 1);
    expect(r.digest).toBe(digest);
    expect(r.file).toBe(path);
    expect(r.body).toEqual(expected(i + 1));
  });
}

const csvRow = (row: number) => ({ id: row, amount: row * 0.5, name: row % 3 === 0 ? null : `n${row}` });
const csvOf = (n: number, first = 1) => {
  let text = first === 1 ? "id,amount,name\n" : "";
  for (let r = first; r <= n; r++) {
    const { id, amount, name } = csvRow(r);
    text += `${id},${amount},${name ?? ""}\n`;
  }
  return text;
};
const jsonRow = (row: number) => ({ card: `c${row}`, ts: 1_700_000_000_000 + row, v: row % 2 ? 1.25 : null });

async function writeParquet(path: string, n: number): Promise<void> {
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    await c.run(
      `COPY (SELECT i AS k, i * 2.0 AS twice, 'p' || i AS label FROM range(1, ${n + 1}) t(i) ORDER BY i)
       TO '${path}' (FORMAT parquet, ROW_GROUP_SIZE 100)`,
    );
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

describe("LandingLoader", () => {
  it("loads CSV, JSONL and Parquet files as they appear: one message per row, in file order, with headers", async () => {
    const f = await fixture();
    f.loader("s1").start();
    const csv = join(f.dir, "a.csv");
    await writeFile(csv, csvOf(40));
    const jsonl = join(f.dir, "b.ndjson");
    await writeFile(
      jsonl,
      `${Array.from({ length: 25 }, (_, i) => JSON.stringify(jsonRow(i + 1))).join("\n")}\n`,
    );
    const parquet = join(f.dir, "c.parquet");
    await writeParquet(parquet, 250);
    await writeFile(join(f.dir, "notes.txt"), "not data");

    const [dc, dj, dp] = await Promise.all([digestOf(csv), digestOf(jsonl), digestOf(parquet)]);
    expect(await loaded(f, dc)).toMatchObject({ path: csv, rows: 40, rows_published: 40, owner: "s1" });
    expect((await loaded(f, dj)).rows).toBe(25);
    expect((await loaded(f, dp)).rows).toBe(250);
    await expectRows(f, dc, csv, 40, csvRow);
    await expectRows(f, dj, jsonl, 25, jsonRow);
    await expectRows(f, dp, parquet, 250, (r) => ({ k: r, twice: r * 2, label: `p${r}` }));
    const ids = (await rowsOf(f, dc)).map((r) => r.msgId);
    expect(ids.slice(0, 2)).toEqual([`fraud:${dc}:1`, `fraud:${dc}:2`]);

    const entries = await readAll(f.jobs, streamKeys.filesOf(f.job.name), LandingFile, "entry");
    expect(entries.length).toBe(3);
    const warnings = f.logs.filter((l) => l.file === "notes.txt");
    expect(warnings.length).toBe(1);
    expect(warnings[0]!.msg).toMatch(/expected a \.csv, \.jsonl/);
  });

  it("leaves names still being written alone until they are renamed into place", async () => {
    const f = await fixture();
    f.loader("s1").start();
    const staged = ["big.csv.tmp", "_staging.csv", ".hidden.csv", "x.csv.partial", "y.csv._COPYING_"];
    for (const name of staged) await writeFile(join(f.dir, name), csvOf(10));
    const sentinel = join(f.dir, "sentinel.jsonl");
    await writeFile(sentinel, `${JSON.stringify(jsonRow(1))}\n`);
    // The sentinel was written after the staged names; once it is loaded they had as long to be picked up.
    await loaded(f, await digestOf(sentinel));
    expect((await readAll(f.jobs, streamKeys.filesOf(f.job.name), LandingFile, "entry")).length).toBe(1);

    const big = join(f.dir, "big.csv");
    await rename(join(f.dir, "big.csv.tmp"), big);
    const d = await digestOf(big);
    expect((await loaded(f, d)).rows).toBe(10);
    await expectRows(f, d, big, 10, csvRow);
  });

  it("skips the same content under a second name, and loads a rewritten file as new content", async () => {
    const f = await fixture();
    f.loader("s1").start();
    const a = join(f.dir, "a.csv");
    await writeFile(a, csvOf(12));
    const d = await digestOf(a);
    await loaded(f, d);
    await writeFile(join(f.dir, "a-copy.csv"), csvOf(12));
    await eventually(
      () => f.logs.find((l) => l.msg === "landing file skipped: the same content was already loaded"),
      "the copy skipped",
    );
    await expectRows(f, d, a, 12, csvRow);

    await writeFile(a, csvOf(15));
    const d2 = await digestOf(a);
    expect((await loaded(f, d2)).rows).toBe(15);
    await expectRows(f, d2, a, 15, csvRow);
    expect((await readAll(f.jobs, streamKeys.filesOf(f.job.name), LandingFile, "entry")).length).toBe(2);
  });

  it("takes over a dead scorer's file after the subject's last row; leaves a live scorer's file alone", async () => {
    const f = await fixture();
    let clock = Date.now();
    const dead = join(f.dir, "dead.csv");
    const alive = join(f.dir, "alive.csv");
    await writeFile(dead, csvOf(500));
    await writeFile(alive, csvOf(30));
    const [dd, da] = await Promise.all([digestOf(dead), digestOf(alive)]);
    const claim = (path: string, digest: string, owner: string, at: number, published: number) =>
      f.jobs.create(
        streamKeys.file(f.job.name, digest),
        JSON.stringify({ path, digest, state: "LOADING", owner, rows_published: published, updated_at: at }),
      );
    // The dead scorer got 137 rows onto the subject, its last progress note said 100. Published here without a
    // message id, so a loader that published any of them again would leave two of that row.
    await claim(dead, dd, "dead", clock - 60_000, 100);
    await claim(alive, da, "alive", clock, 0);
    const js = jetstream(nc);
    for (let row = 1; row <= 137; row++) {
      const h = natsHeaders();
      h.set(LANDING_HEADERS.file, dead);
      h.set(LANDING_HEADERS.digest, dd);
      h.set(LANDING_HEADERS.row, String(row));
      await js.publish(f.names.subjects.landing(f.job.name, dd), JSON.stringify(csvRow(row)), { headers: h });
    }

    f.loader("s2", { now: () => clock }).start();
    expect(await loaded(f, dd)).toMatchObject({ path: dead, owner: "s2", rows: 500, rows_published: 500 });
    await expectRows(f, dd, dead, 500, csvRow);
    expect(await entry(f, da)).toMatchObject({ state: "LOADING", owner: "alive" });
    expect(await rowsOf(f, da)).toEqual([]);

    // The live scorer stops renewing: 30 s later its file is taken over too.
    clock += 31_000;
    expect(await loaded(f, da)).toMatchObject({ owner: "s2", rows: 30 });
    await expectRows(f, da, alive, 30, csvRow);
  });

  it("a loader stopped mid-file lets it go, and another goes on from the next row: every row once", async () => {
    const f = await fixture();
    const n = 30_000;
    const big = join(f.dir, "big.csv");
    await writeFile(big, csvOf(n));
    const d = await digestOf(big);
    const first = f.loader("s1");
    first.start();
    const subject = f.names.subjects.landing(f.job.name, d);
    const onSubject = async () =>
      (await jsm.streams.info(f.names.streams.landing, { subjects_filter: subject })).state.subjects?.[
        subject
      ] ?? 0;
    await eventually(async () => ((await onSubject()) > 0 ? true : undefined), "rows published");
    await first.stop();
    const let_go = await entry(f, d);
    expect(let_go).toMatchObject({ state: "LOADING", owner: null });
    expect(let_go!.rows_published).toBe(await onSubject());
    expect(let_go!.rows_published).toBeLessThan(n);

    f.loader("s2").start();
    expect(await loaded(f, d)).toMatchObject({ owner: "s2", rows: n });
    const rows = await rowsOf(f, d);
    expect(rows.length).toBe(n);
    expect(rows.every((r, i) => r.row === i + 1)).toBe(true);
    expect(rows[n - 1]!.body).toEqual(csvRow(n));
  });

  it("renews its claim while loading, and stops loading a file another scorer took over", async () => {
    const f = await fixture();
    const big = join(f.dir, "big.csv");
    await writeFile(big, csvOf(100_000));
    const d = await digestOf(big);
    f.loader("s1").start();
    const key = streamKeys.file(f.job.name, d);
    // A renewal records progress: rows_published moves while the file is LOADING.
    const renewed = await eventually(async () => {
      const e = await readValue(f.jobs, key, LandingFile, "entry");
      return e?.value.state === "LOADING" && e.value.rows_published > 0 ? e : undefined;
    }, "a renewal with progress");
    const thief = { ...renewed.value, owner: "thief", updated_at: Date.now() };
    await f.jobs.update(key, JSON.stringify(thief), renewed.revision);
    await eventually(
      () =>
        f.logs.find((l) => l.msg === "landing file taken over by another scorer; this one stops loading it"),
      "the loader letting go",
    );
    expect(await entry(f, d)).toEqual(thief);
  });

  it("marks a file it cannot parse FAILED with the reason, once, and goes on with the others", async () => {
    const f = await fixture();
    f.loader("s1").start();
    const bad = join(f.dir, "bad.jsonl");
    await writeFile(bad, `${JSON.stringify(jsonRow(1))}\n{"card": "c2", oops\n`);
    const d = await digestOf(bad);
    const failed = await eventually(async () => {
      const e = await readValue(f.jobs, streamKeys.file(f.job.name, d), LandingFile, "entry");
      return e?.value.state === "FAILED" ? e : undefined;
    }, "FAILED");
    expect(failed.value.reason).toMatch(/Malformed JSON/);
    expect(await rowsOf(f, d)).toEqual([]);

    const good = join(f.dir, "good.jsonl");
    await writeFile(good, `${JSON.stringify(jsonRow(7))}\n`);
    await loaded(f, await digestOf(good));
    const after = await readValue(f.jobs, streamKeys.file(f.job.name, d), LandingFile, "entry");
    expect(after!.revision).toBe(failed.revision);
    expect(f.logs.filter((l) => l.msg === "landing file cannot be read; marked FAILED").length).toBe(1);
  });

  it("two loaders on one directory load every file once", async () => {
    const f = await fixture();
    f.loader("s1").start();
    f.loader("s2").start();
    const files = Array.from({ length: 6 }, (_, i) => join(f.dir, `part-${i}.csv`));
    // Different sizes, so that every file has its own content.
    await Promise.all(files.map((p, i) => writeFile(p, csvOf(200 + i))));
    for (const [i, p] of files.entries()) {
      const d = await digestOf(p);
      expect((await loaded(f, d)).rows).toBe(200 + i);
      await expectRows(f, d, p, 200 + i, csvRow);
    }
    const owners = new Set(
      (await readAll(f.jobs, streamKeys.filesOf(f.job.name), LandingFile, "entry")).map((e) => e.value.owner),
    );
    expect([...owners].every((o) => o === "s1" || o === "s2")).toBe(true);
  });

  it("refuses bad options naming them", () => {
    const base = {
      nc,
      names: clusterNames("x"),
      jobs: {} as KV,
      dir: "/",
      owner: "s",
      log: pino({ level: "silent" }),
    };
    const job = {} as StreamJob;
    expect(() => new LandingLoader({ ...base, job, quietMs: 0 })).toThrow(
      "options.quietMs must be a positive integer, got 0",
    );
    expect(() => new LandingLoader({ ...base, job, pollMs: 1.5 })).toThrow(
      "options.pollMs must be a positive integer, got 1.5",
    );
  });
});
