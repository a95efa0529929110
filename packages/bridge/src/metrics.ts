// The bridge's metrics: it follows every replica's and router's stats over NATS (so any bridge reports the
// whole cluster) and serves them as Prometheus text (`/metrics`, and one endpoint's series as Databricks'
// `/api/2.0/serving-endpoints/{name}/metrics`) and as the JSON summary the dashboard and CLI read (HTTP, and
// NATS for the CLI). Batch jobs and streams are read through the management API, at most once a second.
import type { NatsConnection } from "@nats-io/transport-node";
import {
  AccuracyFeed,
  ClusterMetrics,
  type Histogram,
  type SeriesTotals,
  type ServedModelInfo,
  StatsFeed,
} from "@switchyard/autoscaler";
import {
  type BatchApi,
  type EndpointsApi,
  type EndpointView,
  errorReply,
  type StreamsApi,
} from "@switchyard/client";
import {
  type BatchJobView,
  type ClusterNames,
  type EndpointMetrics,
  LATENCY_BUCKETS_US,
  type MetricsSummary,
  QUEUE_GROUPS,
  type RouterStatsSnapshot,
  type StreamJobView,
  SwitchyardError,
} from "@switchyard/protocol";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { Counter, Gauge, type Metric, Registry } from "prom-client";
import { accuracySeries, withAccuracy } from "./accuracy.js";

export interface MetricsRoutesOptions {
  nc: NatsConnection;
  names: ClusterNames;
  api: EndpointsApi;
  batch: BatchApi;
  streams: StreamsApi;
  log: Logger;
}

/** How long a management list (endpoints, batch jobs, streams) is reused between scrapes. */
export const METRICS_CACHE_MS = 1_000;

/** The result of `load`, reused for `ttlMs`; concurrent callers share one call, and a failure is not kept. */
function cached<T>(ttlMs: number, load: () => Promise<T>): () => Promise<T> {
  let value: { at: number; p: Promise<T> } | undefined;
  return () => {
    if (value && Date.now() - value.at < ttlMs) return value.p;
    const p = load();
    const entry = { at: Date.now(), p };
    value = entry;
    p.catch(() => {
      if (value === entry) value = undefined;
    });
    return p;
  };
}

/** An endpoint's served models as its config (and a running update's pending config) names them. */
export function servedModelsOf(view: EndpointView): ServedModelInfo[] {
  const out: ServedModelInfo[] = [];
  for (const cfg of [view.config, view.pending_config]) {
    const c = (cfg ?? {}) as { served_entities?: unknown[]; served_models?: unknown[] };
    for (const raw of (c.served_entities ?? c.served_models ?? []) as Record<string, unknown>[]) {
      const name = String(raw.name ?? "");
      if (!name || out.some((s) => s.name === name)) continue;
      out.push({
        name,
        model_name: String(raw.entity_name ?? raw.model_name ?? ""),
        model_version: Number(raw.entity_version ?? raw.model_version) || 0,
      });
    }
  }
  return out;
}

const PROMETHEUS_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
const LE_SECONDS = [...LATENCY_BUCKETS_US.map((us) => String(us / 1e6)), "+Inf"];

/**
 * A Prometheus histogram filled from bucket counts that were already counted elsewhere (prom-client's own
 * Histogram only observes values one by one); the registry prints it like any other.
 */
class CountedHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly values: { metricName: string; labels: Record<string, string>; value: number }[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  add(labels: Record<string, string>, h: Histogram): void {
    let cumulative = 0;
    for (let i = 0; i < h.counts.length; i++) {
      cumulative += h.counts[i]!;
      this.values.push({
        metricName: `${this.name}_bucket`,
        labels: { ...labels, le: LE_SECONDS[i]! },
        value: cumulative,
      });
    }
    this.values.push({ metricName: `${this.name}_sum`, labels, value: h.sumUs / 1e6 });
    this.values.push({ metricName: `${this.name}_count`, labels, value: cumulative });
  }

  get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.values,
    };
  }
}

const SERIES_LABELS = ["endpoint", "served_model", "model", "version"] as const;

/** Counters and gauges registered in `registry` (a fresh one per scrape: values are set, not accumulated). */
function metricsOf(registry: Registry) {
  const registers = [registry];
  return {
    counter: (name: string, help: string, labelNames: readonly string[]) =>
      new Counter({ name, help, labelNames, registers }),
    gauge: (name: string, help: string, labelNames: readonly string[]) =>
      new Gauge({ name, help, labelNames, registers }),
  };
}

/** Every endpoint series (requests, errors, latencies, replicas) into `registry`. */
function endpointSeries(
  registry: Registry,
  totals: SeriesTotals[],
  models: Map<string, ServedModelInfo>,
): void {
  const make = metricsOf(registry);
  const counter = (name: string, help: string, extra: string[] = []) =>
    make.counter(name, help, [...SERIES_LABELS, ...extra]);
  const gauge = (name: string, help: string) => make.gauge(name, help, SERIES_LABELS);
  const requests = counter("switchyard_requests_total", "Requests routed to the served model (by routers)");
  const errors = counter(
    "switchyard_request_errors_total",
    "Requests answered with an error, by catalog code",
    ["code"],
  );
  const received = counter(
    "switchyard_replica_requests_total",
    "Requests the replicas received (the same requests as routed, counted on the replicas' side)",
  );
  const held = counter("switchyard_requests_held_total", "Requests that waited for a replica to start");
  const batches = counter("switchyard_batches_total", "Batches the replicas ran");
  const rows = counter("switchyard_batch_rows_total", "Rows in those batches (rows / batches = batch size)");
  const latency = new CountedHistogram(
    "switchyard_request_duration_seconds",
    "From a router receiving a request to its reply: what the caller waited",
    registry,
  );
  const queue = new CountedHistogram(
    "switchyard_queue_duration_seconds",
    "Time a request waited in a replica for its batch",
    registry,
  );
  const compute = new CountedHistogram(
    "switchyard_compute_duration_seconds",
    "Time a replica spent running a batch",
    registry,
  );
  const ready = gauge("switchyard_replicas_ready", "Replicas serving now (reporting stats, READY)");
  const inFlight = gauge("switchyard_requests_in_flight", "Requests in a running batch now");
  const queued = gauge("switchyard_requests_queued", "Requests waiting in a replica for a batch now");
  const heldNow = gauge("switchyard_requests_held", "Requests a router holds now, waiting for a replica");
  for (const t of totals) {
    const info = models.get(`${t.endpoint}\u0000${t.served}`);
    const labels = {
      endpoint: t.endpoint,
      served_model: t.served,
      model: info?.model_name ?? t.model?.name ?? "",
      version: String(info?.model_version ?? t.model?.version ?? ""),
    };
    const c = t.counters;
    requests.inc(labels, c.requests);
    for (const [code, n] of [...c.errors].sort()) if (n > 0) errors.inc({ ...labels, code }, n);
    received.inc(labels, c.replicaRequests);
    held.inc(labels, c.heldTotal);
    batches.inc(labels, c.batches);
    rows.inc(labels, c.rows);
    latency.add(labels, c.total);
    queue.add(labels, c.queue);
    compute.add(labels, c.compute);
    ready.set(labels, t.replicasReady);
    inFlight.set(labels, t.inFlight);
    queued.set(labels, t.queued);
    heldNow.set(labels, t.held);
  }
}

/** Inference-table captures per endpoint, summed over the live routers' reports. */
function captureSeries(registry: Registry, routers: RouterStatsSnapshot[], endpoint?: string): void {
  const records = metricsOf(registry).counter(
    "switchyard_capture_records_total",
    "Requests captured to the endpoint's inference table (outcome captured), or dropped to keep the request fast",
    ["endpoint", "outcome"],
  );
  const sums = new Map<string, { captured: number; dropped: number }>();
  for (const r of routers) {
    for (const [e, c] of Object.entries(r.capture ?? {})) {
      if (endpoint !== undefined && e !== endpoint) continue;
      const s = sums.get(e) ?? { captured: 0, dropped: 0 };
      s.captured += c.captured;
      s.dropped += c.dropped;
      sums.set(e, s);
    }
  }
  for (const [e, s] of [...sums].sort()) {
    records.inc({ endpoint: e, outcome: "captured" }, s.captured);
    records.inc({ endpoint: e, outcome: "dropped" }, s.dropped);
  }
}

/** Shadow traffic per endpoint and shadow served model: mirrors, drops, errors, latency and agreement. */
function shadowSeries(registry: Registry, totals: ReturnType<ClusterMetrics["shadowTotals"]>): void {
  const make = metricsOf(registry);
  const labelNames = ["endpoint", "served_model"];
  const counter = (name: string, help: string) => make.counter(name, help, labelNames);
  const mirrored = counter(
    "switchyard_shadow_requests_total",
    "Requests mirrored to the shadow served model",
  );
  const dropped = counter(
    "switchyard_shadow_dropped_total",
    "Mirrors not sent because the router had max_in_flight outstanding",
  );
  const errors = make.counter(
    "switchyard_shadow_errors_total",
    "Mirrors answered with an error (or not at all), by catalog code",
    [...labelNames, "code"],
  );
  const compared = counter(
    "switchyard_shadow_rows_compared_total",
    "Prediction rows of the shadow compared with the primary's (mirrors whose primary succeeded)",
  );
  const agreed = counter(
    "switchyard_shadow_rows_agreed_total",
    "Compared rows where the shadow's prediction equals the primary's",
  );
  const latency = new CountedHistogram(
    "switchyard_shadow_duration_seconds",
    "From a router sending a mirror to its reply",
    registry,
  );
  for (const t of totals) {
    const labels = { endpoint: t.endpoint, served_model: t.served };
    const c = t.counters;
    mirrored.inc(labels, c.requests);
    dropped.inc(labels, c.dropped);
    for (const [code, n] of [...c.errors].sort()) if (n > 0) errors.inc({ ...labels, code }, n);
    compared.inc(labels, c.compared);
    agreed.inc(labels, c.agreed);
    latency.add(labels, c.total);
  }
}

function batchSeries(registry: Registry, jobs: BatchJobView[]): void {
  const make = metricsOf(registry);
  const labelNames = ["job", "model", "version"];
  const rowsPerS = make.gauge(
    "switchyard_batch_job_rows_per_second",
    "Rows scored per second since the job started",
    labelNames,
  );
  const rows = make.gauge("switchyard_batch_job_rows", "Rows of the job by state (done, error, total)", [
    ...labelNames,
    "state",
  ]);
  const shards = make.gauge(
    "switchyard_batch_job_shards",
    "Shards of the job by state (done, failed, pending)",
    [...labelNames, "state"],
  );
  const now = Date.now();
  for (const j of jobs) {
    const labels = { job: j.id, model: j.model.name, version: String(j.model.version) };
    const p = j.progress;
    const seconds = j.started_at ? ((j.finished_at ?? now) - j.started_at) / 1000 : 0;
    rowsPerS.set(labels, seconds > 0 ? p.rows_done / seconds : 0);
    rows.set({ ...labels, state: "done" }, p.rows_done);
    rows.set({ ...labels, state: "error" }, p.error_rows);
    rows.set({ ...labels, state: "total" }, j.total_rows);
    shards.set({ ...labels, state: "done" }, p.shards_done);
    shards.set({ ...labels, state: "failed" }, p.shards_failed);
    shards.set({ ...labels, state: "pending" }, Math.max(0, j.shards - p.shards_done - p.shards_failed));
  }
}

function streamSeries(registry: Registry, streams: StreamJobView[]): void {
  const make = metricsOf(registry);
  const labelNames = ["stream"];
  const lag = make.gauge(
    "switchyard_stream_lag",
    "Events the stream job has not acknowledged yet",
    labelNames,
  );
  const eps = make.gauge("switchyard_stream_events_per_second", "Events scored per second", labelNames);
  const latency = make.gauge(
    "switchyard_stream_end_to_end_latency_seconds",
    "From an event's publication to its result, by quantile",
    [...labelNames, "quantile"],
  );
  const results = make.counter("switchyard_stream_results_total", "Results written to the sink", labelNames);
  const dlq = make.counter(
    "switchyard_stream_dead_letters_total",
    "Events sent to the dead-letter subject",
    labelNames,
  );
  const late = make.counter(
    "switchyard_stream_late_events_total",
    "Events later than the watermark allows",
    labelNames,
  );
  for (const s of streams) {
    const labels = { stream: s.name };
    const st = s.status;
    lag.set(labels, st.lag);
    eps.set(labels, st.events_per_s);
    if (st.latency_ms.p50 !== null) latency.set({ ...labels, quantile: "0.5" }, st.latency_ms.p50 / 1000);
    if (st.latency_ms.p99 !== null) latency.set({ ...labels, quantile: "0.99" }, st.latency_ms.p99 / 1000);
    results.inc(labels, st.results);
    dlq.inc(labels, st.dlq);
    late.inc(labels, st.late);
  }
}

/**
 * Registers `/metrics`, `/api/2.0/serving-endpoints/:name/metrics` and the JSON summary routes on `app`, and
 * answers the summary on NATS for the CLI. Everything it starts stops when `app` closes.
 */
export function registerMetricsRoutes(app: FastifyInstance, o: MetricsRoutesOptions): void {
  const feed = StatsFeed.start(o.nc, o.names);
  const metrics = ClusterMetrics.follow(feed);
  const accuracy = AccuracyFeed.start(o.nc, o.names);
  const endpoints = cached(METRICS_CACHE_MS, () => o.api.list());
  const jobs = cached(METRICS_CACHE_MS, () => o.batch.list());
  const streams = cached(METRICS_CACHE_MS, () => o.streams.list());

  /** Read-side failures leave their section out of `/metrics` rather than failing the scrape. */
  const orEmpty = async <T>(what: string, p: Promise<T[]>): Promise<T[]> => {
    try {
      return await p;
    } catch (err) {
      o.log.warn({ err }, `metrics: cannot list ${what}`);
      return [];
    }
  };

  const modelsOf = (views: EndpointView[]) => {
    const m = new Map<string, ServedModelInfo>();
    for (const v of views) for (const s of servedModelsOf(v)) m.set(`${String(v.name)}\u0000${s.name}`, s);
    return m;
  };

  const prometheus = async (endpoint?: string): Promise<string> => {
    const registry = new Registry();
    const views = await orEmpty("endpoints", endpoints());
    const totals = metrics.totals().filter((t) => endpoint === undefined || t.endpoint === endpoint);
    endpointSeries(registry, totals, modelsOf(views));
    captureSeries(
      registry,
      feed.routers().map((r) => r.snapshot),
      endpoint,
    );
    shadowSeries(
      registry,
      metrics.shadowTotals().filter((t) => endpoint === undefined || t.endpoint === endpoint),
    );
    accuracySeries(registry, accuracy.windows, endpoint);
    if (endpoint === undefined) {
      batchSeries(registry, await orEmpty("batch jobs", jobs()));
      streamSeries(registry, await orEmpty("streams", streams()));
    }
    return registry.metrics();
  };

  /** The endpoint's view: from the cached list, else asked (so a missing one is RESOURCE_DOES_NOT_EXIST). */
  const viewOf = async (name: string): Promise<EndpointView> => {
    const listed = (await endpoints().catch(() => [])).find((v) => v.name === name);
    return listed ?? (await o.api.get(name));
  };

  const endpointMetrics = async (name: string): Promise<EndpointMetrics> =>
    withAccuracy(metrics.endpoint(name, servedModelsOf(await viewOf(name))), accuracy.windows);

  const summary = async (): Promise<MetricsSummary> => {
    const views = await endpoints();
    const at = Date.now();
    return {
      at,
      endpoints: views
        .map((v) => withAccuracy(metrics.endpoint(String(v.name), servedModelsOf(v)), accuracy.windows))
        .sort((a, b) => a.name.localeCompare(b.name)),
    };
  };

  app.get("/metrics", async (_req, reply) => reply.type(PROMETHEUS_TYPE).send(await prometheus()));
  app.get<{ Params: { name: string } }>("/api/2.0/serving-endpoints/:name/metrics", async (req, reply) => {
    await viewOf(req.params.name);
    return reply.type(PROMETHEUS_TYPE).send(await prometheus(req.params.name));
  });
  app.get("/api/2.0/switchyard/metrics", () => summary());
  app.get<{ Params: { name: string } }>("/api/2.0/switchyard/metrics/endpoints/:name", (req) =>
    endpointMetrics(req.params.name),
  );

  // The CLI reads the same summary over NATS: it has no history of its own to take windows from.
  const sub = o.nc.subscribe(o.names.subjects.metricsSummary, {
    queue: QUEUE_GROUPS.metrics,
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      void (async () => {
        try {
          const body = msg.data.length ? (msg.json<unknown>() as { name?: unknown }) : {};
          if (body === null || typeof body !== "object" || Array.isArray(body)) {
            throw new SwitchyardError("BAD_REQUEST", "the metrics request body must be a JSON object");
          }
          if (body.name !== undefined && typeof body.name !== "string") {
            throw new SwitchyardError("INVALID_PARAMETER_VALUE", "name must be a string (an endpoint name)");
          }
          const result = body.name === undefined ? await summary() : await endpointMetrics(body.name);
          msg.respond(JSON.stringify(result));
        } catch (e) {
          if (!(e instanceof SwitchyardError) && !(e instanceof SyntaxError)) {
            o.log.error({ err: e }, "metrics summary failed");
          }
          const r = errorReply(
            e instanceof SyntaxError
              ? new SwitchyardError("BAD_REQUEST", "the metrics request body is not valid JSON")
              : e,
            undefined,
          );
          msg.respond(r.data, { headers: r.headers });
        }
      })();
    },
  });

  app.addHook("onClose", async () => {
    metrics.close();
    await accuracy.stop();
    await sub.drain().catch(() => undefined);
    await feed.stop();
  });
}
