// The reply to a batch envelope, against a recording stand-in for the NATS message: sent once, when the last
// part is answered, in the envelope's order; a second answer to a part changes nothing; replies too large to
// travel together are swapped, largest first, for the retryable error the replica gives.
import type { Msg } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { H, unpackEnvelope } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { EnvelopeReply } from "../src/envelope-reply.js";

const utf8 = new TextEncoder();
const text = new TextDecoder();

function recorder() {
  const sent: { data: Uint8Array; count: string | undefined }[] = [];
  const msg = {
    respond(data: Uint8Array, opts: { headers: ReturnType<typeof natsHeaders> }) {
      sent.push({ data, count: opts.headers.get(H.batch) });
      return true;
    },
  } as unknown as Msg;
  return { msg, sent };
}

const headersOf = (id: string) => {
  const h = natsHeaders();
  h.set(H.requestId, id);
  return { headers: h };
};

const bodies = (data: Uint8Array, count: string) =>
  unpackEnvelope(data, count).map((p) => text.decode(p.body));

describe("envelope reply", () => {
  it("sends once, after the last part, in order; a part answered twice keeps its first answer", () => {
    const { msg, sent } = recorder();
    const reply = new EnvelopeReply(msg, 3, Number.POSITIVE_INFINITY, () => {
      throw new Error("nothing overflows");
    });
    expect(reply.part(2).respond(utf8.encode("c"), headersOf("2"))).toBe(true);
    expect(reply.part(0).respond(utf8.encode("a"), headersOf("0"))).toBe(true);
    expect(reply.part(0).respond(utf8.encode("again"), headersOf("0"))).toBe(false);
    expect(sent).toHaveLength(0);
    reply.part(1).respond(utf8.encode("b"), headersOf("1"));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.count).toBe("3");
    expect(bodies(sent[0]!.data, "3")).toEqual(["a", "b", "c"]);
    expect(reply.part(1).respond(utf8.encode("late"), headersOf("1"))).toBe(false);
    expect(sent).toHaveLength(1);
  });

  it("swaps the largest replies for the overflow error until the envelope fits", () => {
    const { msg, sent } = recorder();
    const swapped: number[] = [];
    const reply = new EnvelopeReply(msg, 3, 500, (i) => {
      swapped.push(i);
      return { headers: new Uint8Array(0), body: utf8.encode("retry") };
    });
    reply.part(0).respond(utf8.encode("x".repeat(600)), headersOf("0"));
    reply.part(1).respond(utf8.encode("small"), headersOf("1"));
    reply.part(2).respond(utf8.encode("y".repeat(700)), headersOf("2"));
    expect(swapped).toEqual([2, 0]);
    expect(bodies(sent[0]!.data, "3")).toEqual(["retry", "small", "retry"]);
  });
});
