// A stream scorer: one process of a running stream job, sharing the job's durable pull consumer with the job's
// other scorers. It takes up to `batch` messages, or what arrived within `max_wait_ms` of the first, and per
// batch: decodes each event (a bad one is a dead letter), applies the window features (a late one goes to
// `.late`), joins the lookups, scores the valid rows in one inference, writes one outcome per input through
// the sink and waits until the sink has them, then acks the inputs (double ack).
//
// Exactly once. The checkpoint is the consumer's ack floor: an input is acked only after its outcome is
// written, so a scorer killed at any point leaves its inputs unacked, and they are redelivered. What was
// written before the kill is not written twice: a subject sink's stream drops the republished msg id within
// its duplicate window; a directory sink's ledger holds the sequences it committed. A windowed job keeps its
// window state in KV with the sequences it reflects, and commits it — then acks — every STREAM_DEFAULTS.commit_ms:
// a redelivered event already in the state is `replayed` (its outcome was written before the state was), and
// one not in it is applied again. Its results are published as they are scored, so only acks wait.
//
// A failure that is not one event's fault (the model runtime, NATS) fails the batch: a plain job naks it for a
// later retry; a job with held acks (windows, directory sink) exits, and its restart restores the state and gets
// the unacked inputs again.
import { type Consumer, type ConsumerMessages, type JsMsg, jetstream } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { readValue } from "@switchyard/nats";
import {
  type ClusterNames,
  LANDING_HEADERS,
  type ScorerReport,
  STREAM_DEFAULTS,
  type StreamJob,
  type StreamJobSpec,
  SwitchyardError,
  streamKeys,
} from "@switchyard/protocol";
import type { Logger } from "pino";
import { z } from "zod";
import { decodeEvent, type InputPlan, planInputs, rowOf } from "./events.js";
import { describe, eventTimeMs, PoisonEventError } from "./features.js";
import type { Lookups } from "./lookups.js";
import type { ModelLabel, Scoring } from "./scoring.js";
import type { InputRef, Outcome, Sink } from "./sink.js";
import { ScorerStats } from "./stats.js";
import { WindowState } from "./windows.js";

export interface StreamScorerOptions {
  nc: NatsConnection;
  names: ClusterNames;
  /** The `<cluster>_jobs` bucket: window state, reports. */
  jobs: KV;
  job: StreamJob;
  workerId: string;
  scoring: Scoring;
  sink: Sink;
  lookups?: Lookups;
  log: Logger;
  /** How often held acks are committed (default STREAM_DEFAULTS.commit_ms). */
  commitMs?: number;
}

/** A message being handled, and what becomes of it. */
interface Item {
  msg: JsMsg;
  input: InputRef;
  /** Decoded fields plus features, once valid. */
  fields?: Record<string, unknown>;
  features?: Record<string, unknown>;
  eventTime?: unknown;
  outcome?: Outcome;
  /** Already written before (a redelivery): acked, nothing written. */
  replayed?: boolean;
}

const REPORT_MS = 1_000;

export class StreamScorer {
  private readonly spec: StreamJobSpec;
  private readonly stats = new ScorerStats();
  private windows: WindowState | undefined;
  private consumer: Consumer | undefined;
  private messages: ConsumerMessages | undefined;
  /** The iterator's next message, asked for once; `arrived` holds it when it came, `wake` is who waits. */
  private pending: Promise<IteratorResult<JsMsg>> | undefined;
  private arrived: IteratorResult<JsMsg> | undefined;
  private wake: (() => void) | undefined;
  /** The KV revision of the window state this scorer last wrote (or restored): its writes are compare-and-set. */
  private windowsRevision = 0;
  private iterator: AsyncIterator<JsMsg> | undefined;
  /** Inputs whose outcomes are written, waiting for the next commit to be acked (`term`: a dead letter). */
  private held: Array<{ msg: JsMsg; term: boolean }> = [];
  /** The acks of the last batch, still being confirmed (never rejects). */
  private acking: Promise<void> = Promise.resolve();
  private lastCommit = Date.now();
  private plan: { key: string; plan: InputPlan } | undefined;
  private model: ModelLabel | null = null;
  private loop: Promise<void> | undefined;
  private reporter: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly holdAcks: boolean;
  private readonly dedupe: boolean;

  constructor(private readonly o: StreamScorerOptions) {
    this.spec = o.job.request as StreamJobSpec;
    this.holdAcks = !o.sink.acksOnWrite || (this.spec.features?.windows.length ?? 0) > 0;
    this.dedupe = this.spec.delivery !== "at-least-once";
  }

  /** Restores the window state, opens the consumer and starts scoring; `done` settles when the loop ends. */
  async start(): Promise<{ done: Promise<void> }> {
    const f = this.spec.features;
    if (f && f.windows.length > 0) {
      const saved = await readValue(
        this.o.jobs,
        streamKeys.windows(this.o.job.name),
        z.unknown(),
        "window state",
      );
      this.windows = saved ? WindowState.restore(f, saved.value) : new WindowState(f);
      this.windowsRevision = saved?.revision ?? 0;
    } else if (f) {
      this.windows = new WindowState(f);
    }
    this.consumer = await jetstream(this.o.nc).consumers.get(
      this.o.job.source.stream,
      this.o.job.source.consumer,
    );
    this.messages = await this.consumer.consume({ max_messages: Math.max(2 * this.spec.batch, 512) });
    this.iterator = this.messages[Symbol.asyncIterator]();
    this.reporter = setInterval(() => void this.report(), REPORT_MS);
    this.loop = this.run();
    return { done: this.loop };
  }

  /** Finishes the batch in hand, commits, gives back what it had not started (nak), and stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    // No more pulls: what was already delivered is handed back (in order) by the loop as it ends.
    this.messages?.stop();
    await this.loop?.catch(() => undefined);
    clearInterval(this.reporter);
    await this.messages?.close().catch(() => undefined);
    await this.report();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const batch = await this.collect();
      if (batch.length) {
        if (this.stopped) {
          for (const m of batch) m.nak();
          break;
        }
        await this.process(batch);
      }
      if (
        this.held.length &&
        Date.now() - this.lastCommit >= (this.o.commitMs ?? STREAM_DEFAULTS.commit_ms)
      ) {
        await this.commit();
      }
    }
    await this.acking;
    if (this.held.length) await this.commit();
    // What the consumer had already sent us goes back now, in order, rather than after the ack wait (which
    // would put it behind newer events and make it late for the windows).
    for (;;) {
      const r = this.arrived ?? (await (this.pending ?? this.iterator!.next()));
      this.pending = undefined;
      this.arrived = undefined;
      if (r.done) break;
      r.value.nak();
    }
  }

  /** Up to `batch` messages: waits up to a second for the first, then up to `max_wait_ms` for the rest. */
  private async collect(): Promise<JsMsg[]> {
    const out: JsMsg[] = [];
    const first = await this.next(1_000);
    if (!first) return out;
    out.push(first);
    const until = Date.now() + this.spec.max_wait_ms;
    while (out.length < this.spec.batch) {
      const m = await this.next(Math.max(0, until - Date.now()));
      if (!m) break;
      out.push(m);
    }
    return out;
  }

  private async next(waitMs: number): Promise<JsMsg | undefined> {
    if (!this.pending) {
      // One reaction per message, however many times the scorer waits for it (an idle stream waits each second).
      this.pending = this.iterator!.next();
      const settle = (r: IteratorResult<JsMsg>) => {
        this.arrived = r;
        this.wake?.();
      };
      // An iterator that fails has ended: the loop stops, and the process with it.
      this.pending.then(settle, () => settle({ done: true, value: undefined }));
    }
    if (!this.arrived) {
      await new Promise<void>((resolve) => {
        const timer = waitMs > 0 ? setTimeout(resolve, waitMs) : setImmediate(resolve);
        this.wake = () => {
          if (waitMs > 0) clearTimeout(timer as NodeJS.Timeout);
          else clearImmediate(timer as NodeJS.Immediate);
          resolve();
        };
      });
      this.wake = undefined;
    }
    const r = this.arrived;
    if (!r) return undefined;
    this.pending = undefined;
    this.arrived = undefined;
    if (r.done) {
      this.stopped = true;
      return undefined;
    }
    return r.value;
  }

  private async process(msgs: JsMsg[]): Promise<void> {
    const items = msgs.map((msg) => ({ msg, input: this.inputOf(msg) }) as Item);
    try {
      await this.build(items);
      await this.score(items);
      const outcomes = items.filter((i) => i.outcome && !i.replayed).map((i) => i.outcome!);
      const fresh = outcomes.filter((o) => !this.o.sink.holds(o.input.seq));
      await this.o.sink.write(fresh);
      const now = Date.now();
      for (const o of fresh) this.stats.record(now - o.input.publishedMs);
    } catch (err) {
      if (this.holdAcks) throw err;
      this.o.log.warn({ err: String(err), size: msgs.length }, "batch failed; it will be retried");
      for (const m of msgs) m.nak(2_000);
      return;
    }
    const acks = items.map((i) => ({ msg: i.msg, term: i.outcome?.kind === "dlq" }));
    if (this.holdAcks) {
      this.held.push(...acks);
      return;
    }
    // The acks go out while the next batch is collected and scored (one batch's acks in flight at a time):
    // its inputs stay unacked until then, which only means a redelivery if the scorer dies meanwhile.
    const previous = this.acking;
    this.acking = previous.then(() => this.ack(acks));
    await previous;
  }

  /** Decode, event time, key, windows and lookups: each item gets fields, or a dead letter or late outcome. */
  private async build(items: Item[]): Promise<void> {
    const spec = this.spec;
    const timeField = spec.features?.event_time ?? spec.event_time;
    const keyFields = spec.features ? [spec.features.key] : (spec.key ?? []);
    for (const item of items) {
      const { msg } = item;
      try {
        const fields = decodeEvent(msg.data, msg.headers?.get("Content-Type") || undefined);
        for (const k of keyFields) {
          const v = fields[k];
          if (typeof v !== "string" && typeof v !== "number") {
            throw new PoisonEventError(`key field "${k}": expected a string or number, got ${describe(v)}`);
          }
        }
        const time = timeField === undefined ? undefined : eventTimeMs(fields[timeField], timeField);
        item.eventTime = timeField === undefined ? null : fields[timeField];
        if (this.windows && time !== undefined && spec.features) {
          const outcome = this.windows.apply(
            { key: String(fields[spec.features.key]), time, fields },
            item.input.seq,
          );
          if (outcome.kind === "replayed") {
            item.replayed = true;
            continue;
          }
          if (outcome.kind === "late") {
            item.outcome = {
              input: item.input,
              kind: "late",
              body: {
                ...pick(fields, keyFields),
                event_time: item.eventTime,
                watermark: new Date(this.windows.watermark).toISOString(),
                source: item.input.source,
                event: fields,
              },
            };
            continue;
          }
          item.features = outcome.features;
        }
        item.fields = fields;
      } catch (err) {
        if (!(err instanceof PoisonEventError)) throw err;
        item.outcome = this.deadLetter(item, err.message);
      }
    }
    if (this.o.lookups) {
      const valid = items.filter((i) => i.fields);
      const joined = await this.o.lookups.fetch(valid.map((i) => i.fields!));
      valid.forEach((item, n) => {
        item.features = { ...item.features, ...joined[n] };
      });
    }
  }

  /** One inference over every valid row; a row the model refuses is found and dead-lettered alone. */
  private async score(items: Item[]): Promise<void> {
    const valid = items.filter((i) => i.fields && !i.outcome);
    if (valid.length === 0) return;
    const plan = await this.inputPlan({ ...valid[0]!.fields, ...valid[0]!.features });
    const rows: unknown[][] = [];
    const scored: Item[] = [];
    for (const item of valid) {
      try {
        rows.push(rowOf(plan, { ...item.fields, ...item.features }));
        scored.push(item);
      } catch (err) {
        if (!(err instanceof PoisonEventError)) throw err;
        item.outcome = this.deadLetter(item, err.message);
      }
    }
    if (rows.length === 0) return;
    let results: Array<Record<string, unknown> | Error>;
    let model: ModelLabel | null;
    try {
      const r = await this.o.scoring.score(plan, rows);
      results = r.rows;
      model = r.model;
    } catch (err) {
      if (!(err instanceof SwitchyardError) || err.code !== "INVALID_PARAMETER_VALUE" || rows.length === 1) {
        if (err instanceof SwitchyardError && err.code === "INVALID_PARAMETER_VALUE") {
          results = [err];
          model = this.model;
        } else throw err;
      } else {
        // Which rows? Score them one by one (rare: the checks above catch missing and ill-typed fields).
        results = [];
        model = this.model;
        for (const row of rows) {
          try {
            const r = await this.o.scoring.score(plan, [row]);
            results.push(r.rows[0]!);
            model = r.model;
          } catch (e) {
            if (!(e instanceof SwitchyardError) || e.code !== "INVALID_PARAMETER_VALUE") throw e;
            results.push(e);
          }
        }
      }
    }
    this.model = model;
    const keyFields = this.spec.features ? [this.spec.features.key] : (this.spec.key ?? []);
    scored.forEach((item, n) => {
      const r = results[n]!;
      if (r instanceof Error) {
        item.outcome = this.deadLetter(item, `model: ${r.message}`);
        return;
      }
      item.outcome = {
        input: item.input,
        kind: "result",
        body: {
          ...pick(item.fields!, keyFields),
          ...r,
          model,
          event_time: item.eventTime ?? null,
          source: item.input.source,
          ...(item.features ? { features: item.features } : {}),
        },
      };
    });
  }

  /** The plan for the current model version (planned again when the version changes). */
  private async inputPlan(first: Record<string, unknown>): Promise<InputPlan> {
    const current = this.o.scoring.model();
    const key = current ? `${current.name}/${current.version}` : "endpoint";
    if (this.plan?.key === key) return this.plan.plan;
    const signature = await this.o.scoring.signature();
    const reserved = [
      ...(this.spec.features ? [this.spec.features.key, this.spec.features.event_time] : []),
      ...(this.spec.key ?? []),
      ...(this.spec.event_time ? [this.spec.event_time] : []),
    ];
    const plan = planInputs(
      {
        signature,
        frames: signature === null || this.o.scoring.takesFrames(),
        reserved,
        ...(this.spec.columns ? { columns: this.spec.columns } : {}),
      },
      first,
    );
    this.plan = { key, plan };
    this.model = current;
    this.o.log.info({ model: key, plan }, "model input plan");
    return plan;
  }

  private deadLetter(item: Item, reason: string): Outcome {
    let payload: string;
    let encoding = "utf-8";
    try {
      payload = new TextDecoder("utf-8", { fatal: true }).decode(item.msg.data);
    } catch {
      payload = Buffer.from(item.msg.data).toString("base64");
      encoding = "base64";
    }
    return {
      input: item.input,
      kind: "dlq",
      body: {
        reason,
        payload,
        ...(encoding === "base64" ? { payload_encoding: "base64" } : {}),
        source: item.input.source,
        job: this.o.job.name,
      },
    };
  }

  private inputOf(msg: JsMsg): InputRef {
    const seq = msg.info.streamSequence;
    const publishedMs = Math.floor(msg.info.timestampNanos / 1e6);
    const digest = msg.headers?.get(LANDING_HEADERS.digest);
    if (digest) {
      const row = Number(msg.headers?.get(LANDING_HEADERS.row));
      return {
        seq,
        msgId: `${this.o.job.name}:${digest}:${row}`,
        source: { file: msg.headers?.get(LANDING_HEADERS.file) ?? "", row },
        publishedMs,
      };
    }
    const stream = this.o.job.source.stream;
    return { seq, msgId: `${this.o.job.name}:${stream}:${seq}`, source: { stream, seq }, publishedMs };
  }

  /** Window state (with its sequences) and the sink's part, then the acks: see the header. */
  private async commit(): Promise<void> {
    const info = await this.consumer!.info();
    const ackFloor = info.ack_floor.stream_seq;
    await this.o.sink.commit(ackFloor);
    if (this.windows && this.holdAcks) {
      this.windows.settle(ackFloor);
      await this.saveWindows();
    }
    const held = this.held;
    this.held = [];
    this.lastCommit = Date.now();
    await this.ack(held);
  }

  /** An ack that is lost (or unconfirmed) only means a redelivery, whose outcome the sink drops: logged. */
  /**
   * The window state, compare-and-set against what this scorer restored or last wrote: a scorer that finds
   * another's write (two alive at once, briefly, around a restart) exits and restarts from that state.
   */
  private async saveWindows(): Promise<void> {
    const value = JSON.stringify(this.windows!.snapshot());
    const limit = this.o.nc.info?.max_payload ?? 1_048_576;
    if (value.length > limit - 1_024) {
      throw new WindowStateTooLarge(
        `the window state is ${value.length} bytes, over what one NATS message holds (${limit}); ` +
          "use smaller windows or fewer keys per job",
      );
    }
    const key = streamKeys.windows(this.o.job.name);
    this.windowsRevision =
      this.windowsRevision === 0
        ? await this.o.jobs.create(key, value)
        : await this.o.jobs.update(key, value, this.windowsRevision);
  }

  private async ack(acks: Array<{ msg: JsMsg; term: boolean }>): Promise<void> {
    if (!this.dedupe) {
      for (const a of acks) a.term ? a.msg.term("dead-lettered") : a.msg.ack();
      return;
    }
    await Promise.all(
      acks.map(async (a) => {
        if (a.term) a.msg.term("dead-lettered");
        else await a.msg.ackAck();
      }),
    ).catch((err: unknown) =>
      this.o.log.warn({ err: String(err) }, "acks not confirmed; the inputs may be redelivered"),
    );
  }

  private async report(): Promise<void> {
    const r: ScorerReport = {
      worker_id: this.o.workerId,
      job: this.o.job.name,
      events: this.stats.events,
      events_per_s: Math.round(this.stats.rate() * 10) / 10,
      latency_counts: this.stats.latencyCounts(),
      model: this.model,
      updated_at: Date.now(),
    };
    await this.o.jobs
      .put(streamKeys.scorer(this.o.job.name, this.o.workerId), JSON.stringify(r))
      .catch((err: unknown) => this.o.log.debug({ err: String(err) }, "report failed"));
  }
}

function pick(fields: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(names.map((n) => [n, fields[n] ?? null]));
}

/** Window state that no longer fits in one KV value: the scorer stops for good and says why. */
export class WindowStateTooLarge extends Error {
  override name = "WindowStateTooLarge";
}
