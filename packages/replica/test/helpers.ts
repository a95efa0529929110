// Shared setup of the replica tests: a registry in a fresh cluster namespace, specs, requests, and raw
// onnxruntime-node references (never product code).
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { type Msg, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { decode, encode } from "@switchyard/data/codec";
import { registerModel as ingestModel } from "@switchyard/ingest";
import { clusterNames, H, type ReplicaSpec } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { tempDir, writeTempModel } from "@switchyard/testkit";
import ort from "onnxruntime-node";

export const CONTROL_WORKER = fileURLToPath(new URL("./fixtures/control-worker.mjs", import.meta.url));

export const freshCluster = () => `t${randomUUID().replaceAll("-", "").slice(0, 12)}`;

export interface Registered {
  registry: Registry;
  cluster: string;
  name: string;
  version: number;
}

export async function registerModel(
  nc: NatsConnection,
  bytes: Uint8Array,
  cluster = freshCluster(),
): Promise<Registered> {
  const registry = await Registry.open(nc, { cluster });
  const name = `m${randomUUID().slice(0, 8)}`;
  const v = await ingestModel(registry, name, writeTempModel(bytes));
  return { registry, cluster, name, version: v.version };
}

export function specFor(r: Registered, over: Partial<ReplicaSpec> = {}): ReplicaSpec {
  const id = `r${randomUUID().slice(0, 8)}`;
  return {
    replica_id: id,
    endpoint: "ep",
    served_model: `${r.name}-${r.version}`,
    subject: `${clusterNames(r.cluster).subjects.served("ep", `${r.name}-${r.version}`)}.g1`,
    model_name: r.name,
    model_version: r.version,
    threads: 1,
    max_batch_size: 32,
    max_delay_us: 500,
    max_queue: 256,
    generation: "g1",
    ...over,
  };
}

export const cacheDir = () => tempDir("sy-replica-cache-");

export interface Reply {
  msg: Msg;
  json: () => any;
  msgpack: () => any;
  header: (name: string) => string | undefined;
}

export async function request(
  nc: NatsConnection,
  subject: string,
  body: string | Uint8Array | unknown,
  opts: { contentType?: string; format?: string; headers?: Record<string, string>; timeout?: number } = {},
): Promise<Reply> {
  const h = natsHeaders();
  const contentType = opts.contentType ?? "application/json";
  if (contentType) h.set(H.contentType, contentType);
  if (opts.format) h.set(H.format, opts.format);
  for (const [k, v] of Object.entries(opts.headers ?? {})) h.set(k, v);
  const data =
    typeof body === "string" || body instanceof Uint8Array
      ? body
      : contentType === "application/msgpack"
        ? encode(body)
        : JSON.stringify(body);
  const msg = await nc.request(subject, data, { timeout: opts.timeout ?? 20_000, headers: h });
  return {
    msg,
    json: () => JSON.parse(msg.string()),
    msgpack: () => decode(msg.data, { copy: true }),
    header: (name) => msg.headers?.get(name) || undefined,
  };
}

/** Raw onnxruntime-node: the reference for every prediction. */
export async function rawSession(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes);
}

export async function rawRun(
  session: ort.InferenceSession,
  feeds: Record<string, { data: Float32Array; dims: number[] }>,
): Promise<Record<string, { data: ArrayLike<number | bigint>; dims: readonly number[] }>> {
  const input: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) input[k] = new ort.Tensor("float32", v.data, v.dims);
  const out = await session.run(input);
  return Object.fromEntries(
    Object.entries(out).map(([k, t]) => [k, { data: t.data as ArrayLike<number>, dims: t.dims }]),
  );
}

/** Rows of random floats in [-1, 1). */
export function randomRows(n: number, k: number, seed = 7): number[][] {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: n }, () => Array.from({ length: k }, () => Math.fround(rand() * 2 - 1)));
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(Number(actual[i]) - Number(expected[i])) <= tol)) {
      throw new Error(`value ${i}: ${actual[i]} != ${expected[i]} (tolerance ${tol})`);
    }
  }
}
