// Error replies rebuilt on arrival: the catalog code from the header, the message from the body (JSON or msgpack).
import type { MsgHdrs } from "@nats-io/transport-node";
import { decode } from "@switchyard/data/codec";
import { H, SwitchyardError } from "@switchyard/protocol";

const utf8 = new TextDecoder();

/** Rebuilds the error of an error reply (JSON or msgpack body, code in the header). */
export function replyError(data: Uint8Array, headers: MsgHdrs | undefined, code: string): SwitchyardError {
  let body: { error_code?: unknown; message?: unknown } = {};
  try {
    const type = headers?.get(H.contentType) ?? "";
    body = (type.includes("msgpack") ? decode(data) : JSON.parse(utf8.decode(data))) as typeof body;
  } catch {
    body = { message: "unreadable error reply" };
  }
  if (body === null || typeof body !== "object") body = {};
  return SwitchyardError.fromBody({ error_code: body.error_code ?? code, message: body.message });
}
