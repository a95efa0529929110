// Inference tables: an invocation observer that publishes one capture record per sampled request of an endpoint
// whose routes carry `capture` (request and reply bodies, status, error code, latency, served model, ids) to its
// own subject `<prefix>.<ridToken>` on the capture stream (a feedback label finds it there by request id). It must never slow or fail a request: `observe` only samples and queues;
// records are built and published on a later turn of the event loop, acks are never awaited by a request, and
// past `maxPending` unfinished captures, or when a publish fails (stream missing or refusing), it drops and counts.
// A shadow served model's reply to a mirror of a captured request is captured too, through the same queue, on the
// primary's subject plus `.<served>` with `shadow: true`; a mirror of a request not captured is not.
import { type JetStreamClient, jetstream } from "@nats-io/jetstream";
import type { MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import { Frame } from "@switchyard/data";
import { decode } from "@switchyard/data/codec";
import {
  type CaptureRecord,
  type EndpointRoutes,
  ERROR_CATALOG,
  H,
  isErrorCode,
  MSGPACK,
  type RoutesCapture,
  ridToken,
  subjectToken,
} from "@switchyard/protocol";
import {
  type InvokeObserver,
  type InvokeOutcome,
  Router,
  type RouterLogger,
  type RouterOptions,
} from "./router.js";

export interface CaptureOptions {
  /** Captures queued or awaiting their publish ack at most; beyond it a capture is dropped (default 1024). */
  maxPending?: number;
  /** How long a publish waits for the stream's ack before the capture counts as dropped (default 5 s). */
  ackTimeoutMs?: number;
  logger?: RouterLogger;
  /** The sampling draw, uniform in [0, 1) (default Math.random; injected by tests). */
  random?: () => number;
}

export const CAPTURE_DEFAULTS = { maxPending: 1024, ackTimeoutMs: 5_000 } as const;

/** Captures of one endpoint since the observer started: stored on the stream, and given up. */
export interface CaptureCounts {
  captured: number;
  dropped: number;
}

/** Where the observer reads an endpoint's capture settings: the router's live routes. */
export interface RoutesSource {
  routesOf(endpoint: string): EndpointRoutes | undefined;
}

/** Bytes a record may take beyond its bodies; bodies that would push it past the NATS message limit are left out. */
const RECORD_OVERHEAD = 4096;
const utf8 = new TextDecoder();
const CLIENT_REQUEST_ID = new TextEncoder().encode('"client_request_id"');

export class CaptureObserver implements InvokeObserver {
  private readonly js: JetStreamClient;
  private readonly maxPending: number;
  private readonly ackTimeoutMs: number;
  private readonly random: () => number;
  private routes: RoutesSource | undefined;
  private readonly queue: Array<{ outcome: InvokeOutcome; capture: RoutesCapture; shadow: boolean }> = [];
  /**
   * The capture settings of each primary queued for capture, by its request headers (the object its mirrors'
   * outcomes carry too): its mirrors are captured with them, and forgotten with the request.
   */
  private readonly capturedPrimaries = new WeakMap<MsgHdrs, RoutesCapture>();
  private flushing = false;
  private pending = 0;
  private readonly perEndpoint = new Map<string, CaptureCounts>();
  /** Whether the last publish failed: a failing stream is logged once, not once per request. */
  private failing = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: CaptureOptions = {},
  ) {
    this.maxPending = opts.maxPending ?? CAPTURE_DEFAULTS.maxPending;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? CAPTURE_DEFAULTS.ackTimeoutMs;
    if (!Number.isSafeInteger(this.maxPending) || this.maxPending < 1) {
      throw new RangeError(`options.maxPending must be a positive integer, got ${this.maxPending}`);
    }
    this.random = opts.random ?? Math.random;
    this.js = jetstream(nc, { timeout: this.ackTimeoutMs });
  }

  /** Reads capture settings from these routes (the router this observer is given to). */
  attach(routes: RoutesSource): this {
    this.routes = routes;
    return this;
  }

  observe(outcome: InvokeOutcome): void {
    const capture = this.routes?.routesOf(outcome.endpoint)?.capture;
    if (!capture || !(this.random() < capture.sampling_rate)) return;
    if (this.enqueue(outcome, capture, false)) this.capturedPrimaries.set(outcome.requestHeaders, capture);
  }

  observeShadow(outcome: InvokeOutcome): void {
    const capture = this.capturedPrimaries.get(outcome.requestHeaders);
    if (capture) this.enqueue(outcome, capture, true);
  }

  /** Queues a capture unless `maxPending` are unfinished (then counted dropped); whether it was queued. */
  private enqueue(outcome: InvokeOutcome, capture: RoutesCapture, shadow: boolean): boolean {
    if (this.pending >= this.maxPending) {
      this.countOf(outcome.endpoint).dropped++;
      return false;
    }
    this.pending++;
    this.queue.push({ outcome, capture, shadow });
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** Per endpoint: captures the stream acknowledged, and captures dropped (bound reached, publish failed). */
  counts(): Record<string, CaptureCounts> {
    return Object.fromEntries([...this.perEndpoint].map(([e, c]) => [e, { ...c }]));
  }

  private countOf(endpoint: string): CaptureCounts {
    let c = this.perEndpoint.get(endpoint);
    if (!c) {
      c = { captured: 0, dropped: 0 };
      this.perEndpoint.set(endpoint, c);
    }
    return c;
  }

  private flush(): void {
    this.flushing = false;
    const limit = (this.nc.info?.max_payload ?? 1_048_576) - RECORD_OVERHEAD;
    for (const { outcome, capture, shadow } of this.queue.splice(0)) {
      const counts = this.countOf(outcome.endpoint);
      let data: string;
      try {
        data = JSON.stringify(captureRecord(outcome, capture.sampling_rate, limit, shadow));
      } catch (err) {
        this.pending--;
        counts.dropped++;
        this.opts.logger?.warn({ err, endpoint: outcome.endpoint }, "capture: the record could not be built");
        continue;
      }
      // A mirror's subject is names.subjects.captureShadow's: the primary's, plus the shadow served model.
      const primary = `${capture.subject_prefix}.${ridToken(outcome.requestId)}`;
      const served = outcome.route?.served_model_name;
      const subject = shadow && served !== undefined ? `${primary}.${subjectToken(served)}` : primary;
      this.js.publish(subject, data).then(
        () => {
          this.pending--;
          counts.captured++;
          this.failing = false;
        },
        (err: unknown) => {
          this.pending--;
          counts.dropped++;
          if (!this.failing) {
            this.failing = true;
            this.opts.logger?.warn(
              { err, endpoint: outcome.endpoint, subject },
              "capture: publishing to the capture stream failed; captures are dropped until it works again",
            );
          }
        },
      );
    }
  }
}

/**
 * The record of one outcome (`shadow`: a mirror's). Bodies are left out (null) when together they exceed `limit`
 * bytes.
 */
export function captureRecord(
  o: InvokeOutcome,
  samplingFraction: number,
  limit: number,
  shadow = false,
): CaptureRecord {
  const routerError = o.reply === undefined && o.errorCode !== undefined;
  const replyBytes = o.reply?.byteLength ?? 0;
  const fits = o.request.byteLength + replyBytes <= limit;
  const request = fits ? bodyText(o.request, o.requestHeaders) : null;
  let response: string | null = null;
  if (routerError) response = JSON.stringify({ error_code: o.errorCode, message: o.errorMessage ?? "" });
  else if (o.reply && fits) response = bodyText(o.reply, o.replyHeaders);
  const code = o.errorCode;
  return {
    request_id: o.requestId,
    client_request_id: request === null ? null : clientRequestId(o.request, request),
    date: new Date(o.startedAt).toISOString().slice(0, 10),
    timestamp_ms: o.startedAt,
    status_code: code === undefined ? 200 : isErrorCode(code) ? ERROR_CATALOG[code].status : 500,
    error_code: code ?? null,
    sampling_fraction: samplingFraction,
    execution_time_ms: Math.round(o.durationUs) / 1000,
    request,
    response,
    endpoint_name: o.endpoint,
    served_model_name: o.route?.served_model_name ?? null,
    model_name: o.route?.model_name ?? null,
    model_version: o.route?.model_version ?? null,
    shadow,
  };
}

/** A body as text: JSON and CSV as they are, msgpack decoded to JSON (Frames as columns, typed arrays as arrays). */
function bodyText(bytes: Uint8Array, headers: MsgHdrs | undefined): string {
  const type = headers?.get(H.contentType) ?? "";
  // As the replica does: without a content type, a first byte no JSON text starts with means msgpack.
  const msgpack = type === MSGPACK || (type === "" && bytes.length > 0 && bytes[0]! >= 0x80);
  if (msgpack) {
    try {
      return JSON.stringify(decode(bytes), (_key, value: unknown) => {
        // A Frame as its columns by name (pandas' "list" orientation); typed arrays as plain arrays.
        if (value instanceof Frame) return Object.fromEntries(value.columns.map((c) => [c, value.column(c)]));
        if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
          return Array.from(value as unknown as ArrayLike<number | bigint>, Number);
        }
        return value;
      });
    } catch {
      // Not msgpack after all (the replica answered it as such): kept as text.
    }
  }
  return utf8.decode(bytes);
}

/** Databricks reads a client's own id from the body's top-level `client_request_id`; parsed only when present. */
function clientRequestId(bytes: Uint8Array, text: string): string | null {
  if (indexOf(bytes, CLIENT_REQUEST_ID) < 0) return null;
  try {
    const id = (JSON.parse(text) as { client_request_id?: unknown }).client_request_id;
    return typeof id === "string" ? id : null;
  } catch {
    return null;
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(needle);
}

/**
 * Starts a router whose invocations are captured for endpoints with capture on, besides `opts.observers`: the
 * router every entry point uses (bridge, raw-NATS invoke actor, SDK), and its capture observer (`counts()`).
 */
export async function startCapturingRouter(
  nc: NatsConnection,
  opts: RouterOptions & { capture?: CaptureOptions } = {},
): Promise<{ router: Router; capture: CaptureObserver }> {
  const { capture: captureOpts, ...routerOpts } = opts;
  const capture = new CaptureObserver(nc, {
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...captureOpts,
  });
  const router = await Router.start(nc, {
    ...routerOpts,
    ...(routerOpts.stats ? { stats: { ...routerOpts.stats, capture: () => capture.counts() } } : {}),
    observers: [...(routerOpts.observers ?? []), capture],
  });
  capture.attach(router);
  return { router, capture };
}
