// The invoke actor: serves raw NATS clients (Go, C, Python…) on `<cluster>.invoke.<endpoint>` in queue group
// `invoke`, with the same JSON bodies and replies as HTTP. It forwards bytes through the router, never parsing them.
import { type Msg, type MsgHdrs, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { encode } from "@switchyard/data/codec";
import {
  clusterNames,
  DEFAULT_TIMEOUT_MS,
  H,
  isUsableRequestId,
  JSON_TYPE,
  principalOfReply,
  QUEUE_GROUPS,
  retryAfterOf,
  SwitchyardError,
} from "@switchyard/protocol";
import type { Router } from "./router.js";

/** Requests one actor holds at once; beyond it, an immediate retryable TEMPORARILY_UNAVAILABLE. */
export const INVOKE_MAX_IN_FLIGHT = 10_000;

export interface InvokeActor {
  /** Stops taking requests and waits for the ones in flight. */
  stop(): Promise<void>;
}

const utf8Encoder = new TextEncoder();

/** The longest timeout a request may ask for. */
export const MAX_TIMEOUT_MS = 3_600_000;

/** Reads a relative timeout header: a positive number of milliseconds, or the default when absent. */
export function parseTimeoutMs(value: string | undefined | null): number {
  if (!value) return DEFAULT_TIMEOUT_MS;
  const ms = Number(value);
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_TIMEOUT_MS) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      `${H.timeoutMs} must be a number of milliseconds between 1 and ${MAX_TIMEOUT_MS}, got '${value}'`,
    );
  }
  return ms;
}

/** An error as a reply: `{"error_code","message"}` (msgpack when the request was msgpack) and the code header. */
export function errorReply(
  err: unknown,
  requestId: string | undefined,
  msgpack = false,
): { data: Uint8Array; headers: MsgHdrs } {
  const e = SwitchyardError.from(err);
  const h = natsHeaders();
  h.append(H.contentType, msgpack ? "application/msgpack" : JSON_TYPE);
  h.append(H.errorCode, e.code);
  if (requestId) h.append(H.requestId, requestId);
  const retryAfter = retryAfterOf(e);
  if (retryAfter !== undefined) h.append(H.retryAfter, String(retryAfter));
  const body = e.toBody();
  return { data: msgpack ? encode(body) : utf8Encoder.encode(JSON.stringify(body)), headers: h };
}

export function serveInvoke(nc: NatsConnection, router: Router, cluster?: string): InvokeActor {
  const names = clusterNames(cluster);
  const prefixLength = names.subjects.invoke("x").length - 1;
  let inFlight = 0;
  const idle: (() => void)[] = [];

  const handle = async (msg: Msg): Promise<void> => {
    const endpoint = msg.subject.slice(prefixLength);
    const inH = msg.headers;
    // No content type: forwarded as such, and the replica tells JSON from msgpack by the first byte.
    const contentType = inH?.get(H.contentType) || "";
    // A client's id travels on only when it is safe in headers and logs; else the router makes one.
    const sent = inH?.get(H.requestId);
    const requestId = isUsableRequestId(sent) ? sent : undefined;
    try {
      if (inFlight > INVOKE_MAX_IN_FLIGHT) {
        throw new SwitchyardError("TEMPORARILY_UNAVAILABLE", "too many requests in flight; retry shortly");
      }
      const timeoutMs = parseTimeoutMs(inH?.get(H.timeoutMs));
      // Who a `key: user` limit counts: the client's own inbox prefix (see principalOfReply).
      await router.admit(endpoint, principalOfReply(msg.reply));
      const h = natsHeaders();
      if (contentType) h.append(H.contentType, contentType);
      if (requestId) h.append(H.requestId, requestId);
      const format = inH?.get(H.format);
      if (format) h.append(H.format, format);
      const result = await router.invoke(endpoint, msg.data, h, {
        deadlineMs: Date.now() + timeoutMs,
        routeKey: inH?.get(H.routeKey) || undefined,
      });
      msg.respond(result.data, result.headers ? { headers: result.headers } : undefined);
    } catch (err) {
      const reply = errorReply(err, requestId, contentType.includes("msgpack"));
      msg.respond(reply.data, { headers: reply.headers });
    }
  };

  const sub = nc.subscribe(names.subjects.invoke("*"), {
    queue: QUEUE_GROUPS.invoke,
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      inFlight++;
      void handle(msg).finally(() => {
        inFlight--;
        if (inFlight === 0) for (const done of idle.splice(0)) done();
      });
    },
  });

  return {
    async stop() {
      sub.unsubscribe();
      if (inFlight > 0) await new Promise<void>((resolve) => idle.push(resolve));
    },
  };
}
