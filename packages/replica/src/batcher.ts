// The dynamic batcher and admission policy of a replica, with Triton's semantics: pure (an injected clock
// and timer, no I/O, no model), so every rule below is unit-tested. It never mixes requests of different keys.
//
// - A request is admitted while queued + in-flight requests stay under `max_queue`; else it is refused.
// - Batches form only when a worker slot is free. A key's batch is dispatched once `max_batch_size` rows
//   wait, or `max_delay_us` after its oldest waiting request arrived. While every slot is busy requests
//   accumulate, so batches grow with load.
// - A batch takes a key's waiting requests in arrival order up to `max_batch_size` rows; a request larger
//   than that runs alone. Requests whose deadline passed before dispatch are expired, never run.
import { REPLICA_DEFAULTS as PROTOCOL_DEFAULTS } from "@switchyard/protocol";

/** Batching and admission settings; `ReplicaSpec` fields of the same names override `REPLICA_DEFAULTS`. */
export interface BatchConfig {
  max_batch_size: number;
  max_delay_us: number;
  max_queue: number;
}

/**
 * The one default config (owned by `protocol`, which the coordinator fills into every ReplicaSpec), re-exported
 * here beside the policy it configures. Note on max_delay_us: Node timers fire at 1 ms granularity, so any
 * non-zero delay costs ≥ 1 ms per request at low load; with 0 batches still form from what arrived in the same
 * I/O tick and from the backlog that builds while every worker is busy (Triton's default is 0 too).
 */
export const REPLICA_DEFAULTS: Readonly<BatchConfig> = PROTOCOL_DEFAULTS;

export interface Pending {
  /** Requests with different keys (input names, dtypes, trailing shapes, params) never share a batch. */
  key: string;
  rows: number;
  /** Clock time (µs) of arrival. */
  arrivedUs: number;
  /** Clock time (µs) after which the request must not run. */
  deadlineUs: number;
}

export interface BatchClock {
  /** Monotonic microseconds. */
  now(): number;
  /** Calls `fn` after `delayUs` (0: once the current tick's I/O is handled); returns a cancel function. */
  setTimer(fn: () => void, delayUs: number): () => void;
}

export interface BatchSink<T> {
  /** Runs a batch on a worker slot; the shell calls `Batcher.done(batch)` when it has finished. */
  dispatch(batch: T[]): void;
  /** A request whose deadline passed while it waited: answer DEADLINE_EXCEEDED. */
  expire(item: T): void;
}

export type Admission = "queued" | "full" | "expired";

interface KeyQueue<T> {
  items: T[];
  rows: number;
}

export class Batcher<T extends Pending> {
  private readonly queues = new Map<string, KeyQueue<T>>();
  private freeSlots: number;
  private waiting = 0;
  private running = 0;
  private cancelTimer: (() => void) | null = null;
  private timerDueUs = Number.POSITIVE_INFINITY;

  constructor(
    readonly config: Readonly<BatchConfig>,
    readonly slots: number,
    private readonly clock: BatchClock,
    private readonly sink: BatchSink<T>,
  ) {
    for (const k of ["max_batch_size", "max_queue"] as const) {
      if (!Number.isInteger(config[k]) || config[k] < 1) {
        throw new RangeError(`options.${k} must be a positive integer, got ${config[k]}`);
      }
    }
    if (!Number.isInteger(config.max_delay_us) || config.max_delay_us < 0) {
      throw new RangeError(`options.max_delay_us must be a non-negative integer, got ${config.max_delay_us}`);
    }
    if (!Number.isInteger(slots) || slots < 1)
      throw new RangeError(`slots must be a positive integer, got ${slots}`);
    this.freeSlots = slots;
  }

  /** Requests waiting for a batch. */
  get queued(): number {
    return this.waiting;
  }

  /** Requests in batches that are running. */
  get inFlight(): number {
    return this.running;
  }

  /** Admits a request, or refuses it: its deadline already passed, or `max_queue` is reached. */
  offer(item: T): Admission {
    if (item.deadlineUs <= this.clock.now()) return "expired";
    if (this.waiting + this.running >= this.config.max_queue) return "full";
    let q = this.queues.get(item.key);
    if (!q) {
      q = { items: [], rows: 0 };
      this.queues.set(item.key, q);
    }
    q.items.push(item);
    q.rows += item.rows;
    this.waiting++;
    // A full batch goes now; otherwise the timer decides, so requests arriving in the same tick (one socket
    // read holds many messages) share a batch even with a zero delay.
    if (q.rows >= this.config.max_batch_size) this.schedule();
    else this.arm(this.clock.now());
    return "queued";
  }

  /** A dispatched batch finished (successfully or not): its slot is free again. */
  done(batch: readonly T[]): void {
    this.running -= batch.length;
    this.freeSlots++;
    this.schedule();
  }

  /** Dispatches every batch that is due while slots are free, and arms the timer for the next one. */
  private schedule(): void {
    const now = this.clock.now();
    while (this.freeSlots > 0) {
      const q = this.dueQueue(now);
      if (!q) break;
      const batch = this.take(q, now);
      if (batch.length === 0) continue;
      this.freeSlots--;
      this.running += batch.length;
      this.sink.dispatch(batch);
    }
    this.arm(now);
  }

  /** The due queue whose oldest request arrived first: full, or waited out its delay. */
  private dueQueue(now: number): KeyQueue<T> | undefined {
    let best: KeyQueue<T> | undefined;
    let bestArrived = Number.POSITIVE_INFINITY;
    for (const [key, q] of this.queues) {
      const head = q.items[0];
      if (!head) {
        this.queues.delete(key);
        continue;
      }
      const due = q.rows >= this.config.max_batch_size || now - head.arrivedUs >= this.config.max_delay_us;
      if (due && head.arrivedUs < bestArrived) {
        best = q;
        bestArrived = head.arrivedUs;
      }
    }
    return best;
  }

  private take(q: KeyQueue<T>, now: number): T[] {
    const batch: T[] = [];
    let rows = 0;
    while (q.items.length > 0) {
      const item = q.items[0]!;
      if (item.deadlineUs <= now) {
        q.items.shift();
        q.rows -= item.rows;
        this.waiting--;
        this.sink.expire(item);
        continue;
      }
      if (batch.length > 0 && rows + item.rows > this.config.max_batch_size) break;
      q.items.shift();
      q.rows -= item.rows;
      this.waiting--;
      batch.push(item);
      rows += item.rows;
      if (rows >= this.config.max_batch_size) break;
    }
    return batch;
  }

  /** One timer, at the earliest moment a waiting request's delay runs out (only useful with a free slot). */
  private arm(now: number): void {
    let due = Number.POSITIVE_INFINITY;
    if (this.freeSlots > 0) {
      for (const q of this.queues.values()) {
        const head = q.items[0];
        if (head) due = Math.min(due, head.arrivedUs + this.config.max_delay_us);
      }
    }
    if (due === this.timerDueUs) return;
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.timerDueUs = due;
    if (due === Number.POSITIVE_INFINITY) return;
    this.cancelTimer = this.clock.setTimer(
      () => {
        this.cancelTimer = null;
        this.timerDueUs = Number.POSITIVE_INFINITY;
        this.schedule();
      },
      Math.max(0, due - now),
    );
  }

  /** Cancels the timer (the owner is shutting down and answers what is left itself). */
  dispose(): T[] {
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.timerDueUs = Number.POSITIVE_INFINITY;
    const left: T[] = [];
    for (const q of this.queues.values()) left.push(...q.items);
    this.queues.clear();
    this.waiting = 0;
    return left;
  }
}
