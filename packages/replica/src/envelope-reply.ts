// The reply to a router's batch envelope (protocol/envelope.ts): one part per request, in the envelope's order,
// sent as one message once every part is answered. A part answers once; a second answer is ignored. Replies can
// outgrow the server's max_payload where the requests did not: the largest are then swapped for `overflow`'s
// retryable error, which the router retries alone.
import { type Msg, type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";
import {
  ENVELOPE_OVERHEAD_BYTES,
  type EnvelopePart,
  H,
  headerBlock,
  packEnvelope,
  partBytes,
} from "@switchyard/protocol";

/** Where one request's reply goes: its own message (a `Msg`) or its part of an envelope's reply. */
export interface Answer {
  respond(data: Uint8Array, opts: { headers: MsgHdrs }): boolean;
}

export class EnvelopeReply {
  private readonly parts: (EnvelopePart | undefined)[];
  private left: number;

  constructor(
    private readonly msg: Msg,
    count: number,
    private readonly maxBytes: number,
    private readonly overflow: (index: number) => EnvelopePart,
  ) {
    this.parts = new Array(count);
    this.left = count;
  }

  part(index: number): Answer {
    return { respond: (data, opts) => this.fill(index, data, opts.headers) };
  }

  private fill(index: number, body: Uint8Array, headers: MsgHdrs): boolean {
    if (this.parts[index]) return false;
    this.parts[index] = { headers: headerBlock(headers), body };
    if (--this.left > 0) return true;
    const parts = this.parts as EnvelopePart[];
    this.fit(parts);
    const h = natsHeaders();
    h.set(H.batch, String(parts.length));
    return this.msg.respond(packEnvelope(parts), { headers: h });
  }

  private fit(parts: EnvelopePart[]): void {
    let size = ENVELOPE_OVERHEAD_BYTES;
    for (const p of parts) size += partBytes(p.headers.byteLength, p.body.byteLength);
    if (size <= this.maxBytes) return;
    const bySize = parts
      .map((_, i) => i)
      .sort((a, b) => parts[b]!.body.byteLength - parts[a]!.body.byteLength);
    for (const i of bySize) {
      if (size <= this.maxBytes) return;
      const before = parts[i]!;
      const after = this.overflow(i);
      size += partBytes(after.headers.byteLength, after.body.byteLength);
      size -= partBytes(before.headers.byteLength, before.body.byteLength);
      parts[i] = after;
    }
  }
}
