// KV buckets, one helper per mechanism: open a bucket with its one set of settings, list its keys reliably,
// read values through a schema, and update a key with compare-and-set. No component talks to KV another way.
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { type KV, type KvEntry, Kvm, type KvOptions } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type ClusterNames,
  LIVENESS_TTL_MS,
  RATE_LIMIT_COUNTER_TTL_MS,
  SwitchyardError,
} from "@switchyard/protocol";

export type BucketName = "models" | "endpoints" | "cluster" | "liveness" | "jobs" | "ratelimits";

/**
 * The settings of every KV bucket, in one place: whichever component starts first creates a bucket, and
 * nats-server refuses a create whose settings differ from the existing bucket's.
 */
export const BUCKET_OPTIONS: Record<BucketName, Partial<KvOptions>> = {
  /** A few revisions, to see the last alias moves with `nats kv history`. */
  models: { history: 5 },
  endpoints: { history: 5 },
  cluster: { history: 1 },
  /** Heartbeats and the leader lease expire with the bucket's age limit (no per-key TTL in 2.10). */
  liveness: { history: 1, ttl: LIVENESS_TTL_MS },
  jobs: { history: 5 },
  /** Rate-limit counters: one key per window, gone once the window is well past. */
  ratelimits: { history: 1, ttl: RATE_LIMIT_COUNTER_TTL_MS },
};

/** What `listKeys` needs of a bucket that nats.js's KV interface does not expose: its name. */
const opened = new WeakMap<KV, { bucket: string; jsm: JetStreamManager }>();

/** Opens one of the cluster's KV buckets, creating it with its settings if missing. */
export async function openBucket(nc: NatsConnection, names: ClusterNames, bucket: BucketName): Promise<KV> {
  const name = names.buckets[bucket];
  const [kv, jsm] = await Promise.all([
    new Kvm(nc).create(name, BUCKET_OPTIONS[bucket]),
    jetstreamManager(nc, { checkAPI: false }),
  ]);
  opened.set(kv, { bucket: name, jsm });
  return kv;
}

/**
 * Every key of `kv` matching `filter` (NATS wildcards), deleted ones included until their markers age out.
 * `kv.keys()` walks an ordered consumer and stops after the count it saw when it started: a key rewritten
 * during the walk is missed, so a heartbeat renewed every second looks "missing" and a coordinator would
 * declare a live node dead. The info of the bucket's stream (`KV_<bucket>`) with a subjects filter is one
 * server-side snapshot of every key, so nothing live is ever left out.
 */
export async function listKeys(kv: KV, filter = ">"): Promise<string[]> {
  const b = opened.get(kv);
  if (!b) throw new Error("listKeys: open the bucket with openBucket()");
  const prefix = `$KV.${b.bucket}.`;
  const info = await b.jsm.streams.info(`KV_${b.bucket}`, { subjects_filter: `${prefix}${filter}` });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
}

/** A zod schema, or anything with zod's `safeParse`. */
export interface Schema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: { message: string } };
}

export interface Stored<T> {
  key: string;
  value: T;
  revision: number;
}

function parseEntry<T>(kv: KV, entry: KvEntry, schema: Schema<T>, what: string): T {
  let json: unknown;
  try {
    json = entry.json();
  } catch {
    json = undefined;
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const bucket = opened.get(kv)?.bucket ?? "KV";
    throw new SwitchyardError(
      "INTEGRITY_ERROR",
      `record '${entry.key}' in ${bucket} is not a valid ${what}: ${parsed.error.message}`,
    );
  }
  return parsed.data;
}

/** The value under `key` checked by `schema`, or null when absent or deleted; an invalid one → INTEGRITY_ERROR. */
export async function readValue<T>(
  kv: KV,
  key: string,
  schema: Schema<T>,
  what: string,
): Promise<Stored<T> | null> {
  const entry = await kv.get(key);
  if (entry?.operation !== "PUT") return null;
  return { key, value: parseEntry(kv, entry, schema, what), revision: entry.revision };
}

export interface ReadAllOptions {
  /**
   * What an invalid record does: `throw` (INTEGRITY_ERROR naming it — a user asked for exactly these records),
   * or `skip` (control loops, where one bad record must not hide every good one; `onSkip` hears of it).
   */
  invalid?: "throw" | "skip";
  onSkip?: (key: string, problem: string) => void;
}

/** Every value under `filter` (listed with `listKeys`) checked by `schema`, with its key and revision. */
export async function readAll<T>(
  kv: KV,
  filter: string,
  schema: Schema<T>,
  what: string,
  options: ReadAllOptions = {},
): Promise<Stored<T>[]> {
  const found = await listKeys(kv, filter);
  const entries = await Promise.all(found.map((key) => kv.get(key)));
  const out: Stored<T>[] = [];
  for (const e of entries) {
    if (e?.operation !== "PUT") continue;
    try {
      out.push({ key: e.key, value: parseEntry(kv, e, schema, what), revision: e.revision });
    } catch (err) {
      if (options.invalid !== "skip") throw err;
      options.onSkip?.(e.key, (err as Error).message);
    }
  }
  return out;
}

/** nats.js reports a failed compare-and-set as JetStream API error 10071 ("wrong last sequence"). */
export function isCasConflict(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; api_error?: { err_code?: unknown } };
  return (
    e?.code === 10071 ||
    e?.code === 10164 ||
    e?.api_error?.err_code === 10071 ||
    (typeof e?.message === "string" && /wrong last sequence/i.test(e.message))
  );
}

export interface CasOptions {
  /** What the record is, for messages ("endpoint 'x'"). */
  what: string;
  /** Attempts before giving up with RESOURCE_CONFLICT (default 50); contention clears within a few. */
  attempts?: number;
}

/**
 * Read-modify-write of one key with compare-and-set on its revision (`create` when absent). `change` gets
 * the current value (null when absent) and returns the next one, or throws to abort (its error propagates).
 * Only a revision conflict is retried, after a short random sleep; any other error (a timeout, a refused
 * write) propagates at once, so a slow server is never mistaken for a busy key.
 */
export async function casUpdate<T>(
  kv: KV,
  key: string,
  schema: Schema<T>,
  change: (current: T | null) => T,
  options: CasOptions,
): Promise<Stored<T>> {
  const attempts = options.attempts ?? 50;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const current = await readValue(kv, key, schema, options.what);
    const next = change(current?.value ?? null);
    const checked = schema.safeParse(next);
    if (!checked.success) {
      throw new SwitchyardError("INTERNAL_ERROR", `invalid ${options.what}: ${checked.error.message}`);
    }
    try {
      const revision = current
        ? await kv.update(key, JSON.stringify(checked.data), current.revision)
        : await kv.create(key, JSON.stringify(checked.data));
      return { key, value: checked.data, revision };
    } catch (err) {
      if (!isCasConflict(err)) throw err;
      await sleep(Math.random() * Math.min(50, 2 + attempt * 2));
    }
  }
  throw new SwitchyardError(
    "RESOURCE_CONFLICT",
    `${options.what} is being changed concurrently; gave up after ${attempts} attempts, retry`,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
