// Windows over the cumulative stats of every replica and router: per endpoint and served model, requests,
// errors, rps and p50/p95/p99 over the last 1 and 5 minutes, and running totals that never go backwards.
// A window is the difference of two snapshots of one source; sources merge by adding bucket counts, so a
// percentile is read from merged counts and never averaged. No I/O: reports come in, numbers go out.
import {
  type EndpointMetrics,
  LATENCY_BUCKETS_US,
  METRICS_WINDOWS,
  type MetricsWindow,
  type MetricsWindowName,
  type Percentiles,
  type ReplicaStatsSnapshot,
  type RouterStatsSnapshot,
  type ServedModelMetrics,
  type ShadowModelMetrics,
  type ShadowWindow,
  type TimeSummary,
} from "@switchyard/protocol";
import type { StatsFeed } from "./feed.js";

export const METRICS_DEFAULTS = {
  /** A source's history keeps one snapshot per this period (the latest is always kept too). */
  sampleMs: 2_000,
  /** A source silent this long is no longer live (its replicas and in-flight counts stop counting). */
  staleMs: 5_000,
} as const;

export interface MetricsOptions {
  sampleMs?: number;
  staleMs?: number;
  /** The clock (injected in tests). */
  now?: () => number;
}

const BUCKETS = LATENCY_BUCKETS_US.length + 1;
const LONGEST_WINDOW_MS = Math.max(...Object.values(METRICS_WINDOWS));

/** A latency histogram as cumulative bucket counts (not cumulative across buckets) and their sum. */
export interface Histogram {
  counts: number[];
  sumUs: number;
}

const emptyHistogram = (): Histogram => ({ counts: new Array<number>(BUCKETS).fill(0), sumUs: 0 });

/** Counters of one endpoint and served model, from routers (requests…) or replicas (queue, compute, batches). */
export class Counters {
  /** Requests routers sent (what callers see). */
  requests = 0;
  /** Requests replicas received: the same requests seen from the other side (and any sent around a router). */
  replicaRequests = 0;
  readonly errors = new Map<string, number>();
  total = emptyHistogram();
  queue = emptyHistogram();
  compute = emptyHistogram();
  batches = 0;
  rows = 0;
  heldTotal = 0;
  /** The part of `total` of requests that waited for a replica (cold start, scale-up). */
  heldLatency = emptyHistogram();
  /** Shadow series only (their mirrors are `requests`, latency `total`): dropped mirrors, rows compared, agreed. */
  dropped = 0;
  compared = 0;
  agreed = 0;

  /** this += sign × other */
  add(o: Counters, sign = 1): this {
    this.requests += sign * o.requests;
    this.replicaRequests += sign * o.replicaRequests;
    for (const [code, n] of o.errors) this.errors.set(code, (this.errors.get(code) ?? 0) + sign * n);
    addHistogram(this.total, o.total, sign);
    addHistogram(this.queue, o.queue, sign);
    addHistogram(this.compute, o.compute, sign);
    this.batches += sign * o.batches;
    this.rows += sign * o.rows;
    this.heldTotal += sign * o.heldTotal;
    addHistogram(this.heldLatency, o.heldLatency, sign);
    this.dropped += sign * o.dropped;
    this.compared += sign * o.compared;
    this.agreed += sign * o.agreed;
    return this;
  }

  /** Latency of the requests that found a replica at once: `total` without the held requests' part. */
  answeredLatency(): Histogram {
    const h: Histogram = { counts: this.total.counts.slice(), sumUs: this.total.sumUs };
    addHistogram(h, this.heldLatency, -1);
    return h;
  }

  errorCount(): number {
    let n = 0;
    for (const v of this.errors.values()) n += v;
    return n;
  }
}

function addHistogram(into: Histogram, h: Histogram, sign: number): void {
  for (let i = 0; i < BUCKETS; i++) into.counts[i]! += sign * (h.counts[i] ?? 0);
  into.sumUs += sign * h.sumUs;
}

/** Reads a reported summary, refusing bucket layouts other than LATENCY_BUCKETS_US (another version's). */
function histogramOf(t: TimeSummary | undefined): Histogram {
  if (!t || t.counts.length !== BUCKETS) return emptyHistogram();
  return { counts: t.counts.slice(), sumUs: t.sum_us };
}

/**
 * The q-quantile (0..1) of bucket counts in µs, as Prometheus' histogram_quantile: find the bucket holding
 * rank q × count and interpolate linearly inside it; the open last bucket answers its lower bound (30 s).
 */
export function quantileUs(counts: readonly number[], q: number): number {
  let count = 0;
  for (const c of counts) count += c;
  if (count <= 0) return 0;
  const rank = q * count;
  let before = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c > 0 && before + c >= rank) {
      const lower = i === 0 ? 0 : LATENCY_BUCKETS_US[i - 1]!;
      if (i >= LATENCY_BUCKETS_US.length) return lower;
      const upper = LATENCY_BUCKETS_US[i]!;
      return lower + (upper - lower) * ((rank - before) / c);
    }
    before += c;
  }
  return LATENCY_BUCKETS_US[LATENCY_BUCKETS_US.length - 1]!;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

export function percentilesMs(h: Histogram): Percentiles {
  return {
    p50: round3(quantileUs(h.counts, 0.5) / 1000),
    p95: round3(quantileUs(h.counts, 0.95) / 1000),
    p99: round3(quantileUs(h.counts, 0.99) / 1000),
  };
}

/** One endpoint and served model of a source's snapshot. */
interface Series {
  endpoint: string;
  served: string;
  counters: Counters;
}

/** What a live source says about now (not counted over windows). */
interface Gauges {
  replicasReady: number;
  inFlight: number;
  queued: number;
  held: number;
}

interface Sample {
  /** When this process received it. */
  at: number;
  /** Since the source started counting, when it says. */
  uptimeMs: number | undefined;
  series: Map<string, Series>;
  /** A router's mirrors per endpoint and shadow served model (shadow traffic). */
  shadow: Map<string, Series>;
  gauges: Map<string, Gauges>;
  /** The model a replica serves (routers do not say). */
  model?: { name: string; version: number };
}

interface Source {
  /** Sparse history, oldest first, one per sampleMs at the most. */
  samples: Sample[];
  latest: Sample;
}

const seriesKey = (endpoint: string, served: string) => `${endpoint}\u0000${served}`;

function series(endpoint: string, served: string, counters: Counters): [string, Series] {
  return [seriesKey(endpoint, served), { endpoint, served, counters }];
}

function routerSample(s: RouterStatsSnapshot, at: number): Sample {
  const out = new Map<string, Series>();
  const gauges = new Map<string, Gauges>();
  for (const [endpoint, byServed] of Object.entries(s.endpoints ?? {})) {
    for (const [served, r] of Object.entries(byServed)) {
      const c = new Counters();
      c.requests = r.requests;
      for (const [code, n] of Object.entries(r.errors ?? {})) c.errors.set(code, n ?? 0);
      c.total = histogramOf(r.total_us);
      c.heldTotal = r.held_total ?? 0;
      c.heldLatency = histogramOf(r.held_us);
      const [key, value] = series(endpoint, served, c);
      out.set(key, value);
      gauges.set(key, { replicasReady: 0, inFlight: 0, queued: 0, held: r.held ?? 0 });
    }
  }
  return { at, uptimeMs: s.uptime_ms, series: out, shadow: shadowSeries(s), gauges };
}

function shadowSeries(s: RouterStatsSnapshot): Map<string, Series> {
  const out = new Map<string, Series>();
  for (const [endpoint, byServed] of Object.entries(s.shadow ?? {})) {
    for (const [served, r] of Object.entries(byServed)) {
      const c = new Counters();
      c.requests = r.mirrored;
      c.dropped = r.dropped;
      for (const [code, n] of Object.entries(r.errors ?? {})) c.errors.set(code, n ?? 0);
      c.total = histogramOf(r.latency_us);
      c.compared = r.compared;
      c.agreed = r.agreed;
      const [key, value] = series(endpoint, served, c);
      out.set(key, value);
    }
  }
  return out;
}

/** One window of a shadow served model's counters, as the JSON summary shows it. */
function shadowWindow(c: Counters): ShadowWindow {
  return {
    mirrored: c.requests,
    dropped: c.dropped,
    errors: Object.fromEntries([...c.errors].filter(([, n]) => n > 0).sort()),
    error_rate: c.requests === 0 ? 0 : round3(c.errorCount() / c.requests),
    latency_ms: percentilesMs(c.total),
    agreement: {
      compared: c.compared,
      agreed: c.agreed,
      rate: c.compared === 0 ? 0 : Math.round((c.agreed / c.compared) * 1e6) / 1e6,
    },
  };
}

function replicaSample(s: ReplicaStatsSnapshot, at: number): Sample {
  const c = new Counters();
  c.replicaRequests = s.requests;
  c.queue = histogramOf(s.queue_us);
  c.compute = histogramOf(s.compute_us);
  c.batches = s.batches;
  c.rows = s.rows;
  const [key, value] = series(s.endpoint, s.served_model, c);
  return {
    at,
    uptimeMs: s.uptime_ms,
    series: new Map([[key, value]]),
    shadow: new Map(),
    gauges: new Map([
      [
        key,
        {
          replicasReady: s.state === "READY" ? 1 : 0,
          inFlight: s.in_flight,
          queued: s.queued,
          held: 0,
        },
      ],
    ]),
    model: { name: s.model_name, version: s.model_version },
  };
}

/** Running totals of one endpoint and served model (Prometheus counters) and what is live now (gauges). */
export interface SeriesTotals extends Gauges {
  endpoint: string;
  served: string;
  /** From replicas' reports; undefined when no replica of it was seen. */
  model: { name: string; version: number } | undefined;
  counters: Counters;
}

/** The name, model and version of a served model as the endpoint's config says (the caller reads it). */
export interface ServedModelInfo {
  name: string;
  model_name: string;
  model_version: number;
}

export class ClusterMetrics {
  private readonly sources = new Map<string, Source>();
  /** Totals of sources that left the history: what keeps counters from going backwards. */
  private readonly retired = new Map<string, Series>();
  private readonly retiredShadow = new Map<string, Series>();
  /** The model last seen served under each key (outlives the replicas that reported it). */
  private readonly models = new Map<string, { name: string; version: number }>();
  private readonly sampleMs: number;
  private readonly staleMs: number;
  private readonly now: () => number;
  private readonly startedAt: number;
  private seq = 0;
  private unfollow: (() => void) | undefined;

  constructor(opts: MetricsOptions = {}) {
    this.sampleMs = opts.sampleMs ?? METRICS_DEFAULTS.sampleMs;
    this.staleMs = opts.staleMs ?? METRICS_DEFAULTS.staleMs;
    this.now = opts.now ?? Date.now;
    for (const [name, v] of Object.entries({ sampleMs: this.sampleMs, staleMs: this.staleMs })) {
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number of ms, got ${v}`);
    }
    this.startedAt = this.now();
  }

  /** Windows over every report `feed` receives from now on (and the snapshots it holds already). */
  static follow(feed: StatsFeed, opts: MetricsOptions = {}): ClusterMetrics {
    const m = new ClusterMetrics(opts);
    for (const r of feed.replicas()) m.addReplica(r.snapshot, r.receivedAt);
    for (const r of feed.routers()) m.addRouter(r.snapshot, r.receivedAt);
    m.unfollow = feed.onReport((kind, r) => {
      if (kind === "replica") m.addReplica(r.snapshot as ReplicaStatsSnapshot, r.receivedAt);
      else m.addRouter(r.snapshot as RouterStatsSnapshot, r.receivedAt);
    });
    return m;
  }

  close(): void {
    this.unfollow?.();
    this.unfollow = undefined;
  }

  addReplica(s: ReplicaStatsSnapshot, receivedAt = this.now()): void {
    const sample = replicaSample(s, receivedAt);
    if (sample.model) this.models.set(seriesKey(s.endpoint, s.served_model), sample.model);
    this.add(`replica:${s.replica_id}`, sample);
  }

  addRouter(s: RouterStatsSnapshot, receivedAt = this.now()): void {
    this.add(`router:${s.router_id}`, routerSample(s, receivedAt));
  }

  private add(id: string, sample: Sample): void {
    const source = this.sources.get(id);
    if (!source) {
      this.sources.set(id, { samples: [sample], latest: sample });
    } else if (
      sample.uptimeMs !== undefined &&
      source.latest.uptimeMs !== undefined &&
      sample.uptimeMs < source.latest.uptimeMs
    ) {
      // The same id counting from zero again (a restarted process): the old history ages out on its own.
      this.sources.delete(id);
      this.sources.set(`${id}#${++this.seq}`, source);
      this.sources.set(id, { samples: [sample], latest: sample });
    } else {
      source.latest = sample;
      if (sample.at - source.samples[source.samples.length - 1]!.at >= this.sampleMs) {
        source.samples.push(sample);
      }
    }
    this.sweep();
  }

  /** Drops history no window reaches, and retires sources whose last report is older than every window. */
  private sweep(): void {
    const horizon = this.now() - LONGEST_WINDOW_MS;
    for (const [id, s] of this.sources) {
      if (s.latest.at < horizon - this.staleMs) {
        for (const [retired, part] of [
          [this.retired, s.latest.series],
          [this.retiredShadow, s.latest.shadow],
        ] as const) {
          for (const [key, v] of part) {
            const r = retired.get(key);
            if (r) r.counters.add(v.counters);
            else retired.set(key, { ...v, counters: new Counters().add(v.counters) });
          }
        }
        this.sources.delete(id);
        continue;
      }
      // Keep the newest sample at or before the horizon: the baseline of the longest window.
      while (s.samples.length > 1 && s.samples[1]!.at <= horizon) s.samples.shift();
    }
  }

  /** What a window subtracts from a source's latest snapshot: a sample, or nothing (counting began inside). */
  private baseline(s: Source, start: number): Sample | undefined {
    if (s.latest.at <= start) return s.latest;
    let base: Sample | undefined;
    for (const sample of s.samples) {
      if (sample.at <= start) base = sample;
      else break;
    }
    if (base) return base;
    const first = s.samples[0]!;
    const began = first.uptimeMs === undefined ? undefined : first.at - first.uptimeMs;
    // Started inside the window: everything it counted is in it. Otherwise the window reaches back before
    // this process heard of the source, and its first report is the best baseline there is.
    return began !== undefined && began >= start ? undefined : first;
  }

  /** The counters of every series `match` accepts (of a sample's `part`: served or shadow), over the last `windowMs`. */
  private windowCounters(
    windowMs: number,
    match: (s: Series) => boolean,
    part: (s: Sample) => Map<string, Series> = (s) => s.series,
  ): Counters {
    const start = this.now() - windowMs;
    const sum = new Counters();
    for (const source of this.sources.values()) {
      const base = this.baseline(source, start);
      if (base === source.latest) continue;
      for (const [key, v] of part(source.latest)) {
        if (!match(v)) continue;
        sum.add(v.counters);
        const before = base && part(base).get(key);
        if (before) sum.add(before.counters, -1);
      }
    }
    return sum;
  }

  private window(windowMs: number, match: (s: Series) => boolean): MetricsWindow {
    const c = this.windowCounters(windowMs, match);
    const errors = c.errorCount();
    const seconds = Math.max(Math.min(windowMs, this.now() - this.startedAt), 1_000) / 1000;
    return {
      requests: c.requests,
      errors: Object.fromEntries([...c.errors].filter(([, n]) => n > 0).sort()),
      error_rate: c.requests === 0 ? 0 : round3(errors / c.requests),
      rps: round3(c.requests / seconds),
      latency_ms: percentilesMs(c.total),
      queue_ms: percentilesMs(c.queue),
      compute_ms: percentilesMs(c.compute),
      avg_batch_size: c.batches === 0 ? 0 : Math.round((c.rows / c.batches) * 100) / 100,
    };
  }

  private windows(match: (s: Series) => boolean): Record<MetricsWindowName, MetricsWindow> {
    return {
      "1m": this.window(METRICS_WINDOWS["1m"], match),
      "5m": this.window(METRICS_WINDOWS["5m"], match),
    };
  }

  private gauges(match: (s: Series) => boolean): Gauges {
    const g: Gauges = { replicasReady: 0, inFlight: 0, queued: 0, held: 0 };
    const liveSince = this.now() - this.staleMs;
    for (const source of this.sources.values()) {
      if (source.latest.at < liveSince) continue;
      for (const [key, v] of source.latest.series) {
        const now = source.latest.gauges.get(key);
        if (!now || !match(v)) continue;
        g.replicasReady += now.replicasReady;
        g.inFlight += now.inFlight;
        g.queued += now.queued;
        g.held += now.held;
      }
    }
    return g;
  }

  /**
   * An endpoint's summary. `served` lists its served models as its config says (so one scaled to zero still
   * shows); served models seen only in stats follow, with the model their replicas reported.
   */
  endpoint(name: string, served: readonly ServedModelInfo[] = []): EndpointMetrics {
    const infos = [...served];
    for (const s of this.servedModelsOf(name)) {
      if (infos.some((i) => i.name === s)) continue;
      const model = this.models.get(seriesKey(name, s));
      infos.push({ name: s, model_name: model?.name ?? "", model_version: model?.version ?? 0 });
    }
    const served_models: ServedModelMetrics[] = infos.map((info) => {
      const match = (v: Series) => v.endpoint === name && v.served === info.name;
      const g = this.gauges(match);
      return {
        name: info.name,
        model_name: info.model_name,
        model_version: info.model_version,
        replicas: { ready: g.replicasReady },
        in_flight: g.inFlight + g.queued,
        held: g.held,
        windows: this.windows(match),
      };
    });
    return {
      name,
      served_models,
      windows: this.windows((v) => v.endpoint === name),
      shadow: this.shadowOf(name),
    };
  }

  /** The shadow served models of an endpoint seen in routers' stats, with their windows. */
  shadowOf(endpoint: string): ShadowModelMetrics[] {
    const names = new Set<string>();
    for (const v of this.allShadowSeries()) if (v.endpoint === endpoint) names.add(v.served);
    return [...names].sort().map((served) => {
      const match = (v: Series) => v.endpoint === endpoint && v.served === served;
      const window = (ms: number) => shadowWindow(this.windowCounters(ms, match, (s) => s.shadow));
      return {
        served_model_name: served,
        windows: { "1m": window(METRICS_WINDOWS["1m"]), "5m": window(METRICS_WINDOWS["5m"]) },
      };
    });
  }

  private *allShadowSeries(): Iterable<Series> {
    yield* this.retiredShadow.values();
    for (const s of this.sources.values()) yield* s.latest.shadow.values();
  }

  /** Cumulative shadow counters per endpoint and shadow served model: never decrease. */
  shadowTotals(): { endpoint: string; served: string; counters: Counters }[] {
    const out = new Map<string, { endpoint: string; served: string; counters: Counters }>();
    for (const v of this.allShadowSeries()) {
      const key = seriesKey(v.endpoint, v.served);
      let t = out.get(key);
      if (!t) {
        t = { endpoint: v.endpoint, served: v.served, counters: new Counters() };
        out.set(key, t);
      }
      t.counters.add(v.counters);
    }
    return [...out.values()].sort((a, b) =>
      a.endpoint === b.endpoint ? a.served.localeCompare(b.served) : a.endpoint.localeCompare(b.endpoint),
    );
  }

  /** Endpoints seen in stats, sorted (requests to unknown endpoints included: routers count those too). */
  endpointNames(): string[] {
    const names = new Set<string>();
    for (const v of this.allSeries()) names.add(v.endpoint);
    return [...names].sort();
  }

  /** Served models of an endpoint seen in stats, sorted ("" — requests no served model took — left out). */
  servedModelsOf(endpoint: string): string[] {
    const names = new Set<string>();
    for (const v of this.allSeries()) if (v.endpoint === endpoint && v.served !== "") names.add(v.served);
    return [...names].sort();
  }

  private *allSeries(): Iterable<Series> {
    yield* this.retired.values();
    for (const s of this.sources.values()) yield* s.latest.series.values();
  }

  /** Cumulative totals per endpoint and served model since this process started following: never decrease. */
  totals(): SeriesTotals[] {
    const out = new Map<string, SeriesTotals>();
    for (const v of this.allSeries()) {
      const key = seriesKey(v.endpoint, v.served);
      let t = out.get(key);
      if (!t) {
        const match = (s: Series) => s.endpoint === v.endpoint && s.served === v.served;
        t = {
          endpoint: v.endpoint,
          served: v.served,
          model: this.models.get(key),
          counters: new Counters(),
          ...this.gauges(match),
        };
        out.set(key, t);
      }
      t.counters.add(v.counters);
    }
    return [...out.values()].sort((a, b) =>
      a.endpoint === b.endpoint ? a.served.localeCompare(b.served) : a.endpoint.localeCompare(b.endpoint),
    );
  }
}
