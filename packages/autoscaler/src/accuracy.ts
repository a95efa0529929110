// Live accuracy: the outcomes of feedback labels (protocol's OutcomeRecord) gathered per endpoint and served
// model, and read over windows by REQUEST time, so a label arriving hours after its request counts in the
// request's window. Pure (an injected clock, no I/O): the follower in accuracy-feed.ts feeds it.
//
// Outcomes are summed into buckets of BUCKET_MS of request time, not kept one by one, so memory and the cost of a
// read depend on the time kept (24 h), not on how many labels arrive. The price is granularity: a window or a
// `since` starts at the start of the bucket holding its start, so it may count up to BUCKET_MS of earlier requests.
import {
  ACCURACY_WINDOWS,
  type AccuracyWindow,
  type AccuracyWindowName,
  type EndpointAccuracy,
  type FeedbackCounts,
  type OutcomeRecord,
} from "@switchyard/protocol";

/** Width of a bucket of request time: the granularity of every window and of `since`. */
export const BUCKET_MS = 10_000;
/**
 * Endpoints counted under their own name, beyond those with a joined outcome (which exist: a join needs a capture
 * of the endpoint). Any name can be published on the feedback subject; labels of further names that never joined
 * are counted together under OVERFLOW_ENDPOINT, so arbitrary names cannot grow memory or `/metrics` without bound.
 */
export const MAX_UNJOINED_ENDPOINTS = 1_000;
/** Where labels of endpoint names beyond MAX_UNJOINED_ENDPOINTS are counted (as the routers' stats do). */
export const OVERFLOW_ENDPOINT = "*";

export interface AccuracyOptions {
  /** Outcomes of requests older than this are forgotten (default: the longest window, 24 h). */
  keepMs?: number;
  /** Endpoint names tracked without a joined outcome (default MAX_UNJOINED_ENDPOINTS). */
  maxUnjoinedEndpoints?: number;
  now?: () => number;
}

/** The sums of the joined labels of one bucket of request time. */
interface Bucket {
  requests: number;
  rows: number;
  correct: number;
  numericRows: number;
  absErr: number;
  sqErr: number;
}

interface EndpointState {
  labels: FeedbackCounts;
  /** Whether a joined outcome was seen: such an endpoint exists and is never lumped into OVERFLOW_ENDPOINT. */
  joined: boolean;
  /** Per served model, the buckets by index (request time / BUCKET_MS). */
  served: Map<string, Map<number, Bucket>>;
}

export class AccuracyWindows {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly keepMs: number;
  private readonly maxUnjoined: number;
  private readonly now: () => number;
  private unjoined = 0;
  /** The oldest bucket index kept at the last prune; buckets only expire when it moves. */
  private prunedFrom = Number.NEGATIVE_INFINITY;

  constructor(opts: AccuracyOptions = {}) {
    this.keepMs = opts.keepMs ?? Math.max(...Object.values(ACCURACY_WINDOWS));
    this.maxUnjoined = opts.maxUnjoinedEndpoints ?? MAX_UNJOINED_ENDPOINTS;
    this.now = opts.now ?? Date.now;
  }

  add(o: OutcomeRecord): void {
    const served = o.result === "joined" ? o.served_model_name : null;
    const e = this.stateOf(o.endpoint_name, served !== null && o.request_ms !== null);
    // A label is counted once, by its primary outcome; a shadow's outcome of the same label only scores.
    if (!o.shadow) {
      e.labels.received++;
      e.labels[o.result]++;
    }
    if (served === null || o.request_ms === null) return;
    this.prune();
    const index = bucketOf(o.request_ms);
    if (index < this.prunedFrom) return;
    let buckets = e.served.get(served);
    if (!buckets) {
      buckets = new Map();
      e.served.set(served, buckets);
    }
    let b = buckets.get(index);
    if (!b) {
      b = { requests: 0, rows: 0, correct: 0, numericRows: 0, absErr: 0, sqErr: 0 };
      buckets.set(index, b);
    }
    b.requests++;
    b.rows += o.rows;
    b.correct += o.correct;
    b.numericRows += o.numeric_rows;
    b.absErr += o.abs_err_sum;
    b.sqErr += o.sq_err_sum;
  }

  /**
   * Labelled rows of `served`'s requests made since `sinceMs` — from the start of the BUCKET_MS bucket holding
   * it — and their exact-match accuracy (0..1); undefined when there are none. What a canary's accuracy guard
   * reads.
   */
  since(
    endpoint: string,
    served: string,
    sinceMs: number,
  ): { labelled: number; accuracy: number } | undefined {
    this.prune();
    const buckets = this.endpoints.get(endpoint)?.served.get(served);
    if (!buckets) return undefined;
    const w = window(buckets, sinceMs);
    return w.labelled_rows > 0 ? { labelled: w.labelled_rows, accuracy: w.accuracy! } : undefined;
  }

  /** One endpoint's accuracy per served model and window, and its label counts; undefined without labels. */
  endpoint(name: string): EndpointAccuracy | undefined {
    const e = this.endpoints.get(name);
    if (!e) return undefined;
    this.prune();
    const now = this.now();
    return {
      served_models: [...e.served]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([served, buckets]) => ({
          name: served,
          windows: Object.fromEntries(
            Object.entries(ACCURACY_WINDOWS).map(([w, ms]) => [w, window(buckets, now - ms)]),
          ) as Record<AccuracyWindowName, AccuracyWindow>,
        })),
      labels: { ...e.labels },
    };
  }

  /** Endpoints that received labels, by name (OVERFLOW_ENDPOINT among them once names overflowed). */
  endpointNames(): string[] {
    return [...this.endpoints.keys()].sort();
  }

  private stateOf(name: string, isJoin: boolean): EndpointState {
    const endpoint =
      isJoin || this.endpoints.has(name) || this.unjoined < this.maxUnjoined ? name : OVERFLOW_ENDPOINT;
    let e = this.endpoints.get(endpoint);
    if (!e) {
      e = {
        labels: { received: 0, joined: 0, unknown: 0, duplicate: 0, invalid: 0 },
        joined: false,
        served: new Map(),
      };
      this.endpoints.set(endpoint, e);
      // The overflow entry is not one of the names it stands for.
      if (endpoint !== OVERFLOW_ENDPOINT) this.unjoined++;
    }
    if (isJoin && !e.joined) {
      e.joined = true;
      this.unjoined--;
    }
    return e;
  }

  /** Drops the buckets that no window can reach any more; a no-op until the oldest kept bucket moves on. */
  private prune(): void {
    const from = bucketOf(this.now() - this.keepMs);
    if (from <= this.prunedFrom) return;
    this.prunedFrom = from;
    for (const e of this.endpoints.values()) {
      for (const [served, buckets] of e.served) {
        for (const index of buckets.keys()) if (index < from) buckets.delete(index);
        if (buckets.size === 0) e.served.delete(served);
      }
    }
  }
}

function bucketOf(ms: number): number {
  return Math.floor(ms / BUCKET_MS);
}

/** The sums of the buckets from the one holding `fromMs` on. */
function window(buckets: ReadonlyMap<number, Bucket>, fromMs: number): AccuracyWindow {
  const from = bucketOf(fromMs);
  let requests = 0;
  let rows = 0;
  let correct = 0;
  let numeric = 0;
  let abs = 0;
  let sq = 0;
  for (const [index, b] of buckets) {
    if (index < from) continue;
    requests += b.requests;
    rows += b.rows;
    correct += b.correct;
    numeric += b.numericRows;
    abs += b.absErr;
    sq += b.sqErr;
  }
  return {
    labelled_requests: requests,
    labelled_rows: rows,
    accuracy: rows > 0 ? correct / rows : null,
    mae: numeric > 0 ? abs / numeric : null,
    rmse: numeric > 0 ? Math.sqrt(sq / numeric) : null,
  };
}
