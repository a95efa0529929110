// Batch before the hop: the router's requests for one route subject that arrive in the same event-loop turn leave
// in one NATS message (a batch envelope, protocol/envelope.ts), and the replica's one reply is split back per
// request. A request alone in its turn goes as a plain request, the wire every replica and raw client knows.
// Replies come back on one wildcard subscription under the connection's inbox prefix and are matched here by
// the last token of their subject, instead of one nats.js `request()` (its timer, its error object, its mux
// entry) per request. Each request keeps its own deadline: it fails on time even if others of its message wait on.
// When a replica of a subject dies or loses its NATS server, what is in flight there goes again, each request alone
// (`resend`); when the router's own connection moves to another server, everything in flight does (`resendAll`).
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  MsgHdrsImpl,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from "@nats-io/transport-node";
import {
  ENVELOPE_OVERHEAD_BYTES,
  H,
  headerBlock,
  headerBlockBytes,
  MAX_ENVELOPE_PARTS,
  packEnvelope,
  partBytes,
  SwitchyardError,
  unpackEnvelope,
} from "@switchyard/protocol";

export interface Reply {
  data: Uint8Array;
  headers: MsgHdrs | undefined;
}

/** Nothing subscribes to the route subject (nats-server's 503 status reply). */
export class NoResponders extends Error {}
/** The request's deadline passed before its reply came. */
export class ReplyTimeout extends Error {}

interface Waiting {
  readonly body: Uint8Array;
  readonly headers: MsgHdrs;
  /** Epoch ms. */
  readonly deadline: number;
  /** Bytes this request takes as a part of an envelope. */
  readonly size: number;
  settled: boolean;
  resolve(reply: Reply): void;
  reject(err: Error): void;
}

/** One message on the wire: a plain request (one part) or an envelope, waiting for its reply. */
interface Sent {
  readonly subject: string;
  readonly parts: Waiting[];
  readonly envelope: boolean;
  open: number;
  timer: NodeJS.Timeout | undefined;
}

/** setTimeout cannot wait longer than 2^31-1 ms (it would fire at once). */
const MAX_TIMER_MS = 0x7fffffff;

export class Coalescer {
  private readonly inbox: string;
  private readonly sub: Subscription;
  private readonly sent = new Map<number, Sent>();
  /** Requests of this turn by route subject, sent when the turn ends. */
  private gathering = new Map<string, Waiting[]>();
  /** Requests of this turn that go as plain requests whatever else waits (retries). */
  private lone: [string, Waiting][] = [];
  private flushing = false;
  private seq = 0;
  private closed = false;
  private gone: Error | undefined;

  constructor(private readonly nc: NatsConnection) {
    // NATS users may subscribe only under their own inbox prefix (README "NATS users").
    const prefix = (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.inbox = `${createInbox(prefix)}.`;
    this.sub = nc.subscribe(`${this.inbox}*`, { callback: (err, msg) => this.onReply(err, msg) });
    void this.sub.closed.then((err) =>
      this.failAll(
        err
          ? `the router's reply subscription failed: ${err.message}`
          : "the router's reply subscription closed",
      ),
    );
  }

  /**
   * Sends one request at the end of this turn (`alone`: as a plain request, with no others); resolves with its
   * reply, rejects NoResponders, ReplyTimeout or a TEMPORARILY_UNAVAILABLE SwitchyardError.
   */
  request(
    subject: string,
    body: Uint8Array,
    headers: MsgHdrs,
    deadline: number,
    alone = false,
  ): Promise<Reply> {
    if (this.gone) return Promise.reject(this.unavailable(this.gone.message));
    return new Promise<Reply>((resolve, reject) => {
      const w: Waiting = {
        body,
        headers,
        deadline,
        size: partBytes(headerBlockBytes(headers), body.byteLength),
        settled: false,
        resolve,
        reject,
      };
      if (alone) this.lone.push([subject, w]);
      else {
        const list = this.gathering.get(subject);
        if (list) list.push(w);
        else this.gathering.set(subject, [w]);
      }
      if (!this.flushing) {
        this.flushing = true;
        // The end of the turn, not a microtask: requests read from different sockets in one poll phase go together.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushing = false;
    const gathered = this.gathering;
    this.gathering = new Map();
    const lone = this.lone;
    this.lone = [];
    for (const [subject, w] of lone) this.send(subject, [w]);
    const room = (this.nc.info?.max_payload ?? Number.POSITIVE_INFINITY) - ENVELOPE_OVERHEAD_BYTES;
    for (const [subject, list] of gathered) {
      let group: Waiting[] = [];
      let bytes = 0;
      for (const w of list) {
        // A request that does not fit with the ones before goes with the next group (or alone: the router
        // already refused with 413 those that do not fit in a message at all).
        if (group.length > 0 && (group.length === MAX_ENVELOPE_PARTS || bytes + w.size > room)) {
          this.send(subject, group);
          group = [];
          bytes = 0;
        }
        group.push(w);
        bytes += w.size;
      }
      this.send(subject, group);
    }
    this.unsubscribeWhenDone();
  }

  private send(subject: string, parts: Waiting[]): void {
    const id = ++this.seq;
    const envelope = parts.length > 1;
    const out: Sent = { subject, parts, envelope, open: parts.length, timer: undefined };
    try {
      if (envelope) {
        const h = natsHeaders();
        h.set(H.batch, String(parts.length));
        const data = packEnvelope(parts.map((w) => ({ headers: headerBlock(w.headers), body: w.body })));
        this.nc.publish(subject, data, { reply: this.inbox + id, headers: h });
      } else {
        this.nc.publish(subject, parts[0]!.body, { reply: this.inbox + id, headers: parts[0]!.headers });
      }
    } catch (err) {
      for (const w of parts)
        this.settle(w, undefined, this.unavailable(`NATS publish failed: ${(err as Error).message}`));
      return;
    }
    this.sent.set(id, out);
    this.arm(id, out);
  }

  /** Times the earliest deadline of a message's parts still waiting. */
  private arm(id: number, out: Sent): void {
    let first = Number.POSITIVE_INFINITY;
    for (const w of out.parts) if (!w.settled && w.deadline < first) first = w.deadline;
    const wait = Math.min(Math.max(first - Date.now(), 0), MAX_TIMER_MS);
    out.timer = setTimeout(() => this.expire(id, out), wait);
  }

  private expire(id: number, out: Sent): void {
    const now = Date.now();
    for (const w of out.parts) {
      if (!w.settled && w.deadline <= now) {
        this.settle(w, undefined, new ReplyTimeout("no reply before the deadline"));
        out.open--;
      }
    }
    if (out.open === 0) this.forget(id);
    else this.arm(id, out);
  }

  /**
   * A replica of `subject`'s queue group died (its node agent said so) or lost its NATS server: whatever this
   * coalescer sent there and still waits for may have been handed to it, or answered through that server, and
   * will never be answered. Each such request goes again at once, alone, keeping its deadline; the queue group
   * hands it to a live replica, or answers no-responders (the router then holds it as for any request). The old
   * messages are forgotten, so a reply that still comes to one is dropped: each request settles once. Inference
   * is idempotent, so a request that had gone to a live replica only costs a second computation. Returns how
   * many requests went again.
   */
  resend(subject: string): number {
    return this.resendWhere((out) => out.subject === subject);
  }

  /**
   * This coalescer's own connection moved to another server: its reply subscription now lives there, and a reply
   * routed through the old server is gone. Every request still waiting goes again as `resend` sends them.
   * Returns how many did.
   */
  resendAll(): number {
    return this.resendWhere(() => true);
  }

  private resendWhere(lost: (out: Sent) => boolean): number {
    let count = 0;
    for (const [id, out] of [...this.sent]) {
      if (!lost(out)) continue;
      clearTimeout(out.timer);
      this.sent.delete(id);
      for (const w of out.parts) {
        if (w.settled) continue;
        this.send(out.subject, [w]);
        count++;
      }
    }
    this.unsubscribeWhenDone();
    return count;
  }

  private onReply(err: Error | null, msg: Msg): void {
    if (err) return; // the subscription's `closed` tells
    const id = Number(msg.subject.slice(this.inbox.length));
    const out = this.sent.get(id);
    if (!out) return; // every part already timed out
    this.forget(id);
    const h = msg.headers;
    if (h && h.code === 503 && msg.data.byteLength === 0) {
      for (const w of out.parts) this.settle(w, undefined, new NoResponders("no responders"));
      return;
    }
    const count = out.envelope ? h?.get(H.batch) : undefined;
    if (!count) {
      // A plain reply, or a replica's one answer to a whole envelope it could not read: it is every part's.
      for (const w of out.parts) this.settle(w, { data: msg.data, headers: h }, undefined);
      return;
    }
    let replies: Reply[];
    try {
      const parts = unpackEnvelope(msg.data, count);
      if (parts.length !== out.parts.length) {
        throw new Error(`${parts.length} replies for ${out.parts.length} requests`);
      }
      replies = parts.map((p) => ({ data: p.body, headers: MsgHdrsImpl.decode(p.headers) }));
    } catch (e) {
      const fail = new SwitchyardError(
        "INTERNAL_ERROR",
        `the replica's batched reply could not be read: ${(e as Error).message}`,
      );
      for (const w of out.parts) this.settle(w, undefined, fail);
      return;
    }
    for (let i = 0; i < replies.length; i++) this.settle(out.parts[i]!, replies[i], undefined);
  }

  private settle(w: Waiting, reply: Reply | undefined, err: Error | undefined): void {
    if (w.settled) return;
    w.settled = true;
    if (err) w.reject(err);
    else w.resolve(reply!);
  }

  private forget(id: number): void {
    const out = this.sent.get(id);
    if (!out) return;
    clearTimeout(out.timer);
    this.sent.delete(id);
    this.unsubscribeWhenDone();
  }

  private unsubscribeWhenDone(): void {
    if (this.closed && !this.flushing && this.sent.size === 0) this.sub.unsubscribe();
  }

  private unavailable(message: string): SwitchyardError {
    return new SwitchyardError("TEMPORARILY_UNAVAILABLE", message);
  }

  private failAll(message: string): void {
    this.gone = new Error(message);
    for (const id of [...this.sent.keys()]) {
      const out = this.sent.get(id)!;
      this.forget(id);
      for (const w of out.parts) this.settle(w, undefined, this.unavailable(message));
    }
  }

  /** Stops the reply subscription once the requests in flight are answered or timed out. */
  close(): void {
    this.closed = true;
    this.unsubscribeWhenDone();
  }
}
