// The coalescer against a real nats-server, with hand-written responders on a subject: what goes on the wire
// (plain requests, envelopes, their caps), how replies are matched back, and every way a reply can go wrong.
import {
  connect,
  type Msg,
  MsgHdrsImpl,
  type NatsConnection,
  headers as natsHeaders,
} from "@nats-io/transport-node";
import { H, headerBlock, MAX_ENVELOPE_PARTS, packEnvelope, unpackEnvelope } from "@switchyard/protocol";
import { describe, expect, inject, it } from "vitest";
import { Coalescer, NoResponders, type Reply, ReplyTimeout } from "../src/coalescer.js";
import { natsPerFile, uniqueCluster } from "./fixtures/doubles.js";

const files = natsPerFile();
const utf8 = new TextEncoder();
const text = new TextDecoder();

function setup(nc: NatsConnection = files.nc()) {
  const coalescer = new Coalescer(nc);
  files.cleanups.push(() => coalescer.close());
  return coalescer;
}

/** A subject nothing else uses, and every message that reaches it. */
async function responder(answer: (msg: Msg) => void = () => {}) {
  const nc = files.nc();
  const subject = `${uniqueCluster()}.rt`;
  const seen: Msg[] = [];
  const sub = nc.subscribe(subject, {
    callback: (_err, msg) => {
      seen.push(msg);
      answer(msg);
    },
  });
  files.cleanups.push(() => sub.unsubscribe());
  await nc.flush();
  return { subject, seen };
}

const headersWith = (id: string) => {
  const h = natsHeaders();
  h.set(H.requestId, id);
  return h;
};

/** Echoes each part as the replica would: its own reply headers (the request id) and body, in order. */
function echo(msg: Msg): void {
  const count = msg.headers?.get(H.batch);
  if (!count) {
    msg.respond(msg.data, { headers: headersWith(msg.headers?.get(H.requestId) ?? "") });
    return;
  }
  const parts = unpackEnvelope(msg.data, count).map((p) => ({
    headers: headerBlock(headersWith(MsgHdrsImpl.decode(p.headers).get(H.requestId))),
    body: p.body,
  }));
  const h = natsHeaders();
  h.set(H.batch, count);
  msg.respond(packEnvelope(parts), { headers: h });
}

const later = (ms = 20_000) => Date.now() + ms;

async function outcome(p: Promise<Reply>): Promise<Reply | Error> {
  return p.catch((err: Error) => err);
}

describe("Coalescer", () => {
  it("sends one request alone as a plain request, and the requests of one turn as one envelope", async () => {
    const c = setup();
    const { subject, seen } = await responder(echo);
    const alone = await c.request(subject, utf8.encode("solo"), headersWith("s"), later());
    expect(text.decode(alone.data)).toBe("solo");
    expect(alone.headers?.get(H.requestId)).toBe("s");
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers?.get(H.batch) ?? "").toBe("");
    expect(seen[0]!.headers?.get(H.requestId)).toBe("s");

    const many = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => c.request(subject, utf8.encode(`body ${i}`), headersWith(`r${i}`), later())),
    );
    expect(seen).toHaveLength(2);
    expect(seen[1]!.headers?.get(H.batch)).toBe("5");
    many.forEach((r, i) => {
      expect(text.decode(r.data)).toBe(`body ${i}`);
      expect(r.headers?.get(H.requestId)).toBe(`r${i}`);
    });
  });

  it("caps an envelope by count and by the server's max_payload; a retry goes alone", async () => {
    const c = setup();
    const { subject, seen } = await responder(echo);
    const n = MAX_ENVELOPE_PARTS + 3;
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        c.request(subject, utf8.encode(`${i}`), headersWith(`${i}`), later()),
      ),
    );
    expect(seen.map((m) => m.headers?.get(H.batch))).toEqual([String(MAX_ENVELOPE_PARTS), "3"]);
    replies.forEach((r, i) => {
      expect(text.decode(r.data)).toBe(`${i}`);
    });

    const max = files.nc().info!.max_payload;
    const big = new Uint8Array(Math.floor(max * 0.4));
    seen.length = 0;
    const sizes = await Promise.all(
      [0, 1, 2].map((i) =>
        c.request(subject, big, headersWith(`big${i}`), later()).then((r) => r.data.byteLength),
      ),
    );
    expect(sizes).toEqual([big.byteLength, big.byteLength, big.byteLength]);
    // Two fit together; the third goes alone.
    expect(seen.map((m) => m.headers?.get(H.batch) ?? "")).toEqual(["2", ""]);

    seen.length = 0;
    await Promise.all([
      c.request(subject, utf8.encode("a"), headersWith("a"), later()),
      c.request(subject, utf8.encode("retry"), headersWith("b"), later(), true),
      c.request(subject, utf8.encode("c"), headersWith("c"), later()),
    ]);
    expect(seen.map((m) => m.headers?.get(H.batch) ?? "").sort()).toEqual(["", "2"]);
  });

  it("keeps requests for different subjects apart", async () => {
    const c = setup();
    const one = await responder(echo);
    const two = await responder(echo);
    const [a, b, d] = await Promise.all([
      c.request(one.subject, utf8.encode("a"), headersWith("a"), later()),
      c.request(two.subject, utf8.encode("b"), headersWith("b"), later()),
      c.request(one.subject, utf8.encode("d"), headersWith("d"), later()),
    ]);
    expect([a, b, d].map((r) => text.decode(r.data))).toEqual(["a", "b", "d"]);
    expect(one.seen.map((m) => m.headers?.get(H.batch))).toEqual(["2"]);
    expect(two.seen.map((m) => m.headers?.get(H.batch) ?? "")).toEqual([""]);
  });

  it("tells every request of an envelope that nothing answers the subject", async () => {
    const c = setup();
    const subject = `${uniqueCluster()}.nobody`;
    const got = await Promise.all(
      [0, 1, 2].map((i) => outcome(c.request(subject, utf8.encode("x"), headersWith(`${i}`), later()))),
    );
    for (const g of got) expect(g).toBeInstanceOf(NoResponders);
  });

  it("fails each request at its own deadline, and ignores a reply that comes after", async () => {
    const c = setup();
    const held: Msg[] = [];
    const { subject } = await responder((m) => held.push(m));
    const t0 = Date.now();
    const early = outcome(c.request(subject, utf8.encode("early"), headersWith("e"), t0 + 200));
    const late = outcome(c.request(subject, utf8.encode("late"), headersWith("l"), t0 + 20_000));
    const first = await early;
    expect(first).toBeInstanceOf(ReplyTimeout);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    // The other request of the envelope is still waiting; the envelope's reply answers it alone.
    expect(held).toHaveLength(1);
    echo(held[0]!);
    const second = await late;
    expect(text.decode((second as Reply).data)).toBe("late");
  });

  it("gives a replica's one reply to a whole envelope to every request in it", async () => {
    const c = setup();
    const { subject } = await responder((m) => {
      const h = natsHeaders();
      h.set(H.errorCode, "BAD_REQUEST");
      m.respond(utf8.encode('{"error_code":"BAD_REQUEST","message":"malformed batch envelope"}'), {
        headers: h,
      });
    });
    const got = await Promise.all(
      [0, 1].map((i) => c.request(subject, utf8.encode("x"), headersWith(`${i}`), later())),
    );
    for (const r of got) {
      expect(r.headers?.get(H.errorCode)).toBe("BAD_REQUEST");
      expect(text.decode(r.data)).toContain("malformed batch envelope");
    }
  });

  it("fails every request of an envelope whose reply cannot be read with INTERNAL_ERROR", async () => {
    const c = setup();
    const replies: [string, Uint8Array][] = [
      ["2", Uint8Array.from([9, 9, 9])],
      ["1", packEnvelope([{ headers: new Uint8Array(0), body: utf8.encode("one") }])],
    ];
    for (const [count, data] of replies) {
      const { subject } = await responder((m) => {
        const h = natsHeaders();
        h.set(H.batch, count);
        m.respond(data, { headers: h });
      });
      const got = await Promise.all(
        [0, 1].map((i) => outcome(c.request(subject, utf8.encode("x"), headersWith(`${i}`), later()))),
      );
      for (const g of got) {
        expect(g).toMatchObject({ code: "INTERNAL_ERROR" });
        expect((g as Error).message).toMatch(/^the replica's batched reply could not be read/);
      }
    }
  });

  it("sends everything in flight again, each alone, on every subject; late replies to the old messages are dropped", async () => {
    const c = setup();
    const heldOne: Msg[] = [];
    const heldTwo: Msg[] = [];
    const one = await responder((m) => heldOne.push(m));
    const two = await responder((m) => heldTwo.push(m));
    const deadline = later();
    const pending = [
      c.request(one.subject, utf8.encode("a"), headersWith("a"), deadline),
      c.request(one.subject, utf8.encode("b"), headersWith("b"), deadline),
      c.request(two.subject, utf8.encode("c"), headersWith("c"), deadline),
    ];
    await expect.poll(() => heldOne.length + heldTwo.length).toBe(2);
    expect(heldOne[0]!.headers?.get(H.batch)).toBe("2");
    // One already answered: nothing of it goes again.
    const answered = c.request(two.subject, utf8.encode("d"), headersWith("d"), deadline);
    await expect.poll(() => heldTwo.length).toBe(2);
    echo(heldTwo[1]!);
    expect(text.decode((await answered).data)).toBe("d");

    expect(c.resendAll()).toBe(3);
    await expect.poll(() => heldOne.length + heldTwo.length).toBe(6);
    const again = [...heldOne.slice(1), ...heldTwo.slice(2)];
    expect(again.map((m) => m.headers?.get(H.batch) ?? "")).toEqual(["", "", ""]);
    expect(again.map((m) => m.headers?.get(H.requestId)).sort()).toEqual(["a", "b", "c"]);
    // The old messages' replies reach nobody; the new ones settle each request once, with its own reply.
    echo(heldOne[0]!);
    echo(heldTwo[0]!);
    await files.nc().flush();
    for (const m of again) m.respond(utf8.encode(`again ${m.headers?.get(H.requestId)}`));
    expect((await Promise.all(pending)).map((r) => text.decode(r.data))).toEqual([
      "again a",
      "again b",
      "again c",
    ]);
    // Nothing left in flight: a second call sends nothing.
    expect(c.resendAll()).toBe(0);
    expect(c.resend(one.subject)).toBe(0);
  });

  it("takes replies under the connection's own inbox prefix (NATS users may subscribe only there)", async () => {
    const nc = await connect({ servers: inject("natsUrl"), inboxPrefix: "_INBOX_alice" });
    files.cleanups.push(() => nc.close());
    const c = setup(nc);
    const { subject, seen } = await responder(echo);
    const got = await Promise.all(
      [0, 1].map((i) => c.request(subject, utf8.encode(`${i}`), headersWith(`${i}`), later())),
    );
    expect(got.map((r) => text.decode(r.data))).toEqual(["0", "1"]);
    expect(seen[0]!.reply).toMatch(/^_INBOX_alice\./);
  });

  it("fails requests in flight when the connection closes, and refuses new ones", async () => {
    const nc = await connect({ servers: inject("natsUrl") });
    const c = setup(nc);
    const { subject } = await responder();
    const pending = outcome(c.request(subject, utf8.encode("x"), headersWith("x"), later()));
    await files.nc().flush();
    await nc.flush();
    await nc.close();
    expect(await pending).toMatchObject({ code: "TEMPORARILY_UNAVAILABLE" });
    expect(await outcome(c.request(subject, utf8.encode("y"), headersWith("y"), later()))).toMatchObject({
      code: "TEMPORARILY_UNAVAILABLE",
    });
  });
});
