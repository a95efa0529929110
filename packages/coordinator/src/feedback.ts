// The feedback join: every coordinator pulls from one durable consumer on the feedback stream, so each label is
// joined once, finds the labelled request's capture (`last_by_subj` on its own subject), scores the prediction
// against the label and writes one outcome to the outcome stream. It never fails a caller: a label without a
// capture waits a bounded time (the capture may not be stored yet) and is then counted unknown. The label also
// scores each shadow served model of the endpoint on its captured reply to the request's mirror, one outcome each
// (`shadow: true`), so a challenger has a live accuracy before it takes traffic; the label is still counted once.
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
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReplicationSetting } from "@switchyard/nats";
import {
  CaptureRecord,
  type ClusterNames,
  EndpointRecord,
  FEEDBACK_STREAM_LIMITS,
  FeedbackLabel,
  type FeedbackResult,
  keys,
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
  /** How long the shadow served models read from an endpoint's record are reused before it is read again. */
  shadowNamesTtlMs: 5_000,
  /** Labels delivered and not yet joined at most (cluster-wide): ~650 waiting labels a second at joinWaitMs. */
  maxAckPending: 20_000,
} as const;

export interface FeedbackJoinOptions {
  nc: NatsConnection;
  names: ClusterNames;
  /** The endpoints bucket: where the join reads which served models shadow an endpoint. */
  endpoints: KV;
  log: Logger;
  joinWaitMs?: number;
  retryMs?: number;
  /** The replica count of the feedback and outcome streams (default: one, an existing stream as it is). */
  replication?: ReplicationSetting;
}

/** Creates the feedback and outcome streams unless they exist (then only their replica count follows `replication`). */
export async function ensureFeedbackStreams(
  nc: NatsConnection,
  names: ClusterNames,
  replication?: ReplicationSetting,
): Promise<void> {
  const { feedback, outcomes } = names.streams;
  await ensureLimitsStream(nc, feedback, names.subjects.allFeedback, FEEDBACK_STREAM_LIMITS, replication);
  await ensureLimitsStream(nc, outcomes, names.subjects.allOutcomes, OUTCOME_STREAM_LIMITS, replication);
}

const NS_PER_MS = 1_000_000;

type Score = Pick<OutcomeRecord, "rows" | "correct" | "numeric_rows" | "abs_err_sum" | "sq_err_sum">;
const NO_SCORE: Score = { rows: 0, correct: 0, numeric_rows: 0, abs_err_sum: 0, sq_err_sum: 0 };

/** An endpoint's shadow served models, and whether routers mirror to each now (a share above 0 %). */
type Shadows = Array<{ served: string; mirrored: boolean }>;

export class FeedbackJoin {
  private readonly js: JetStreamClient;
  private jsm: JetStreamManager | undefined;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private readonly joinWaitMs: number;
  private readonly retryMs: number;
  private readonly shadowNames = new Map<string, { shadows: Shadows; captures: boolean; at: number }>();

  private constructor(private readonly o: FeedbackJoinOptions) {
    this.js = jetstream(o.nc);
    this.joinWaitMs = o.joinWaitMs ?? FEEDBACK_JOIN_DEFAULTS.joinWaitMs;
    this.retryMs = o.retryMs ?? FEEDBACK_JOIN_DEFAULTS.retryMs;
  }

  /** Ensures the streams and the shared consumer, and starts joining. */
  static async start(o: FeedbackJoinOptions): Promise<FeedbackJoin> {
    const join = new FeedbackJoin(o);
    await ensureFeedbackStreams(o.nc, o.names, o.replication);
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
          // Each waiting label holds one of these for up to joinWaitMs: the server's default (1,000) would
          // let a burst of labels for uncaptured (sampled-out) requests stall the join for every endpoint.
          max_ack_pending: FEEDBACK_JOIN_DEFAULTS.maxAckPending,
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
      // An endpoint that captures nothing (or does not exist) will never store it: no waiting.
      if (Date.now() - labelMs < this.joinWaitMs && (await this.endpointOf(endpoint)).captures) {
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
    // The mirrors' captures: one still missing while the request is recent may only not be stored yet (a mirror
    // ends after its primary), so the label waits as for a primary capture; later, a missing one was not mirrored.
    const shadows = await this.shadowCaptures(endpoint, label.request_id);
    if (shadows.missing && Date.now() - c.timestamp_ms < this.joinWaitMs) {
      m.nak(this.retryMs);
      return;
    }
    for (const [served, stored] of shadows.found) {
      await this.joinShadow(m, endpoint, labelMs, label, served, stored);
    }
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
      shadow: false,
    };
    if (await this.publishFirst(outcome, m.seq, `fb-${m.seq}`)) {
      await this.other(m, endpoint, labelMs, "duplicate", label.request_id, request);
      return;
    }
    m.ack();
  }

  /**
   * Stores a joined outcome unless its served model already has one for the request: the first label of a
   * request wins, per served model. Whether an earlier label's outcome is there (a duplicate); this label's own,
   * written before a redelivery, is not one.
   */
  private async publishFirst(outcome: OutcomeRecord, seq: number, msgID: string): Promise<boolean> {
    const subject = this.o.names.subjects.outcome(
      outcome.endpoint_name,
      outcome.served_model_name!,
      outcome.request_id,
    );
    try {
      await this.js.publish(subject, JSON.stringify(outcome), { msgID, expect: { lastSubjectSequence: 0 } });
      return false;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence)) {
        throw err;
      }
      const first = await this.jsm!.streams.getMessage(this.o.names.streams.outcomes, {
        last_by_subj: subject,
      });
      return !(first && OutcomeRecord.safeParse(first.json()).data?.feedback_seq === seq);
    }
  }

  /**
   * Scores one shadow served model's reply to the request's mirror. A mirror that failed, or whose reply has no
   * prediction per row, scores nothing (the shadow's errors are in its traffic statistics); neither does a label
   * a shadow already has an earlier one for.
   */
  private async joinShadow(
    m: JsMsg,
    endpoint: string,
    labelMs: number,
    label: FeedbackLabel,
    served: string,
    stored: StoredMsg,
  ): Promise<void> {
    const c = CaptureRecord.safeParse(parseJson(stored.string())).data;
    if (!c || c.error_code !== null || c.response === null) return;
    const predictions = predictionsOf(c.response);
    const score = predictions ? scoreLabel(predictions, label.label) : undefined;
    if (typeof score !== "object") return;
    const outcome: OutcomeRecord = {
      result: "joined",
      request_id: label.request_id,
      endpoint_name: endpoint,
      served_model_name: served,
      model_name: c.model_name,
      model_version: c.model_version,
      request_ms: c.timestamp_ms,
      label_ms: labelMs,
      feedback_seq: m.seq,
      ...score,
      shadow: true,
    };
    // Its own message id: the primary's outcome of the same label is deduplicated by `fb-<seq>`.
    await this.publishFirst(outcome, m.seq, `fb-${m.seq}-${served}`);
  }

  /** The stored captures of the request's mirrors by shadow served model, and whether a mirrored one is missing. */
  private async shadowCaptures(
    endpoint: string,
    requestId: string,
  ): Promise<{ found: Array<[string, StoredMsg]>; missing: boolean }> {
    const shadows = await this.shadowsOf(endpoint);
    const stored = await Promise.all(
      shadows.map((s) =>
        this.jsm!.streams.getMessage(this.o.names.streams.capture, {
          last_by_subj: this.o.names.subjects.captureShadow(endpoint, requestId, s.served),
        }),
      ),
    );
    const found: Array<[string, StoredMsg]> = [];
    let missing = false;
    shadows.forEach((s, i) => {
      const msg = stored[i];
      if (msg) found.push([s.served, msg]);
      else if (s.mirrored) missing = true;
    });
    return { found, missing };
  }

  /**
   * The endpoint's shadow served models, from its serving and its pending config (a rollout in progress may
   * mirror either), read at most once per `shadowNamesTtlMs`. An unreadable record has none.
   */
  private async shadowsOf(endpoint: string): Promise<Shadows> {
    return (await this.endpointOf(endpoint)).shadows;
  }

  /** What the join needs of an endpoint's configs, read at most once per `shadowNamesTtlMs`. */
  private async endpointOf(endpoint: string): Promise<{ shadows: Shadows; captures: boolean }> {
    const cached = this.shadowNames.get(endpoint);
    if (cached && Date.now() - cached.at < FEEDBACK_JOIN_DEFAULTS.shadowNamesTtlMs) return cached;
    const entry = await this.o.endpoints.get(keys.endpoint(endpoint));
    const record =
      entry?.operation === "PUT" ? EndpointRecord.safeParse(parseJson(entry.string())).data : undefined;
    const byName = new Map<string, boolean>();
    for (const config of [record?.config, record?.pending_config]) {
      for (const r of config?.shadow_config?.routes ?? []) {
        byName.set(
          r.served_model_name,
          (byName.get(r.served_model_name) ?? false) || r.mirror_percentage > 0,
        );
      }
    }
    const shadows = [...byName].map(([served, mirrored]) => ({ served, mirrored }));
    const captures = [record?.config, record?.pending_config].some((c) => c?.auto_capture_config?.enabled);
    const info = { shadows, captures, at: Date.now() };
    this.shadowNames.set(endpoint, info);
    return info;
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
      shadow: false,
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
