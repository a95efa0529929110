// A stream message → an event (an object of fields), and events → what a model takes, and its outputs → the
// fields of each result. Pure: every problem with one event is a PoisonEventError naming the field, so the
// scorer dead-letters that event and scores the rest of the batch.
import { type Frame, Frame as FrameClass, type FrameColumn, type Tensor } from "@switchyard/data";
import { decode } from "@switchyard/data/codec";
import { MSGPACK, type Signature } from "@switchyard/protocol";
import { describe, PoisonEventError } from "./features.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** One event: msgpack when the message's Content-Type says so, else one JSON object. */
export function decodeEvent(data: Uint8Array, contentType: string | undefined): Record<string, unknown> {
  let value: unknown;
  if (contentType?.split(";")[0]?.trim() === MSGPACK) {
    try {
      value = decode(data);
    } catch (err) {
      throw new PoisonEventError(`payload: not valid msgpack (${(err as Error).message})`);
    }
  } else {
    let text: string;
    try {
      text = utf8.decode(data);
    } catch {
      throw new PoisonEventError("payload: not valid UTF-8 text");
    }
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new PoisonEventError(`payload: not valid JSON (${(err as Error).message})`);
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PoisonEventError(`payload: expected a JSON object of fields, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/** How a model takes events: one 2-D tensor of fields in order, or named columns. */
export type InputPlan =
  | { kind: "matrix"; input: string; dtype: "float32" | "float64"; fields: string[] }
  | { kind: "columns"; columns: Array<{ name: string; text: boolean }> };

export interface PlanContext {
  signature: Signature | null;
  /** A custom model takes a Frame, whatever its signature says. */
  frames: boolean;
  /** `--columns`: the fields of a one-input model, in order. */
  columns?: readonly string[];
  /** Fields that are never features by default: the key(s) and the event time. */
  reserved: readonly string[];
}

/**
 * How a model takes events, decided from its signature and the first event: inputs named like fields are
 * matched by name; a model with one 2-D input that no field is named after takes `--columns`, else every
 * numeric field of the event except the key and event time, in the event's order.
 */
export function planInputs(ctx: PlanContext, first: Record<string, unknown>): InputPlan {
  const sig = ctx.signature;
  if (sig && sig.inputs.length === 1) {
    const only = sig.inputs[0]!;
    if (only.shape?.length === 2 && (ctx.columns || !(only.name in first))) {
      const fields =
        ctx.columns ??
        Object.keys(first).filter((f) => !ctx.reserved.includes(f) && typeof first[f] === "number");
      if (!ctx.frames && (only.dtype === "float32" || only.dtype === "float64")) {
        return { kind: "matrix", input: only.name, dtype: only.dtype, fields: [...fields] };
      }
      return { kind: "columns", columns: fields.map((name) => ({ name, text: false })) };
    }
  }
  if (sig)
    return {
      kind: "columns",
      columns: sig.inputs.map((i) => ({ name: i.name, text: i.dtype === "string" })),
    };
  // A custom model without a signature gets `--columns`, else every field but the key and event time, typed
  // as the first event has them.
  const fields = ctx.columns ?? Object.keys(first).filter((f) => !ctx.reserved.includes(f));
  return {
    kind: "columns",
    columns: fields.map((name) => ({ name, text: typeof first[name] === "string" })),
  };
}

/** The fields `plan` reads, in order. */
export const planFields = (plan: InputPlan): string[] =>
  plan.kind === "matrix" ? plan.fields : plan.columns.map((c) => c.name);

/** One event's values for `plan`, checked: a missing or ill-typed field throws PoisonEventError naming it. */
export function rowOf(plan: InputPlan, fields: Record<string, unknown>): unknown[] {
  if (plan.kind === "matrix") {
    return plan.fields.map((f) => {
      const v = fields[f];
      if (typeof v === "number") return v;
      throw new PoisonEventError(`field "${f}": expected a number, got ${describe(v)}`);
    });
  }
  return plan.columns.map((c) => {
    const v = fields[c.name];
    if (c.text ? typeof v === "string" : typeof v === "number" || typeof v === "boolean") return v;
    throw new PoisonEventError(
      `field "${c.name}": expected ${c.text ? "a string" : "a number"}, got ${describe(v)}`,
    );
  });
}

/** The rows of one batch as the model's input: one tensor (matrix plans) or a Frame. */
export function modelInput(plan: InputPlan, rows: unknown[][]): Tensor[] | Frame {
  const n = rows.length;
  if (plan.kind === "matrix") {
    const k = plan.fields.length;
    const data = plan.dtype === "float32" ? new Float32Array(n * k) : new Float64Array(n * k);
    for (let r = 0; r < n; r++) {
      const row = rows[r]!;
      for (let j = 0; j < k; j++) data[r * k + j] = row[j] as number;
    }
    return [{ name: plan.input, dtype: plan.dtype, shape: [n, k], data }];
  }
  const columns: FrameColumn[] = plan.columns.map((c, j) => {
    if (c.text) return { name: c.name, kind: "string", data: rows.map((r) => r[j] as string) };
    const data = new Float64Array(n);
    for (let r = 0; r < n; r++) data[r] = Number(rows[r]![j]);
    return { name: c.name, kind: "float64", data };
  });
  return FrameClass.of(columns, n);
}

/**
 * Each row's result fields from the model's outputs: `prediction` for a single output, else one field per
 * output; an output of k values per row gives an array of k.
 */
export function resultFields(outputs: readonly Tensor[], rows: number): Array<Record<string, unknown>> {
  const out = Array.from({ length: rows }, () => ({}) as Record<string, unknown>);
  for (const t of outputs) {
    const name = outputs.length === 1 ? "prediction" : t.name;
    const width = t.shape.slice(1).reduce((a, b) => a * b, 1);
    const data = t.data as ArrayLike<unknown>;
    for (let r = 0; r < rows; r++) {
      const value =
        width === 1 ? plain(data[r]) : Array.from({ length: width }, (_, j) => plain(data[r * width + j]));
      out[r]![name] = value;
    }
  }
  return out;
}

/** JSON has no bigint: int64 outputs become numbers (exact below 2^53). */
const plain = (v: unknown) => (typeof v === "bigint" ? Number(v) : v);
