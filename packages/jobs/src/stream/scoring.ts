// What scores a stream job's events: a registered model in the scorer's own worker threads, following its
// alias (a new version is loaded beside the old and switched to at a batch boundary), or a serving endpoint
// through the realtime router (traffic split and all). Both say which model version produced each row.

import type { KV } from "@nats-io/kv";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { Router } from "@switchyard/client";
import type { Tensor } from "@switchyard/data";
import { readValue } from "@switchyard/nats";
import {
  EndpointRoutes,
  H,
  keys,
  type ModelVersion,
  type Signature,
  SwitchyardError,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import { ModelRunner } from "@switchyard/runtime";
import type { Logger } from "pino";
import { type InputPlan, modelInput, resultFields } from "./events.js";

export interface ModelLabel {
  name: string;
  version: number;
}

/** One batch scored: per row, the result fields; and the version that scored them. */
export interface Scored {
  rows: Array<Record<string, unknown>>;
  model: ModelLabel | null;
}

export interface Scoring {
  /** The signature the next batch is planned against (null for a custom model without one). */
  signature(): Promise<Signature | null>;
  /** The version the next batch goes to, switching first if a new one is ready (a batch boundary). */
  model(): ModelLabel | null;
  /** Whether the model takes a Frame (a custom model) rather than tensors. */
  takesFrames(): boolean;
  score(plan: InputPlan, rows: unknown[][]): Promise<Scored>;
  close(): Promise<void>;
}

/** How often a followed alias is looked up again. */
const FOLLOW_MS = 1_000;

export class ModelScoring implements Scoring {
  private runner: ModelRunner | undefined;
  private next: ModelRunner | undefined;
  private loading: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly registry: Registry,
    private readonly uri: string,
    private readonly load: (v: ModelVersion) => Promise<ModelRunner>,
    private readonly log: Logger,
  ) {}

  static async open(o: {
    registry: Registry;
    uri: string;
    cacheDir: string;
    threads: number;
    log: Logger;
  }): Promise<ModelScoring> {
    const load = async (version: ModelVersion) => {
      const runner = await ModelRunner.load({
        registry: o.registry,
        version,
        cacheDir: o.cacheDir,
        threads: o.threads,
      });
      await runner.warmUp();
      return runner;
    };
    const s = new ModelScoring(o.registry, o.uri, load, o.log);
    s.runner = await load(await o.registry.resolve(o.uri));
    // Only a reference that can move (an alias, latest) is followed.
    if (!/\/\d+$/.test(o.uri)) s.timer = setInterval(() => void s.follow(), FOLLOW_MS);
    return s;
  }

  async signature(): Promise<Signature | null> {
    return this.runner!.signature;
  }

  takesFrames(): boolean {
    return this.runner!.frames;
  }

  model(): ModelLabel {
    if (this.next) {
      const old = this.runner!;
      this.runner = this.next;
      this.next = undefined;
      this.log.info(
        { from: old.version.version, to: this.runner.version.version, model: this.uri },
        "switched model version",
      );
      void old.close();
    }
    return { name: this.runner!.version.name, version: this.runner!.version.version };
  }

  async score(plan: InputPlan, rows: unknown[][]): Promise<Scored> {
    const runner = this.runner!;
    const outputs: Tensor[] = await runner.run(modelInput(plan, rows));
    return {
      rows: resultFields(outputs, rows.length),
      model: { name: runner.version.name, version: runner.version.version },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.all([this.runner?.close(), this.next?.close()]);
  }

  private async follow(): Promise<void> {
    if (this.loading !== undefined || this.closed) return;
    try {
      const v = await this.registry.resolve(this.uri);
      const have = this.next?.version.version ?? this.runner?.version.version;
      if (v.version === have) return;
      this.loading = v.version;
      const runner = await this.load(v);
      if (this.closed) {
        await runner.close();
        return;
      }
      await this.next?.close();
      this.next = runner;
    } catch (err) {
      this.log.warn(
        { err: String(err), model: this.uri },
        "following the model failed; keeping the current version",
      );
    } finally {
      this.loading = undefined;
    }
  }
}

/** Scores through a serving endpoint: one request per batch, `dataframe_split` of the plan's fields. */
export class EndpointScoring implements Scoring {
  private last: ModelLabel | null = null;

  constructor(
    private readonly router: Router,
    private readonly endpoint: string,
    private readonly cluster: KV,
    private readonly registry: Registry,
  ) {}

  /** The signature of the model the endpoint's first route serves (its served models share inputs). */
  async signature(): Promise<Signature | null> {
    const routes = await readValue(this.cluster, keys.routes(this.endpoint), EndpointRoutes, "routes");
    const route = routes?.value.routes[0];
    if (!route) {
      throw new SwitchyardError(
        "TEMPORARILY_UNAVAILABLE",
        `endpoint '${this.endpoint}' has no live routes yet`,
      );
    }
    return (await this.registry.getVersion(route.model_name, route.model_version)).signature;
  }

  model(): ModelLabel | null {
    return this.last;
  }

  takesFrames(): boolean {
    return false;
  }

  async score(plan: InputPlan, rows: unknown[][]): Promise<Scored> {
    const columns = plan.kind === "matrix" ? plan.fields : plan.columns.map((c) => c.name);
    const h = natsHeaders();
    h.set(H.contentType, "application/json");
    const body = new TextEncoder().encode(JSON.stringify({ dataframe_split: { columns, data: rows } }));
    const reply = await this.router.invoke(this.endpoint, body, h);
    const text = new TextDecoder().decode(reply.data);
    if (reply.errorCode) {
      const message = (JSON.parse(text) as { message?: string }).message ?? text;
      throw new SwitchyardError(reply.errorCode as never, `endpoint '${this.endpoint}': ${message}`);
    }
    const name = reply.headers?.get(H.modelName);
    const version = Number(reply.headers?.get(H.modelVersion));
    this.last = name && Number.isInteger(version) && version > 0 ? { name, version } : null;
    return {
      rows: predictionRows((JSON.parse(text) as { predictions?: unknown }).predictions, rows.length),
      model: this.last,
    };
  }

  async close(): Promise<void> {}
}

/** MLflow's `predictions`: a list (one entry per row; an object entry is one field per output) or an object
 * of per-output lists. */
function predictionRows(predictions: unknown, n: number): Array<Record<string, unknown>> {
  if (Array.isArray(predictions) && predictions.length === n) {
    return predictions.map((p) =>
      p && typeof p === "object" && !Array.isArray(p) ? { ...(p as object) } : { prediction: p },
    );
  }
  if (predictions && typeof predictions === "object" && !Array.isArray(predictions)) {
    const outs = Object.entries(predictions as Record<string, unknown>);
    if (outs.every(([, v]) => Array.isArray(v) && v.length === n)) {
      return Array.from({ length: n }, (_, r) =>
        Object.fromEntries(outs.map(([k, v]) => [k, (v as unknown[])[r]])),
      );
    }
  }
  throw new SwitchyardError(
    "INTERNAL_ERROR",
    `the endpoint's reply has no prediction per row (${n} rows sent)`,
  );
}
