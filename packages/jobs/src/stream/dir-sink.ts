// A directory sink: a stream job's outcomes as rolling part files in its `--sink-dir` — results in
// `part-000001.jsonl|parquet`, dead letters in `_dlq/part-000001.jsonl`, late events in `_late/…` — each input's
// outcome in exactly one part, however scorers crash or inputs are redelivered. It never deletes a part.
//
// How a part and the consumer position are committed together. The ledger in KV (`streamKeys.sinkLedger`) is
// the truth of what is written: the input sequences committed (`floor` and `applied`: every sequence ≤ floor,
// and those listed above it), the part count, the counts `stream status` shows, and `pending` renames. A commit
// (1) writes the buffered outcomes to temporary files in `_tmp/` and fsyncs them; (2) compare-and-sets the
// ledger: their sequences join `applied`, the counts and `next_part` go up, and the temp → final renames are
// listed in `pending`; (3) renames the files into place; (4) clears them from `pending`. The scorer acks the
// inputs only after the commit returns. A crash before (2) leaves the inputs unacked and absent from the ledger:
// they are redelivered and written again (the orphan temp files are removed when their scorer reopens). A crash
// after (2) leaves them in the ledger: redelivered, they are dropped (`holds`, and the compare-and-set below),
// and the next commit by any scorer — or the next open — rolls the pending renames forward (tmp present →
// rename; tmp gone and final present → already done). So an input is in one part, or in none and unacked.
//
// With several scorers, two may hold the same input (a redelivery past ack wait): the compare-and-set re-reads
// the ledger, and outcomes whose sequence another scorer committed meanwhile are dropped from this part (its
// temp files rewritten) before it is tried again. `commit(ackFloor)` also raises `floor` to the consumer's ack
// floor — everything acked was committed — so `applied` holds only what is committed and not yet acked.
//
// Parquet parts have one column per top-level field of the results, typed from the values so that every part
// agrees: all numbers → DOUBLE (JSON does not tell 1 from 1.0), all strings → VARCHAR, all booleans → BOOLEAN,
// anything else (objects such as `model` and `source`, arrays, mixed or only nulls) → JSON text.
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { KV } from "@nats-io/kv";
import { casUpdate, isCasConflict, readValue, type Stored } from "@switchyard/nats";
import { type StreamJob, SwitchyardError, streamKeys } from "@switchyard/protocol";
import type { Logger } from "pino";
import { z } from "zod";
import type { EngineOptions } from "../tables/engine.js";
import { writeJsonl, writeParquet } from "../tables/records.js";
import type { Outcome, OutcomeKind, Sink } from "./sink.js";

/** A directory sink's ledger (key `streamKeys.sinkLedger(job)`); the coordinator reads `rows`, `dlq`, `late`. */
export const SinkLedger = z
  .object({
    /** Every input sequence ≤ floor is committed (and acked). */
    floor: z.number().int().nonnegative(),
    /** Committed sequences above the floor, ascending. */
    applied: z.array(z.number().int().positive()),
    next_part: z.number().int().positive(),
    rows: z.number().int().nonnegative(),
    dlq: z.number().int().nonnegative(),
    late: z.number().int().nonnegative(),
    /** Committed parts still under their temporary names (paths relative to the sink directory). */
    pending: z.array(z.object({ tmp: z.string(), final: z.string() }).strict()),
    updated_at: z.number().int(),
  })
  .strict();
export type SinkLedger = z.infer<typeof SinkLedger>;

export interface DirSinkOptions {
  /** The cluster's jobs bucket, which holds the ledger. */
  jobs: KV;
  /** A job whose sink is a directory. */
  job: StreamJob;
  /** This scorer's id: its temporary files carry it. */
  owner: string;
  log: Logger;
  /** DuckDB's threads and memory while writing a Parquet part. */
  engine?: EngineOptions;
}

const TMP = "_tmp";
const SUBDIRS: Readonly<Record<OutcomeKind, string>> = { result: "", dlq: "_dlq", late: "_late" };
/** Compare-and-set attempts before a commit gives up (contention between scorers clears within a few). */
const CAS_ATTEMPTS = 50;

interface TempFile {
  kind: OutcomeKind;
  /** Relative to the sink directory. */
  tmp: string;
}

export class DirSink implements Sink {
  readonly acksOnWrite = false;
  readonly #o: DirSinkOptions;
  readonly #dir: string;
  readonly #format: "parquet" | "jsonl";
  readonly #key: string;
  /** The owner id as it appears in temporary file names. */
  readonly #tag: string;
  /** The committed set as of the last read of the ledger. */
  #floor = 0;
  #applied = new Set<number>();
  /** Written and not committed yet, by input sequence (one outcome per input), in write order. */
  readonly #buffer = new Map<number, Outcome>();

  private constructor(options: DirSinkOptions, dir: string, format: "parquet" | "jsonl") {
    this.#o = options;
    this.#dir = dir;
    this.#format = format;
    this.#key = streamKeys.sinkLedger(options.job.name);
    this.#tag = options.owner.replace(/[^A-Za-z0-9_-]/g, "_");
  }

  /** Opens the job's directory sink: rolls forward what a crashed scorer left pending, removes own orphans. */
  static async open(options: DirSinkOptions): Promise<DirSink> {
    const { sink } = options.job;
    if (sink.kind !== "dir") {
      throw new RangeError(`DirSink: job '${options.job.name}' writes to a subject, not a directory`);
    }
    const self = new DirSink(options, sink.dir, sink.format);
    for (const sub of [TMP, SUBDIRS.dlq, SUBDIRS.late]) await mkdir(join(sink.dir, sub), { recursive: true });
    const ledger = await self.#rollForward(await self.#read());
    await self.#removeOrphans(ledger.value);
    self.#remember(ledger.value);
    return self;
  }

  holds(seq: number): boolean {
    return seq <= this.#floor || this.#applied.has(seq);
  }

  /** Buffers the outcomes; an input already committed, or already buffered, is not taken twice. */
  async write(outcomes: Outcome[]): Promise<void> {
    for (const o of outcomes) {
      const { seq } = o.input;
      if (!this.holds(seq) && !this.#buffer.has(seq)) this.#buffer.set(seq, o);
    }
  }

  /** Commits what is buffered as one part (see the module header); resolves once the inputs may be acked. */
  async commit(ackFloor: number): Promise<void> {
    let current = await this.#rollForward(await this.#read());
    let temps: { outcomes: Outcome[]; files: TempFile[] } | undefined;
    let renames: Array<{ tmp: string; final: string }> = [];
    try {
      for (let attempt = 0; ; attempt++) {
        if (attempt === CAS_ATTEMPTS) {
          throw new SwitchyardError(
            "RESOURCE_CONFLICT",
            `the sink ledger of stream job '${this.#o.job.name}' is being changed concurrently; gave up after ${CAS_ATTEMPTS} attempts`,
          );
        }
        const ledger = current.value;
        const committed = new Set(ledger.applied);
        const mine = [...this.#buffer.values()].filter(
          (o) => o.input.seq > ledger.floor && !committed.has(o.input.seq),
        );
        const floor = Math.max(ledger.floor, ackFloor);
        let next: SinkLedger;
        if (mine.length === 0) {
          // Nothing new (or another scorer committed all of it meanwhile: the temp files are nobody's part).
          renames = [];
          if (temps) await this.#remove(temps.files);
          temps = undefined;
          // The floor is raised only when that empties part of `applied`.
          if (!ledger.applied.some((s) => s <= floor)) break;
          next = {
            ...ledger,
            floor,
            applied: ledger.applied.filter((s) => s > floor),
            updated_at: Date.now(),
          };
        } else {
          // The committed set only grows, so a shorter list is the one sign that another scorer took some.
          if (temps?.outcomes.length !== mine.length) {
            if (temps) await this.#remove(temps.files);
            temps = { outcomes: mine, files: await this.#writeTemps(mine) };
          }
          const part = ledger.next_part;
          renames = temps.files.map((f) => ({ tmp: f.tmp, final: this.#finalName(f.kind, part) }));
          const count = (kind: OutcomeKind) => mine.filter((o) => o.kind === kind).length;
          for (const o of mine) committed.add(o.input.seq);
          next = {
            floor,
            applied: [...committed].filter((s) => s > floor).sort((a, b) => a - b),
            next_part: part + 1,
            rows: ledger.rows + count("result"),
            dlq: ledger.dlq + count("dlq"),
            late: ledger.late + count("late"),
            pending: [...ledger.pending, ...renames],
            updated_at: Date.now(),
          };
        }
        try {
          const revision = await this.#o.jobs.update(this.#key, JSON.stringify(next), current.revision);
          current = { key: this.#key, value: next, revision };
          temps = undefined;
          break;
        } catch (err) {
          if (!isCasConflict(err)) throw err;
        }
        current = await this.#read();
      }
    } catch (err) {
      // Not in the ledger: the temp files are nobody's part; the buffer stays for the next commit.
      if (temps) await this.#remove(temps.files).catch(() => undefined);
      throw err;
    }
    // Committed: the inputs may be acked whatever happens to the renames (the next commit rolls them forward).
    this.#buffer.clear();
    this.#remember(current.value);
    if (renames.length > 0) {
      await this.#renameAll(renames);
      this.#remember((await this.#clearPending(renames)).value);
    }
  }

  /** Drops what is buffered: those inputs are not acked, so they are redelivered. */
  async close(): Promise<void> {
    this.#buffer.clear();
  }

  #remember(ledger: SinkLedger): void {
    this.#floor = ledger.floor;
    this.#applied = new Set(ledger.applied);
  }

  /** The ledger, created empty if this is the job's first scorer. */
  async #read(): Promise<Stored<SinkLedger>> {
    for (;;) {
      const found = await readValue(this.#o.jobs, this.#key, SinkLedger, "sink ledger");
      if (found) return found;
      const value: SinkLedger = {
        floor: 0,
        applied: [],
        next_part: 1,
        rows: 0,
        dlq: 0,
        late: 0,
        pending: [],
        updated_at: Date.now(),
      };
      try {
        return {
          key: this.#key,
          value,
          revision: await this.#o.jobs.create(this.#key, JSON.stringify(value)),
        };
      } catch (err) {
        // Another scorer created it first: read theirs.
        if (!isCasConflict(err)) throw err;
      }
    }
  }

  /** Finishes the renames a ledger lists as pending (a crashed scorer's, or one still under way), then clears them. */
  async #rollForward(ledger: Stored<SinkLedger>): Promise<Stored<SinkLedger>> {
    const { pending } = ledger.value;
    if (pending.length === 0) return ledger;
    this.#o.log.info(
      { stream: this.#o.job.name, parts: pending.map((p) => p.final) },
      "sink: rolling renames forward",
    );
    await this.#renameAll(pending);
    return this.#clearPending(pending);
  }

  async #renameAll(renames: ReadonlyArray<{ tmp: string; final: string }>): Promise<void> {
    const dirs = new Set<string>();
    for (const { tmp, final } of renames) {
      const to = join(this.#dir, final);
      try {
        await rename(join(this.#dir, tmp), to);
        dirs.add(dirname(to));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        // Another scorer renamed it first; if the final name is missing too, the part is gone from the disk.
        if (!(await stat(to).catch(() => undefined))) {
          this.#o.log.error(
            { stream: this.#o.job.name, tmp, final },
            "sink: a committed part is missing (neither its temporary nor its final file exists)",
          );
        }
      }
    }
    for (const d of dirs) await syncDir(d);
  }

  async #clearPending(done: ReadonlyArray<{ tmp: string }>): Promise<Stored<SinkLedger>> {
    const gone = new Set(done.map((p) => p.tmp));
    return casUpdate(
      this.#o.jobs,
      this.#key,
      SinkLedger,
      (current) => {
        if (!current)
          throw new SwitchyardError(
            "RESOURCE_DOES_NOT_EXIST",
            `the sink ledger of '${this.#o.job.name}' is gone`,
          );
        return {
          ...current,
          pending: current.pending.filter((p) => !gone.has(p.tmp)),
          updated_at: Date.now(),
        };
      },
      { what: `sink ledger of stream job '${this.#o.job.name}'` },
    );
  }

  /**
   * This scorer's temporary files that no ledger entry lists: a commit that crashed before its compare-and-set.
   * Other scorers' temporary files may belong to a commit under way, so they are left alone.
   */
  async #removeOrphans(ledger: SinkLedger): Promise<void> {
    const listed = new Set(ledger.pending.map((p) => p.tmp));
    for (const name of await readdir(join(this.#dir, TMP))) {
      const tmp = join(TMP, name);
      if (ownerOfTemp(name) === this.#tag && !listed.has(tmp))
        await rm(join(this.#dir, tmp), { force: true });
    }
  }

  #finalName(kind: OutcomeKind, part: number): string {
    const ext = kind === "result" ? this.#format : "jsonl";
    return join(SUBDIRS[kind], `part-${String(part).padStart(6, "0")}.${ext}`);
  }

  /** One temp file per kind present, written and fsynced (with the `_tmp` directory) before the ledger lists it. */
  async #writeTemps(outcomes: readonly Outcome[]): Promise<TempFile[]> {
    const id = randomBytes(6).toString("hex");
    const files: TempFile[] = [];
    for (const kind of ["result", "dlq", "late"] as const) {
      const bodies = outcomes.filter((o) => o.kind === kind).map((o) => o.body);
      if (bodies.length === 0) continue;
      const ext = kind === "result" ? this.#format : "jsonl";
      const tmp = join(TMP, `${this.#tag}.${id}.${kind}.${ext}`);
      files.push({ kind, tmp });
      const path = join(this.#dir, tmp);
      if (ext === "parquet") await writeParquet(path, bodies, this.#o.engine ?? {});
      else await writeJsonl(path, bodies);
    }
    await syncDir(join(this.#dir, TMP));
    return files;
  }

  async #remove(files: readonly TempFile[]): Promise<void> {
    for (const f of files) await rm(join(this.#dir, f.tmp), { force: true });
  }
}

/** The owner tag of a temp file name `<owner>.<id>.<kind>.<ext>`, or undefined for any other name. */
function ownerOfTemp(name: string): string | undefined {
  const parts = name.split(".");
  return parts.length === 4 ? parts[0] : undefined;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
