// The feedback join: every coordinator pulls from one durable consumer on the feedback stream, so each label is
// joined once, finds the labelled request's capture (`last_by_subj` on its own subject), scores the prediction
// against the label and writes one outcome to the outcome stream. It never fails a caller: a label without a
// capture waits a bounded time (the capture may not be stored yet) and is then counted unknown.
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  CaptureRecord,
  type ClusterNames,
  FEEDBACK_STREAM_LIMITS,
  FeedbackLabel,
  type FeedbackResult,
  OUTCOME_STREAM_LIMITS,
  OutcomeRecord,
  predictionsOf,
  scoreLabel,
} from "@switchyard/protocol";
import type { Logger } from "pino";
import { ensureLimitsStream } from "./capture.js";

export const FEEDBACK_JOIN_DEFAULTS = {
  /** How long a label waits for its request's capture to be stored before it counts as unknown. */
  joinWaitMs: 30_000,
  /** The delay between two looks for a missing capture. */
  retryMs: 2_000,
  /** Unacknowledged labels are redelivered after this (a coordinator that stopped mid-join). */
  ackWaitMs: 30_000,
} as const;

export interface FeedbackJoinOptions {
  nc: NatsConnection;
  names: ClusterNames;
  log: Logger;
  joinWaitMs?: number;
  retryMs?: number;
}

/** Creates the feedback and outcome streams unless they exist. */
export async function ensureFeedbackStreams(nc: NatsConnection, names: ClusterNames): Promise<void> {
  await ensureLimitsStream(nc, names.streams.feedback, names.subjects.allFeedback, FEEDBACK_STREAM_LIMITS);
  await ensureLimitsStream(nc, names.streams.outcomes, names.subjects.allOutcomes, OUTCOME_STREAM_LIMITS);
}

const NS_PER_MS = 1_000_000;

type Score = Pick<OutcomeRecord, "rows" | "correct" | "numeric_rows" | "abs_err_sum" | "sq_err_sum">;
const NO_SCORE: Score = { rows: 0, correct: 0, numeric_rows: 0, abs_err_sum: 0, sq_err_sum: 0 };

export class FeedbackJoin {
  private readonly js: JetStreamClient;
  private jsm: JetStreamManager | undefined;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private readonly joinWaitMs: number;
  private readonly retryMs: number;

  private constructor(private readonly o: FeedbackJoinOptions) {
    this.js = jetstream(o.nc);
    this.joinWaitMs = o.joinWaitMs ?? FEEDBACK_JOIN_DEFAULTS.joinWaitMs;
    this.retryMs = o.retryMs ?? FEEDBACK_JOIN_DEFAULTS.retryMs;
  }

  /** Ensures the streams and the shared consumer, and starts joining. */
  static async start(o: FeedbackJoinOptions): Promise<FeedbackJoin> {
    const join = new FeedbackJoin(o);
    await ensureFeedbackStreams(o.nc, o.names);
    join.jsm = await jetstreamManager(o.nc);
    const stream = o.names.streams.feedback;
    const durable = o.names.feedbackConsumer;
    if (!(await join.jsm.consumers.info(stream, durable).catch(() => undefined))) {
      await join.jsm.consumers
        .add(stream, {
          durable_name: durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: FEEDBACK_JOIN_DEFAULTS.ackWaitMs * NS_PER_MS,
          // A label waiting for its capture is redelivered many times (nak with delay): never given up on.
          max_deliver: -1,
        })
        .catch(async (err: unknown) => {
          if (!(await join.jsm!.consumers.info(stream, durable).catch(() => undefined))) throw err;
        });
    }
    const consumer = await join.js.consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: 256 });
    join.messages = messages;
    join.loop = (async () => {
      for await (const m of messages) {
        try {
          await join.handle(m);
        } catch (err) {
          // NATS hiccup (timeout, leader change): the label comes back after a delay.
          o.log.warn({ err, seq: m.seq }, "feedback: joining a label failed; retrying");
          m.nak(join.retryMs);
        }
      }
    })();
    return join;
  }

  async stop(): Promise<void> {
    this.messages?.stop();
    await this.loop?.catch(() => undefined);
    await this.messages?.close().catch(() => undefined);
  }

  private async handle(m: JsMsg): Promise<void> {
    const endpoint = m.subject.split(".")[2] ?? "";
    const labelMs = Math.round(m.info.timestampNanos / NS_PER_MS);
    let body: unknown;
    try {
      body = m.json();
    } catch {
      body = undefined;
    }
    if (Array.isArray(body)) {
      // A raw client's batch: stored again one label per message (deduplicated by id if this runs twice).
      await Promise.all(
        body.map((label, i) =>
          this.js.publish(m.subject, JSON.stringify(label), { msgID: `split-${m.seq}-${i}` }),
        ),
      );
      m.ack();
      return;
    }
    const parsed = FeedbackLabel.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const id = (body as { request_id?: unknown } | undefined)?.request_id;
      await this.other(m, endpoint, labelMs, "invalid", typeof id === "string" ? id : "", {
        reason: `not a label: ${issue ? `${issue.path.join(".") || "body"}: ${issue.message}` : "not JSON"}`,
      });
      return;
    }
    const label = parsed.data;
    const captured = await this.capture(endpoint, label.request_id);
    if (!captured) {
      if (Date.now() - labelMs < this.joinWaitMs) {
        m.nak(this.retryMs);
        return;
      }
      await this.other(m, endpoint, labelMs, "unknown", label.request_id, {});
      return;
    }
    const record = CaptureRecord.safeParse(parseJson(captured.string()));
    if (!record.success) {
      await this.other(m, endpoint, labelMs, "invalid", label.request_id, {
        reason: "capture is not a record",
      });
      return;
    }
    const c = record.data;
    const request = {
      served_model_name: c.served_model_name,
      model_name: c.model_name,
      model_version: c.model_version,
      request_ms: c.timestamp_ms,
    };
    const predictions = c.error_code === null && c.response !== null ? predictionsOf(c.response) : undefined;
    const score = predictions ? scoreLabel(predictions, label.label) : undefined;
    if (c.served_model_name === null || typeof score !== "object") {
      const reason =
        c.error_code !== null
          ? `the request failed (${c.error_code})`
          : typeof score === "string"
            ? score
            : "no prediction per row in the captured reply";
      await this.other(m, endpoint, labelMs, "invalid", label.request_id, { ...request, reason });
      return;
    }
    const outcome: OutcomeRecord = {
      result: "joined",
      request_id: label.request_id,
      endpoint_name: endpoint,
      ...request,
      label_ms: labelMs,
      feedback_seq: m.seq,
      ...score,
    };
    const subject = this.o.names.subjects.outcome(endpoint, c.served_model_name, label.request_id);
    try {
      // The first label of a request wins: the publish expects no outcome on the request's subject yet.
      await this.js.publish(subject, JSON.stringify(outcome), {
        msgID: `fb-${m.seq}`,
        expect: { lastSubjectSequence: 0 },
      });
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence)) {
        throw err;
      }
      const first = await this.jsm!.streams.getMessage(this.o.names.streams.outcomes, {
        last_by_subj: subject,
      });
      // Our own outcome, written before a redelivery of this label: already counted.
      if (first && OutcomeRecord.safeParse(first.json()).data?.feedback_seq === m.seq) {
        m.ack();
        return;
      }
      await this.other(m, endpoint, labelMs, "duplicate", label.request_id, request);
      return;
    }
    m.ack();
  }

  /** The request's capture, or null while it is not stored (other failures throw: the label is retried). */
  private capture(endpoint: string, requestId: string): Promise<StoredMsg | null> {
    const subject = this.o.names.subjects.capture(endpoint, requestId);
    return this.jsm!.streams.getMessage(this.o.names.streams.capture, { last_by_subj: subject });
  }

  /** Records a label that was not joined (unknown, duplicate, invalid) and acknowledges it. */
  private async other(
    m: JsMsg,
    endpoint: string,
    labelMs: number,
    result: Exclude<FeedbackResult, "joined">,
    requestId: string,
    extra: Partial<OutcomeRecord>,
  ): Promise<void> {
    const outcome: OutcomeRecord = {
      result,
      request_id: requestId,
      endpoint_name: endpoint,
      served_model_name: null,
      model_name: null,
      model_version: null,
      request_ms: null,
      label_ms: labelMs,
      feedback_seq: m.seq,
      ...NO_SCORE,
      ...extra,
    };
    await this.js.publish(this.o.names.subjects.outcomeOther(endpoint, result), JSON.stringify(outcome), {
      msgID: `fb-${m.seq}`,
    });
    m.ack();
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
