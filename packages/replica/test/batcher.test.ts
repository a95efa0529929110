// The batching and admission policy with an injected clock: size trigger, delay trigger, growth while busy,
// no mixing of keys, oversize requests alone, queue bound, deadlines.
import { describe, expect, it } from "vitest";
import { type BatchConfig, Batcher, type Pending } from "../src/batcher.js";

interface Item extends Pending {
  id: number;
}

class FakeClock {
  t = 0;
  timers: { at: number; fn: () => void; live: boolean }[] = [];
  now = () => this.t;
  setTimer = (fn: () => void, delayUs: number) => {
    const timer = { at: this.t + delayUs, fn, live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  };
  /** Advances time, firing due timers in order. */
  advance(us: number): void {
    const end = this.t + us;
    for (;;) {
      const due = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.live = false;
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }
}

function setup(config: Partial<BatchConfig> = {}, slots = 1) {
  const clock = new FakeClock();
  const batches: Item[][] = [];
  const expired: Item[] = [];
  const b = new Batcher<Item>(
    { max_batch_size: 4, max_delay_us: 1000, max_queue: 100, ...config },
    slots,
    clock,
    { dispatch: (batch) => batches.push(batch), expire: (item) => expired.push(item) },
  );
  let id = 0;
  const offer = (rows = 1, key = "a", deadlineUs = Number.POSITIVE_INFINITY) =>
    b.offer({ id: id++, key, rows, arrivedUs: clock.t, deadlineUs });
  const ids = () => batches.map((batch) => batch.map((x) => x.id));
  return { clock, b, batches, expired, offer, ids };
}

describe("Batcher", () => {
  it("dispatches when max_batch_size rows wait, without waiting for the delay", () => {
    const s = setup();
    for (let i = 0; i < 3; i++) s.offer();
    expect(s.batches).toHaveLength(0);
    s.offer();
    expect(s.ids()).toEqual([[0, 1, 2, 3]]);
    expect(s.b.inFlight).toBe(4);
    expect(s.b.queued).toBe(0);
  });

  it("dispatches max_delay_us after the first request of the batch arrived", () => {
    const s = setup();
    s.offer();
    s.clock.advance(600);
    s.offer();
    s.clock.advance(399);
    expect(s.batches).toHaveLength(0);
    s.clock.advance(1);
    expect(s.ids()).toEqual([[0, 1]]);
  });

  it("with a zero delay still groups what arrived before the timer ran", () => {
    const s = setup({ max_delay_us: 0 });
    s.offer();
    s.offer();
    expect(s.batches).toHaveLength(0);
    s.clock.advance(0);
    expect(s.ids()).toEqual([[0, 1]]);
  });

  it("forms batches only when a slot is free, so they grow while every worker is busy", () => {
    const s = setup({ max_batch_size: 8 });
    s.offer();
    s.clock.advance(1000);
    expect(s.ids()).toEqual([[0]]);
    for (let i = 0; i < 5; i++) s.offer();
    s.clock.advance(5000); // long past the delay, but the only slot is busy
    expect(s.batches).toHaveLength(1);
    expect(s.b.queued).toBe(5);
    s.b.done(s.batches[0]!);
    expect(s.ids()).toEqual([[0], [1, 2, 3, 4, 5]]);
  });

  it("never mixes keys; the key whose oldest request waited longest goes first", () => {
    const s = setup({}, 2);
    s.offer(1, "a");
    s.offer(2, "b");
    s.offer(1, "a");
    s.clock.advance(1000);
    expect(s.ids()).toEqual([[0, 2], [1]]);
    expect(s.batches[1]!.every((x) => x.key === "b")).toBe(true);
  });

  it("runs a request larger than max_batch_size alone, and never splits one", () => {
    const s = setup({}, 3);
    s.offer(3);
    s.offer(10);
    s.offer(1);
    // 13 rows wait (size trigger): 3 + 10 > 4 closes the first batch, the oversize one goes alone, and the
    // last one (1 row) waits for its delay.
    expect(s.ids()).toEqual([[0], [1]]);
    s.clock.advance(1000);
    expect(s.ids()).toEqual([[0], [1], [2]]);
    expect(s.batches.map((b) => b.reduce((n, x) => n + x.rows, 0))).toEqual([3, 10, 1]);
  });

  it("refuses requests beyond max_queue (queued plus in flight)", () => {
    const s = setup({ max_queue: 3, max_batch_size: 1 });
    expect(s.offer()).toBe("queued"); // dispatched at once: in flight
    expect(s.offer()).toBe("queued");
    expect(s.offer()).toBe("queued");
    expect(s.offer()).toBe("full");
    expect(s.b.inFlight + s.b.queued).toBe(3);
    s.b.done(s.batches[0]!);
    expect(s.offer()).toBe("queued");
  });

  it("refuses a request whose deadline already passed and expires one that passes while queued", () => {
    const s = setup({ max_batch_size: 1 });
    s.clock.t = 100;
    expect(s.offer(1, "a", 50)).toBe("expired");
    s.offer(); // runs
    s.offer(1, "a", 300); // waits behind it
    s.clock.advance(500);
    s.b.done(s.batches[0]!);
    expect(s.expired.map((x) => x.id)).toEqual([2]);
    expect(s.ids()).toEqual([[1]]);
    expect(s.b.queued).toBe(0);
  });

  it("validates its options, naming the bad one", () => {
    const clock = new FakeClock();
    const sink = { dispatch: () => {}, expire: () => {} };
    expect(() => new Batcher({ max_batch_size: 0, max_delay_us: 0, max_queue: 1 }, 1, clock, sink)).toThrow(
      "options.max_batch_size must be a positive integer",
    );
    expect(() => new Batcher({ max_batch_size: 1, max_delay_us: -1, max_queue: 1 }, 1, clock, sink)).toThrow(
      "options.max_delay_us",
    );
  });
});
