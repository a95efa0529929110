// The landing-directory source of a stream job: every scorer of a `--source-dir` job runs one loader, which
// turns each complete file in the directory into one message per row on the job's landing subject, rows in file
// order. It never reads a file that is still being written, and never publishes a row twice, across restarts.
//
// When a file is complete. A name starting with `.` or `_`, or ending `.tmp`, `.partial`, `.crdownload` or
// `._COPYING_`, is never read: write a file elsewhere, or under such a name, then rename it into place (a
// rename is atomic, so the loader sees the whole file or nothing). Any other file is taken once its size and
// modification time have stayed the same across listings for `quietMs` (STREAM_DEFAULTS.quiet_ms): a writer
// that pauses longer than that mid-file must use the rename. The format is the job's `format`, else the
// extension (.csv; .jsonl, .json, .ndjson; .parquet); a file with any other extension is ignored, with one
// warning.
//
// Once per file, by content. A file is known by the sha256 of its bytes (32 hex digits), and the job's KV
// ledger holds one entry per digest (`streamKeys.file`): the same content under a second name is skipped, and
// a file rewritten with new content is a new file. A loader claims a file with `kv.create` (state LOADING,
// owner = its scorer); the others leave it alone while the owner renews `updated_at` every few seconds. A
// claim not renewed for 30 s (its scorer died), or let go by a stopped scorer, is taken over with a
// compare-and-set. Whoever loads a file first reads the last message on its subject and goes on from the row
// after it, so rows are never published twice even when the landing stream's duplicate window has passed (the
// `<job>:<digest>:<row>` message id covers a row republished within it, e.g. after a failed publish). At the
// end the entry becomes LOADED with the row count; a file DuckDB cannot parse becomes FAILED with the reason,
// and is not retried.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type PubAck,
} from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { isCasConflict, readValue, type Stored } from "@switchyard/nats";
import {
  type ClusterNames,
  LANDING_HEADERS,
  STREAM_DEFAULTS,
  type StreamJob,
  streamKeys,
  type TableFormat,
} from "@switchyard/protocol";
import type { Logger } from "pino";
import { z } from "zod";
import { type EngineOptions, withDuckDb } from "../tables/engine.js";
import { asWritten, duckColumns, formatOfPath, literal, readerSql } from "../tables/formats.js";

export const LANDING_DEFAULTS = {
  poll_ms: 1_000,
  /** A LOADING claim not renewed for this long belongs to a dead scorer: another may take it over. */
  claim_stale_ms: 30_000,
  /** How often the owner of a file renews its claim (and records its progress). */
  renew_ms: 2_000,
  /** Rows published and not yet acknowledged by the landing stream, at most. */
  outstanding_acks: 256,
} as const;

/** A landing file's entry in the job's ledger (key `streamKeys.file(job, digest)`). */
export const LandingFile = z
  .object({
    /** Where the content was first seen. */
    path: z.string(),
    digest: z.string(),
    state: z.enum(["LOADING", "LOADED", "FAILED"]),
    /** The scorer loading it; null once a stopped scorer let go of it (any scorer may go on at once). */
    owner: z.string().nullable(),
    /** Rows acknowledged by the landing stream, all of them from the first (may trail the subject's last). */
    rows_published: z.number().int().nonnegative(),
    /** LOADED: the file's rows. */
    rows: z.number().int().nonnegative().optional(),
    /** FAILED: why the file cannot be read. */
    reason: z.string().optional(),
    updated_at: z.number().int(),
  })
  .strict();
export type LandingFile = z.infer<typeof LandingFile>;

export interface LandingLoaderOptions {
  nc: NatsConnection;
  names: ClusterNames;
  /** The cluster's jobs bucket, which holds the ledger. */
  jobs: KV;
  job: StreamJob;
  /** The landing directory (a real path, checked under the data roots when the job was created). */
  dir: string;
  /** Every file's format; by default each file's extension says. */
  format?: TableFormat;
  /** How long a file's size and modification time must stay the same before it is read. */
  quietMs?: number;
  pollMs?: number;
  /** This scorer's id: the owner of the files it claims. */
  owner: string;
  log: Logger;
  /** DuckDB's threads and memory while reading a file. */
  engine?: EngineOptions;
  /** The wall clock claims are dated by (tests move it; the quiet period runs on a monotonic clock). */
  now?: () => number;
}

/** Names never read: hidden and `_` files, and the names downloaders and copiers write under before a rename. */
const IN_PROGRESS_SUFFIXES = [".tmp", ".partial", ".crdownload", "._copying_"];
export function isIgnoredName(name: string): boolean {
  const lower = name.toLowerCase();
  return name.startsWith(".") || name.startsWith("_") || IN_PROGRESS_SUFFIXES.some((s) => lower.endsWith(s));
}

/** The format of a landing file's name: the table formats' extensions, and `.json` for JSON lines too. */
function landingFormatOf(name: string): TableFormat | undefined {
  return formatOfPath(name) ?? (extname(name).toLowerCase() === ".json" ? "jsonl" : undefined);
}

interface Candidate {
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
  format: TableFormat;
}

/** DuckDB could not read the file: it is marked FAILED instead of being tried again. */
class BadFileError extends Error {}
/** Another scorer took the file over: this one stops publishing its rows. */
class LostClaimError extends Error {}

export class LandingLoader {
  readonly #o: LandingLoaderOptions;
  readonly #quietMs: number;
  readonly #pollMs: number;
  readonly #now: () => number;
  readonly #js: JetStreamClient;
  #jsm?: JetStreamManager;
  #loop?: Promise<void>;
  #stopped = false;
  #wake = () => {};
  /** Per name: the size and mtime last listed, and since when they have not changed. */
  readonly #watch = new Map<string, { size: number; mtimeMs: number; since: number }>();
  /** Per name: the digest of the version last hashed. */
  readonly #digests = new Map<string, { size: number; mtimeMs: number; digest: string }>();
  /** File versions (name, size, mtime) whose content is LOADED or FAILED: not looked up again. */
  readonly #settled = new Set<string>();
  readonly #warned = new Set<string>();
  /** Per digest: the first row whose publish failed in this process (resume there, not after the last). */
  readonly #retryFrom = new Map<string, number>();

  constructor(options: LandingLoaderOptions) {
    const positive = (value: number, name: string) => {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`options.${name} must be a positive integer, got ${value}`);
      }
      return value;
    };
    this.#o = options;
    this.#quietMs = positive(options.quietMs ?? STREAM_DEFAULTS.quiet_ms, "quietMs");
    this.#pollMs = positive(options.pollMs ?? LANDING_DEFAULTS.poll_ms, "pollMs");
    this.#now = options.now ?? Date.now;
    this.#js = jetstream(options.nc);
  }

  start(): void {
    if (this.#loop) throw new Error("LandingLoader.start: already started");
    this.#loop = this.#run();
  }

  /** Stops listing; a file being loaded stops after its published rows are acknowledged, and is let go. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake();
    await this.#loop;
  }

  get #log(): Logger {
    return this.#o.log;
  }

  async #run(): Promise<void> {
    this.#jsm = await jetstreamManager(this.#o.nc, { checkAPI: false });
    while (!this.#stopped) {
      try {
        await this.#scan();
      } catch (err) {
        // One bad listing (the directory unmounted for a moment, NATS away) must not end the job's source.
        this.#log.error({ stream: this.#o.job.name, err }, "landing directory scan failed");
      }
      if (this.#stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#pollMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One listing: note every file's size and mtime, then load the ones that have been quiet long enough. */
  async #scan(): Promise<void> {
    // Monotonic: a wall clock stepped back must not make a file look quiet early, nor one never look quiet.
    const now = performance.now();
    const entries = await readdir(this.#o.dir, { withFileTypes: true });
    const listed = new Set<string>();
    const ready: Candidate[] = [];
    for (const entry of entries) {
      const { name } = entry;
      if (entry.isDirectory() || isIgnoredName(name)) continue;
      const format = this.#o.format ?? landingFormatOf(name);
      if (!format) {
        if (!this.#warned.has(name)) {
          this.#warned.add(name);
          this.#log.warn(
            { stream: this.#o.job.name, file: name },
            "landing file ignored: expected a .csv, .jsonl, .json, .ndjson or .parquet file (or a job format)",
          );
        }
        continue;
      }
      const path = join(this.#o.dir, name);
      const s = await stat(path).catch(() => undefined);
      if (!s?.isFile()) continue;
      listed.add(name);
      const seen = this.#watch.get(name);
      if (!seen || seen.size !== s.size || seen.mtimeMs !== s.mtimeMs) {
        this.#watch.set(name, { size: s.size, mtimeMs: s.mtimeMs, since: now });
        continue;
      }
      if (now - seen.since < this.#quietMs || this.#settled.has(versionOf(name, s))) continue;
      ready.push({ name, path, size: s.size, mtimeMs: s.mtimeMs, format });
    }
    for (const name of this.#watch.keys()) {
      if (!listed.has(name)) {
        this.#watch.delete(name);
        this.#digests.delete(name);
      }
    }
    // Oldest first: files that arrive in order are loaded in order.
    ready.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : 1));
    for (const file of ready) {
      if (this.#stopped) return;
      await this.#consider(file);
    }
  }

  async #consider(file: Candidate): Promise<void> {
    const digest = await this.#digestOf(file);
    if (!digest) return;
    const claim = await this.#claim(file, digest);
    if (claim === "busy") return;
    if ("settled" in claim) {
      this.#settled.add(versionOf(file.name, file));
      if (claim.settled.path !== file.path) {
        this.#log.info(
          { stream: this.#o.job.name, file: file.path, digest, first: claim.settled.path },
          "landing file skipped: the same content was already loaded",
        );
      }
      return;
    }
    await this.#load(file, digest, claim);
  }

  /** The file's content digest, hashed once per version; undefined when it changed while being hashed. */
  async #digestOf(file: Candidate): Promise<string | undefined> {
    const known = this.#digests.get(file.name);
    if (known && known.size === file.size && known.mtimeMs === file.mtimeMs) return known.digest;
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(file.path)) hash.update(chunk as Buffer);
    const after = await stat(file.path).catch(() => undefined);
    if (after?.size !== file.size || after.mtimeMs !== file.mtimeMs) return undefined;
    // 128 bits: a valid KV key and subject token, and no collision between files of one job.
    const digest = hash.digest("hex").slice(0, 32);
    this.#digests.set(file.name, { size: file.size, mtimeMs: file.mtimeMs, digest });
    return digest;
  }

  /**
   * The file's ledger entry, claimed for this scorer (new, let go, its own from a previous run, or stale); or
   * the entry of a file done with; or "busy" while another scorer holds it.
   */
  async #claim(
    file: Candidate,
    digest: string,
  ): Promise<Stored<LandingFile> | { settled: LandingFile } | "busy"> {
    const { jobs, job, owner } = this.#o;
    const key = streamKeys.file(job.name, digest);
    const now = this.#now();
    const current = await readValue(jobs, key, LandingFile, "landing file entry");
    try {
      if (!current) {
        const value: LandingFile = {
          path: file.path,
          digest,
          state: "LOADING",
          owner,
          rows_published: 0,
          updated_at: now,
        };
        return { key, value, revision: await jobs.create(key, JSON.stringify(value)) };
      }
      const held = current.value;
      if (held.state !== "LOADING") return { settled: held };
      const stale = now - held.updated_at > LANDING_DEFAULTS.claim_stale_ms;
      if (held.owner !== null && held.owner !== owner && !stale) return "busy";
      const value: LandingFile = { ...held, owner, updated_at: now };
      const revision = await jobs.update(key, JSON.stringify(value), current.revision);
      this.#log.info(
        { stream: job.name, file: file.path, digest, from: held.owner, rows_published: held.rows_published },
        "landing file taken over",
      );
      return { key, value, revision };
    } catch (err) {
      // Another scorer claimed or took it over first.
      if (isCasConflict(err)) return "busy";
      throw err;
    }
  }

  async #load(file: Candidate, digest: string, claim: Stored<LandingFile>): Promise<void> {
    const { job } = this.#o;
    const ledger = new Claim(this.#o.jobs, claim, this.#now);
    const subject = this.#o.names.subjects.landing(job.name, digest);
    const first = this.#retryFrom.get(digest) ?? (await this.#lastRow(subject)) + 1;
    const log = { stream: job.name, file: file.path, digest };
    const publisher = new RowPublisher(
      this.#js,
      subject,
      { job: job.name, digest, path: claim.value.path },
      first,
    );
    // On a timer, not per row: sniffing a large file's types is a pass over it that publishes nothing.
    const renewal = setInterval(() => ledger.renew(() => publisher.acked), LANDING_DEFAULTS.renew_ms);
    try {
      const rows = await withDuckDb(this.#o.engine ?? {}, async (_db, connection) => {
        if (file.size === 0) return 0;
        const read = <T>(p: Promise<T>) =>
          p.catch((err: Error) => {
            throw new BadFileError(err.message);
          });
        // Typed from every row, so no value further down can fail to convert after rows went out.
        const columns = await read(
          duckColumns(connection, readerSql(file.path, file.format, undefined, false, true)),
        );
        const from =
          file.format === "parquet"
            ? `SELECT * EXCLUDE (file_row_number) FROM read_parquet(${literal(file.path)}, file_row_number = true)
               WHERE file_row_number >= ${first - 1}`
            : `SELECT * FROM ${readerSql(file.path, file.format, columns)} OFFSET ${first - 1}`;
        const select = await read(asWritten(connection, from, "jsonl"));
        const result = await read(connection.stream(`SELECT CAST(to_json(t) AS VARCHAR) FROM (${select}) t`));
        for (;;) {
          const chunk = await read(result.fetchChunk());
          if (!chunk || chunk.rowCount === 0) break;
          const column = chunk.getColumnVector(0);
          for (let i = 0; i < chunk.rowCount; i++) {
            if (this.#stopped) return undefined;
            ledger.check();
            await publisher.publish(column.getItem(i) as string);
          }
        }
        return publisher.next - 1;
      });
      await publisher.drain();
      clearInterval(renewal);
      this.#retryFrom.delete(digest);
      if (rows === undefined) {
        await ledger.write({ owner: null, rows_published: publisher.acked });
        this.#log.info(
          { ...log, rows_published: publisher.acked },
          "landing file let go: the loader stopped",
        );
        return;
      }
      await ledger.write({ state: "LOADED", rows, rows_published: rows });
      this.#settled.add(versionOf(file.name, file));
      this.#log.info({ ...log, rows, from_row: first }, "landing file loaded");
    } catch (err) {
      clearInterval(renewal);
      await publisher.drain().catch(() => undefined);
      if (err instanceof LostClaimError) {
        this.#log.warn(log, "landing file taken over by another scorer; this one stops loading it");
      } else if (err instanceof BadFileError) {
        await ledger.write({ state: "FAILED", reason: err.message, rows_published: publisher.acked });
        this.#settled.add(versionOf(file.name, file));
        this.#log.error({ ...log, reason: err.message }, "landing file cannot be read; marked FAILED");
      } else {
        // A publish failed: the claim stays ours, and the next listing goes on from the first row not acked.
        this.#retryFrom.set(digest, publisher.acked + 1);
        this.#log.warn(
          { ...log, err, rows_published: publisher.acked },
          "landing file interrupted; will resume",
        );
      }
    }
  }

  /** The row number of the last message on a file's subject, 0 when none. */
  async #lastRow(subject: string): Promise<number> {
    // null when the subject has no message (nats.js answers "no message found" so).
    const last = await this.#jsm!.streams.getMessage(this.#o.job.source.stream, { last_by_subj: subject });
    const row = Number(last?.header.get(LANDING_HEADERS.row) ?? 0);
    if (!Number.isSafeInteger(row) || row < 0) {
      throw new Error(`the last message on ${subject} has a bad ${LANDING_HEADERS.row} header`);
    }
    return row;
  }
}

/** A file's version as listed (a rewritten file is a new version). */
const versionOf = (name: string, s: { size: number; mtimeMs: number }) =>
  `${name}\u0000${s.size}\u0000${s.mtimeMs}`;

/**
 * This scorer's claim on a file. Every write is a compare-and-set on the revision it last wrote, one at a time;
 * a conflict means another scorer took the file over, and every later write or `check` throws LostClaimError.
 */
class Claim {
  #current: Stored<LandingFile>;
  #queue: Promise<void> = Promise.resolve();
  #lost?: LostClaimError;

  constructor(
    private readonly jobs: KV,
    claim: Stored<LandingFile>,
    private readonly now: () => number,
  ) {
    this.#current = claim;
  }

  /** Throws once the claim is lost (a renewal found it taken over). */
  check(): void {
    if (this.#lost) throw this.#lost;
  }

  /** Keeps the claim fresh and records progress; a failure is kept for `check` (a timer calls this). */
  renew(rowsPublished: () => number): void {
    this.write({}, rowsPublished).catch(() => undefined);
  }

  write(change: Partial<LandingFile>, rowsPublished?: () => number): Promise<void> {
    const next = this.#queue.then(async () => {
      this.check();
      const published = rowsPublished ? { rows_published: rowsPublished() } : {};
      const value: LandingFile = { ...this.#current.value, ...published, ...change, updated_at: this.now() };
      try {
        const revision = await this.jobs.update(
          this.#current.key,
          JSON.stringify(value),
          this.#current.revision,
        );
        this.#current = { key: this.#current.key, value, revision };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        this.#lost = new LostClaimError("the claim was taken over");
        throw this.#lost;
      }
    });
    this.#queue = next.catch(() => undefined);
    return next;
  }
}

/**
 * A file's rows onto its subject in order, with up to `outstanding_acks` publishes in flight; `acked` is the
 * last row such that it and every row before it are acknowledged.
 */
class RowPublisher {
  readonly #inFlight: Array<{ row: number; ack: Promise<PubAck> }> = [];
  #acked: number;
  #next: number;

  constructor(
    private readonly js: JetStreamClient,
    private readonly subject: string,
    private readonly file: { job: string; digest: string; path: string },
    first: number,
  ) {
    this.#next = first;
    this.#acked = first - 1;
  }

  get acked(): number {
    return this.#acked;
  }

  /** The row number the next published row gets. */
  get next(): number {
    return this.#next;
  }

  async publish(json: string): Promise<void> {
    const row = this.#next++;
    const h = natsHeaders();
    const { job, digest, path } = this.file;
    h.set(LANDING_HEADERS.file, path);
    h.set(LANDING_HEADERS.digest, digest);
    h.set(LANDING_HEADERS.row, String(row));
    const ack = this.js.publish(this.subject, json, { msgID: `${job}:${digest}:${row}`, headers: h });
    // Awaited in order below; until then a rejection must not count as unhandled.
    ack.catch(() => undefined);
    this.#inFlight.push({ row, ack });
    if (this.#inFlight.length >= LANDING_DEFAULTS.outstanding_acks) await this.#settleOldest();
  }

  /** Waits for every publish in flight; throws the first failure (after all have settled). */
  async drain(): Promise<void> {
    try {
      while (this.#inFlight.length > 0) await this.#settleOldest();
    } catch (err) {
      await Promise.allSettled(this.#inFlight.splice(0).map((f) => f.ack));
      throw err;
    }
  }

  async #settleOldest(): Promise<void> {
    const oldest = this.#inFlight[0]!;
    await oldest.ack;
    this.#inFlight.shift();
    this.#acked = oldest.row;
  }
}
