// Shadow traffic in the router: a copy of a share of the requests the split sends to an endpoint's primary goes
// to each shadow served model's replicas (its subject, never through the split), once the primary is on its
// way. A mirror never delays or fails its primary: it is sent on a later turn of the event loop, at most
// `max_in_flight` per endpoint are outstanding (further ones are dropped and counted), and its reply is only
// compared with the primary's, handed to the router's observers (the inference table captures it beside its
// primary's capture), and then discarded.
import {
  type MsgHdrs,
  type NatsConnection,
  headers as natsHeaders,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";
import {
  DEFAULT_TIMEOUT_MS,
  type EndpointRoutes,
  type ErrorCode,
  H,
  type LiveRoute,
  type ShadowServedStats,
  TimeHistogram,
} from "@switchyard/protocol";
import type { InvokeOutcome } from "./router.js";
import { countsOf } from "./router-stats.js";
import { agreement } from "./shadow-agreement.js";

/** What a mirror compares against: the primary's reply, or nothing when it failed. */
export interface PrimaryReply {
  data: Uint8Array;
  errorCode: string | undefined;
}

export interface ShadowLogger {
  warn(obj: object, msg: string): void;
}

class ShadowCounts {
  mirrored = 0;
  dropped = 0;
  readonly errors = new Map<string, number>();
  readonly latency = new TimeHistogram();
  compared = 0;
  agreed = 0;
}

export class ShadowMirror {
  /** Mirrors outstanding per endpoint. */
  private readonly inFlight = new Map<string, number>();
  private readonly counts = new Map<string, Map<string, ShadowCounts>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly routesOf: (endpoint: string) => EndpointRoutes | undefined,
    /** Asks the autoscaler for a replica of a route nothing answers (a shadow scaled to zero). */
    private readonly wake: (endpoint: string, route: LiveRoute) => void,
    private readonly logger?: ShadowLogger,
    /** Told of each mirror's outcome once the primary's is known (the router's observers). */
    private readonly observe?: (outcome: InvokeOutcome) => void,
  ) {}

  /**
   * Called once the router dispatched a request the split routed (`headers` carry its request id and
   * deadline by then): mirrors it to each shadow of the endpoint with its probability. Never throws.
   */
  mirror(endpoint: string, body: Uint8Array, headers: MsgHdrs, primary: Promise<PrimaryReply>): void {
    const routes = this.routesOf(endpoint);
    const shadow = routes?.shadow;
    if (!shadow) return;
    for (const s of shadow.routes) {
      if (Math.random() * 100 >= s.mirror_percentage) continue;
      const route = routes.routes.find((r) => r.served_model_name === s.served_model_name);
      // The coordinator only names served models of the live config, which all have a route.
      if (!route) continue;
      const c = this.served(endpoint, s.served_model_name);
      const outstanding = this.inFlight.get(endpoint) ?? 0;
      if (outstanding >= shadow.max_in_flight) {
        c.dropped++;
        continue;
      }
      this.inFlight.set(endpoint, outstanding + 1);
      c.mirrored++;
      const h = copyHeaders(headers);
      setImmediate(() => {
        void this.send(endpoint, route, body, headers, h, primary, c)
          .catch((err: unknown) => this.logger?.warn({ err, endpoint }, "a shadow mirror failed"))
          .finally(() => this.inFlight.set(endpoint, (this.inFlight.get(endpoint) ?? 1) - 1));
      });
    }
  }

  private async send(
    endpoint: string,
    route: LiveRoute,
    body: Uint8Array,
    primaryHeaders: MsgHdrs,
    h: MsgHdrs,
    primary: Promise<PrimaryReply>,
    c: ShadowCounts,
  ): Promise<void> {
    const deadline = Number(h.get(H.deadline)) || Date.now() + DEFAULT_TIMEOUT_MS;
    const startedAt = Date.now();
    const t0 = performance.now();
    let code: string | undefined;
    let message: string | undefined;
    let reply: Uint8Array | undefined;
    let replyHeaders: MsgHdrs | undefined;
    try {
      // setTimeout cannot wait longer than 2^31-1 ms; a deadline already past still gets one try.
      const timeout = Math.max(1, Math.min(deadline - Date.now(), 0x7fffffff));
      const msg = await this.nc.request(route.subject, body, { timeout, headers: h });
      code = msg.headers?.get(H.errorCode) || undefined;
      reply = msg.data;
      replyHeaders = msg.headers;
    } catch (err) {
      // A mirror is never held for a replica nor retried: what a caller would have waited for is an error here.
      // With no replica answering, the autoscaler is asked for one, so later mirrors find it.
      const none = err instanceof RequestError && err.isNoResponders();
      if (none) this.wake(endpoint, route);
      code =
        err instanceof TimeoutError
          ? "DEADLINE_EXCEEDED"
          : none
            ? "TEMPORARILY_UNAVAILABLE"
            : "INTERNAL_ERROR";
      message = err instanceof Error ? err.message : String(err);
    }
    const durationUs = (performance.now() - t0) * 1000;
    c.latency.record(durationUs);
    const failed = code !== undefined || !reply;
    if (failed) {
      const key = code ?? "INTERNAL_ERROR";
      c.errors.set(key, (c.errors.get(key) ?? 0) + 1);
    }
    // Settled only after the router told its observers of the primary, which the mirror's outcome must follow.
    const p = await primary.catch(() => undefined);
    this.observe?.({
      endpoint,
      requestId: primaryHeaders.get(H.requestId),
      route,
      startedAt,
      durationUs,
      errorCode: code,
      errorMessage: message,
      request: body,
      requestHeaders: primaryHeaders,
      reply,
      replyHeaders,
      held: false,
    });
    // A primary that failed has nothing to agree with.
    if (failed || !p || p.errorCode !== undefined) return;
    const a = agreement(p.data, reply!);
    if (!a) return;
    c.compared += a.compared;
    c.agreed += a.agreed;
  }

  private served(endpoint: string, served: string): ShadowCounts {
    return countsOf(this.counts, endpoint, served, () => new ShadowCounts());
  }

  /** Cumulative counts per endpoint and shadow served model, as RouterStatsSnapshot.shadow carries them. */
  snapshot(): Record<string, Record<string, ShadowServedStats>> {
    const out: Record<string, Record<string, ShadowServedStats>> = {};
    for (const [endpoint, byServed] of this.counts) {
      const e: Record<string, ShadowServedStats> = {};
      for (const [served, c] of byServed) {
        e[served] = {
          mirrored: c.mirrored,
          dropped: c.dropped,
          errors: Object.fromEntries(c.errors) as Partial<Record<ErrorCode, number>>,
          latency_us: c.latency.summary(),
          compared: c.compared,
          agreed: c.agreed,
        };
      }
      out[endpoint] = e;
    }
    return out;
  }
}

/** A mirror's own headers: the router adds nothing to them later, and the primary's may still change. */
function copyHeaders(h: MsgHdrs): MsgHdrs {
  const out = natsHeaders();
  for (const k of h.keys()) for (const v of h.values(k)) out.append(k, v);
  return out;
}
