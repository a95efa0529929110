// One request/reply call of the management API (`<cluster>.api.<op>`): JSON in, JSON out, errors rebuilt from
// their `{"error_code","message"}` body and code header. Every API object of the SDK calls through here.
import { type NatsConnection, headers as natsHeaders, RequestError } from "@nats-io/transport-node";
import { type ApiOp, type ClusterNames, H, JSON_TYPE, SwitchyardError } from "@switchyard/protocol";
import { replyError } from "./errors.js";

/** Default timeout of management calls: creates validate against the registry, which may take a moment. */
export const API_TIMEOUT_MS = 30_000;

const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

export function callApi(
  nc: NatsConnection,
  names: ClusterNames,
  op: ApiOp,
  body: unknown,
  opts: { timeoutMs?: number; user?: string } = {},
): Promise<unknown> {
  const subject = names.subjects.api(op);
  return callJson(
    nc,
    subject,
    body,
    {
      what: "the management API",
      nobody: `no coordinator answers the management API (${subject}); is the cluster running?`,
    },
    opts,
  );
}

/**
 * One JSON request/reply on `subject`. `who.what` names the service in errors; `who.nobody` is the error
 * message when nothing subscribes to the subject.
 */
export async function callJson(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  who: { what: string; nobody: string },
  opts: { timeoutMs?: number; user?: string } = {},
): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? API_TIMEOUT_MS;
  const user = opts.user;
  const h = natsHeaders();
  h.append(H.contentType, JSON_TYPE);
  if (user) h.append(H.user, user);
  let msg: Awaited<ReturnType<NatsConnection["request"]>>;
  try {
    msg = await nc.request(subject, utf8Encoder.encode(JSON.stringify(body)), {
      timeout: timeoutMs,
      headers: h,
    });
  } catch (err) {
    if (err instanceof RequestError && err.isNoResponders()) {
      throw new SwitchyardError("TEMPORARILY_UNAVAILABLE", who.nobody);
    }
    if ((err as Error).name === "TimeoutError") {
      throw new SwitchyardError(
        "DEADLINE_EXCEEDED",
        `${who.what} (${subject}) did not answer within ${timeoutMs} ms`,
      );
    }
    throw new SwitchyardError("TEMPORARILY_UNAVAILABLE", `NATS request failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const code = msg.headers?.get(H.errorCode);
  if (code) throw replyError(msg.data, msg.headers, code);
  if (msg.data.length === 0) return {};
  try {
    return JSON.parse(utf8.decode(msg.data));
  } catch {
    throw new SwitchyardError("INTERNAL_ERROR", `${who.what} (${subject}) answered with invalid JSON`);
  }
}
