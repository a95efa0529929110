// The TypeScript SDK: invoke endpoints through the router (JSON bodies, or Frames/Tensors as msgpack) and manage
// endpoints through the coordinators' NATS API. Errors arrive as data and are rebuilt as SwitchyardError.
import { type MsgHdrs, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { Frame, type Payload } from "@switchyard/data";
import { decode, encode } from "@switchyard/data/codec";
import type { Params } from "@switchyard/formats";
import { connectNats, type NatsOptions } from "@switchyard/nats";
import {
  type ApiOp,
  type BatchJobRequest,
  type BatchJobView,
  type ClusterNames,
  clusterNames,
  DEFAULT_TIMEOUT_MS,
  type EndpointMetrics,
  H,
  JSON_TYPE,
  type MetricsSummary,
  MSGPACK,
  SwitchyardError,
} from "@switchyard/protocol";
import { BatchApi, type WaitOptions } from "./batch.js";
import { startCapturingRouter } from "./capture.js";
import { replyError } from "./errors.js";
import { API_TIMEOUT_MS, callApi, callJson } from "./management.js";
import type { InvokeResult, Router } from "./router.js";
import { StreamsApi } from "./streams.js";

export interface ClientOptions {
  servers: string | string[];
  user?: string;
  pass?: string;
  token?: string;
  /** Path to a NATS `.creds` file. */
  creds?: string;
  /** Cluster name (default `sy`). */
  cluster?: string;
  /** Connection name shown by the server's monitoring. */
  name?: string;
  /** Reply-subject prefix; a user from `switchyard users create` needs `_INBOX_<user>`. */
  inboxPrefix?: string;
}

export interface ClientInvokeOptions {
  /** Relative timeout (default 30 s); the request's deadline is now + this. */
  timeoutMs?: number;
  routeKey?: string;
  /** Query one served model, bypassing the traffic split. */
  servedModel?: string;
  requestId?: string;
  /** `params` sent with Frame/Tensor inputs (JSON bodies carry their own). */
  params?: Params;
}

/** An MLflow scoring request body: exactly one of dataframe_split, dataframe_records, instances, inputs. */
export type MlflowBody = Record<string, unknown>;
export interface MlflowResponse {
  predictions: unknown;
  [key: string]: unknown;
}

/** An endpoint as the management API returns it (Databricks' shape). */
export type EndpointView = Record<string, unknown>;

const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

/**
 * The management API on `<cluster>.api.endpoints.*`. Request bodies: create → the Databricks create body
 * `{name, config, …}`; update → `{name, config}`; get/delete → `{name}`; list → `{}`. Replies are JSON:
 * the endpoint (create/update/get), `{endpoints: […]}` (list), `{}` (delete); errors carry
 * `x-switchyard-error-code` and an `{"error_code","message"}` body.
 */
export class EndpointsApi {
  constructor(
    private readonly nc: NatsConnection,
    readonly names: ClusterNames,
    private readonly timeoutMs = API_TIMEOUT_MS,
  ) {}

  /** `user` is recorded as the endpoint's `creator` (header `x-switchyard-user`). */
  create(body: Record<string, unknown>, opts: { user?: string } = {}): Promise<EndpointView> {
    return this.call("endpoints.create", body, opts.user) as Promise<EndpointView>;
  }

  update(name: string, config: Record<string, unknown>): Promise<EndpointView> {
    return this.call("endpoints.update", { name, config }) as Promise<EndpointView>;
  }

  get(name: string): Promise<EndpointView> {
    return this.call("endpoints.get", { name }) as Promise<EndpointView>;
  }

  async list(): Promise<EndpointView[]> {
    const reply = await this.call("endpoints.list", {});
    if (Array.isArray(reply)) return reply as EndpointView[];
    const list = (reply as { endpoints?: unknown } | null)?.endpoints;
    return Array.isArray(list) ? (list as EndpointView[]) : [];
  }

  async delete(name: string): Promise<void> {
    await this.call("endpoints.delete", { name });
  }

  /** Replaces the endpoint's `rate_limits` (Databricks' PUT …/rate-limits); `[]` removes them. */
  putRateLimits(name: string, rateLimits: unknown): Promise<{ rate_limits: unknown[] }> {
    return this.call("endpoints.rate_limits", { name, rate_limits: rateLimits }) as Promise<{
      rate_limits: unknown[];
    }>;
  }

  private call(op: ApiOp, body: unknown, user?: string): Promise<unknown> {
    return callApi(this.nc, this.names, op, body, { timeoutMs: this.timeoutMs, ...(user ? { user } : {}) });
  }
}

export class SwitchyardClient {
  readonly names: ClusterNames;
  readonly endpoints: EndpointsApi;
  readonly batch: BatchApi;
  /** Stream jobs: create, get, list, stop, start, delete. */
  readonly streams: StreamsApi;
  private router: Promise<Router> | undefined;
  /** Whether this client started its router (and so stops it on close). */
  private ownsRouter = false;

  private constructor(
    readonly nc: NatsConnection,
    cluster: string | undefined,
    private readonly ownsConnection: boolean,
    router?: Router,
  ) {
    this.names = clusterNames(cluster);
    this.endpoints = new EndpointsApi(nc, this.names);
    this.batch = new BatchApi(nc, this.names);
    this.streams = new StreamsApi(nc, this.names);
    if (router) this.router = Promise.resolve(router);
  }

  /** Connects to NATS (any credential form `connectNats` takes). */
  static async connect(opts: ClientOptions): Promise<SwitchyardClient> {
    const names = clusterNames(opts.cluster); // validate before connecting
    const natsOpts: NatsOptions = { servers: opts.servers, name: opts.name ?? "switchyard-client" };
    if (opts.user !== undefined) natsOpts.user = opts.user;
    if (opts.pass !== undefined) natsOpts.pass = opts.pass;
    if (opts.token !== undefined) natsOpts.token = opts.token;
    if (opts.creds !== undefined) natsOpts.creds = opts.creds;
    if (opts.inboxPrefix !== undefined) natsOpts.inboxPrefix = opts.inboxPrefix;
    const nc = await connectNats(natsOpts);
    return new SwitchyardClient(nc, names.cluster, true);
  }

  /** A client on an existing connection (closing the client leaves the connection open). */
  static fromConnection(
    nc: NatsConnection,
    opts: { cluster?: string; router?: Router } = {},
  ): SwitchyardClient {
    return new SwitchyardClient(nc, opts.cluster, false, opts.router);
  }

  /** The router, started on first use (management-only clients never watch routes). */
  getRouter(): Promise<Router> {
    if (!this.router) {
      this.router = startCapturingRouter(this.nc, {
        cluster: this.names.cluster,
        stats: { role: "sdk" },
      }).then((r) => r.router);
      this.ownsRouter = true;
      this.router.catch(() => {
        this.router = undefined;
      });
    }
    return this.router;
  }

  /**
   * Scores `input` on an endpoint. An MLflow body object goes as JSON and returns the `{"predictions": …}`
   * reply; a Frame or Tensor[] goes as msgpack `{input, params}` and returns the model's output.
   */
  invoke(endpoint: string, input: Payload, opts?: ClientInvokeOptions): Promise<Payload>;
  invoke(endpoint: string, input: MlflowBody, opts?: ClientInvokeOptions): Promise<MlflowResponse>;
  async invoke(
    endpoint: string,
    input: Payload | MlflowBody,
    opts: ClientInvokeOptions = {},
  ): Promise<Payload | MlflowResponse> {
    const binary = input instanceof Frame || Array.isArray(input);
    const h = natsHeaders();
    h.append(H.contentType, binary ? MSGPACK : JSON_TYPE);
    if (opts.requestId) h.append(H.requestId, opts.requestId);
    const body = binary
      ? encode({ input, params: opts.params ?? {} })
      : utf8Encoder.encode(JSON.stringify(input));
    const result = await this.invokeRaw(endpoint, body, h, opts);
    if (result.errorCode) throw replyError(result.data, result.headers, result.errorCode);
    if (binary) {
      const reply = decode(result.data) as { output?: Payload } | null;
      if (!reply || reply.output === undefined) {
        throw new SwitchyardError("INTERNAL_ERROR", "the replica's reply has no output");
      }
      return reply.output;
    }
    return JSON.parse(utf8.decode(result.data)) as MlflowResponse;
  }

  /** Bytes in, bytes out: the reply with its headers (error replies are returned, not thrown). */
  async invokeRaw(
    endpoint: string,
    body: Uint8Array,
    headers: MsgHdrs,
    opts: ClientInvokeOptions = {},
  ): Promise<InvokeResult> {
    const router = await this.getRouter();
    return router.invoke(endpoint, body, headers, {
      deadlineMs: Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      routeKey: opts.routeKey,
      servedModel: opts.servedModel,
    });
  }

  /**
   * The metrics summary (requests, errors, rps, p50/p95/p99 over 1 and 5 minutes) of every endpoint, or of
   * one. Bridges keep the windows and answer this, so a bridge must be running (`switchyard up` runs one).
   */
  metrics(): Promise<MetricsSummary>;
  metrics(endpoint: string): Promise<EndpointMetrics>;
  metrics(endpoint?: string): Promise<MetricsSummary | EndpointMetrics> {
    const subject = this.names.subjects.metricsSummary;
    return callJson(this.nc, subject, endpoint === undefined ? {} : { name: endpoint }, {
      what: "the metrics summary",
      nobody: `no bridge answers metrics requests (${subject}); start one with 'switchyard up' or 'switchyard bridge'`,
    }) as Promise<MetricsSummary | EndpointMetrics>;
  }

  /** Submits a batch job (the model URI is resolved once, now); returns it with its id. */
  submitBatch(request: BatchJobRequest): Promise<BatchJobView> {
    return this.batch.submit(request);
  }

  batchStatus(id: string): Promise<BatchJobView> {
    return this.batch.get(id);
  }

  /** Waits until the job ends; `onProgress` sees every status read on the way. */
  waitForBatch(id: string, opts?: WaitOptions): Promise<BatchJobView> {
    return this.batch.wait(id, opts);
  }

  /** Stops the router if this client started it, and closes the connection if the client opened it. */
  async close(): Promise<void> {
    const router = this.router;
    this.router = undefined;
    if (router && this.ownsRouter) await (await router.catch(() => undefined))?.close();
    if (this.ownsConnection) await this.nc.close();
  }
}
