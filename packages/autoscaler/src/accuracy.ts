// Live accuracy: the outcomes of feedback labels (protocol's OutcomeRecord) gathered per endpoint and served
// model, and read over windows by REQUEST time, so a label arriving hours after its request counts in the
// request's window. Pure (an injected clock, no I/O): the follower in accuracy-feed.ts feeds it.
import {
  ACCURACY_WINDOWS,
  type AccuracyWindow,
  type AccuracyWindowName,
  type EndpointAccuracy,
  type FeedbackCounts,
  type OutcomeRecord,
} from "@switchyard/protocol";

export interface AccuracyOptions {
  /** Outcomes of requests older than this are forgotten (default: the longest window, 24 h). */
  keepMs?: number;
  now?: () => number;
}

/** One joined label: its request's time and the sums of its rows. */
interface Labelled {
  requestMs: number;
  rows: number;
  correct: number;
  numericRows: number;
  absErr: number;
  sqErr: number;
}

interface EndpointState {
  labels: FeedbackCounts;
  served: Map<string, Labelled[]>;
}

/** Forgetting old outcomes scans everything; done once per this many additions (and on reads). */
const PRUNE_EVERY = 4096;

export class AccuracyWindows {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly keepMs: number;
  private readonly now: () => number;
  private addsSincePrune = 0;

  constructor(opts: AccuracyOptions = {}) {
    this.keepMs = opts.keepMs ?? Math.max(...Object.values(ACCURACY_WINDOWS));
    this.now = opts.now ?? Date.now;
  }

  add(o: OutcomeRecord): void {
    const e = this.stateOf(o.endpoint_name);
    // A label is counted once, by its primary outcome; a shadow's outcome of the same label only scores.
    if (!o.shadow) {
      e.labels.received++;
      e.labels[o.result]++;
    }
    if (o.result !== "joined" || o.served_model_name === null || o.request_ms === null) return;
    if (o.request_ms < this.now() - this.keepMs) return;
    let list = e.served.get(o.served_model_name);
    if (!list) {
      list = [];
      e.served.set(o.served_model_name, list);
    }
    list.push({
      requestMs: o.request_ms,
      rows: o.rows,
      correct: o.correct,
      numericRows: o.numeric_rows,
      absErr: o.abs_err_sum,
      sqErr: o.sq_err_sum,
    });
    if (++this.addsSincePrune >= PRUNE_EVERY) this.prune();
  }

  /**
   * Labelled rows of `served`'s requests made at or after `sinceMs`, and their exact-match accuracy (0..1);
   * undefined when there are none. What a canary's accuracy guard reads.
   */
  since(
    endpoint: string,
    served: string,
    sinceMs: number,
  ): { labelled: number; accuracy: number } | undefined {
    const w = this.window(this.endpoints.get(endpoint)?.served.get(served) ?? [], sinceMs);
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
        .map(([served, list]) => ({
          name: served,
          windows: Object.fromEntries(
            Object.entries(ACCURACY_WINDOWS).map(([w, ms]) => [w, this.window(list, now - ms)]),
          ) as Record<AccuracyWindowName, AccuracyWindow>,
        })),
      labels: { ...e.labels },
    };
  }

  /** Endpoints that received labels, by name. */
  endpointNames(): string[] {
    return [...this.endpoints.keys()].sort();
  }

  private window(list: readonly Labelled[], fromMs: number): AccuracyWindow {
    let requests = 0;
    let rows = 0;
    let correct = 0;
    let numeric = 0;
    let abs = 0;
    let sq = 0;
    for (const l of list) {
      if (l.requestMs < fromMs) continue;
      requests++;
      rows += l.rows;
      correct += l.correct;
      numeric += l.numericRows;
      abs += l.absErr;
      sq += l.sqErr;
    }
    return {
      labelled_requests: requests,
      labelled_rows: rows,
      accuracy: rows > 0 ? correct / rows : null,
      mae: numeric > 0 ? abs / numeric : null,
      rmse: numeric > 0 ? Math.sqrt(sq / numeric) : null,
    };
  }

  private stateOf(endpoint: string): EndpointState {
    let e = this.endpoints.get(endpoint);
    if (!e) {
      e = {
        labels: { received: 0, joined: 0, unknown: 0, duplicate: 0, invalid: 0 },
        served: new Map(),
      };
      this.endpoints.set(endpoint, e);
    }
    return e;
  }

  private prune(): void {
    this.addsSincePrune = 0;
    const from = this.now() - this.keepMs;
    for (const e of this.endpoints.values()) {
      for (const [served, list] of e.served) {
        const kept = list.filter((l) => l.requestMs >= from);
        if (kept.length === 0) e.served.delete(served);
        else if (kept.length < list.length) e.served.set(served, kept);
      }
    }
  }
}
