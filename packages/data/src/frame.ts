// Frame: ordered named columns, the one type that carries tabular request data everywhere (bridge, replica,
// batch, stream, custom models). Columns are typed arrays or string arrays; never per-row objects on a hot path.
import type { Dtype } from "@switchyard/protocol";
import { invalid } from "@switchyard/protocol/errors";
import {
  allocate,
  castColumn,
  dataMatchesDtype,
  dtypeOfArray,
  fromFloat16Bits,
  isDtype,
  isTypedArray,
  type TypedArray,
} from "./tensor.js";

/**
 * Column storage by kind (a kind is a `Dtype`):
 * - numbers: the dtype's typed array. JSON numbers arrive as float64 and are cast to the model's dtype at the
 *   model. Null is NaN (float kinds only; integer columns have no null).
 * - int64/uint64: BigInt64Array/BigUint64Array, never float64, because onnxruntime takes int64 feeds only as
 *   BigInt64Array and ids above 2^53 must survive a round trip unchanged. JSON never produces int64 columns
 *   (JSON numbers are float64); they come from casts, model outputs and msgpack.
 * - bool: a Uint8Array of 0/1 with kind "bool" (the kind, not the array type, tells it from uint8); no nulls.
 * - float16: raw half bits in a Uint16Array with kind "float16".
 * - string: `(string | null)[]`, null for a missing value.
 */
export type ColumnData = TypedArray | (string | null)[];

/** What users may pass for a column: typed arrays, or plain arrays that are inferred (number → float64,
 * boolean → bool, string → string, bigint → int64; null allowed in number and string arrays). */
export type ColumnInput =
  | ColumnData
  | readonly (number | null)[]
  | readonly boolean[]
  | readonly (string | null)[]
  | readonly bigint[];

export interface FrameColumn {
  name: string;
  kind: Dtype;
  data: ColumnData;
}

export class Frame {
  /** Number of rows. */
  readonly length: number;
  readonly #names: readonly string[];
  readonly #kinds: readonly Dtype[];
  readonly #data: readonly ColumnData[];
  /** Name → position, built on first lookup (the 2-D feed path and the codec never need it). */
  #index: Map<string, number> | undefined;

  private constructor(
    names: string[],
    kinds: Dtype[],
    data: ColumnData[],
    length: number,
    index?: Map<string, number>,
  ) {
    this.#names = names;
    this.#kinds = kinds;
    this.#data = data;
    this.length = length;
    this.#index = index;
  }

  /**
   * Builds a frame from columns whose data already matches their kind (checked). `length` is only needed
   * for a frame without columns.
   */
  static of(columns: readonly FrameColumn[], length?: number): Frame {
    const names: string[] = [];
    const kinds: Dtype[] = [];
    const data: ColumnData[] = [];
    const index = new Map<string, number>();
    let rows = length;
    for (const c of columns) {
      if (typeof c.name !== "string") throw invalid("column names must be strings");
      if (index.has(c.name)) throw invalid(`duplicate column '${c.name}'`);
      index.set(c.name, names.length);
      if (!isDtype(c.kind)) {
        throw invalid(`column '${c.name}' has unknown kind ${JSON.stringify(c.kind)}`);
      }
      if (!dataMatchesDtype(c.kind, c.data)) {
        throw invalid(`column '${c.name}': ${describeData(c.data)} cannot hold a ${c.kind} column`);
      }
      if (c.kind === "string" && !(c.data as unknown[]).every((v) => v === null || typeof v === "string")) {
        throw invalid(`column '${c.name}': a string column holds only strings and nulls`);
      }
      if (rows === undefined) rows = c.data.length;
      else if (c.data.length !== rows) {
        throw invalid(`column '${c.name}' has ${c.data.length} values; expected ${rows} rows`);
      }
      names.push(c.name);
      kinds.push(c.kind);
      data.push(c.data);
    }
    return new Frame(names, kinds, data, rows ?? 0, index);
  }

  /**
   * `Frame.fromColumns({ a: new Float64Array([1, 2]), b: ["x", null] })`. Typed arrays keep their type;
   * `kinds` marks a Uint8Array as "bool" or a Uint16Array as "float16", or casts an inferred plain array.
   */
  static fromColumns(
    columns: Readonly<Record<string, ColumnInput>>,
    kinds: Readonly<Record<string, Dtype>> = {},
  ) {
    return Frame.of(Object.entries(columns).map(([name, values]) => toColumn(name, values, kinds[name])));
  }

  /** Records → columns in first-seen key order; a key missing from a record is null (as pandas does). */
  static fromRecords(records: readonly unknown[], where = "records"): Frame {
    const keys = new Map<string, true>();
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      if (typeof r !== "object" || r === null || Array.isArray(r)) {
        throw invalid(
          `${where}[${i}] must be an object mapping column names to values, got ${describeValue(r)}`,
        );
      }
      for (const k of Object.keys(r)) keys.set(k, true);
    }
    const cols: FrameColumn[] = [];
    for (const name of keys.keys()) {
      const get = (i: number) => {
        const r = records[i] as Record<string, unknown>;
        return Object.hasOwn(r, name) ? r[name] : null;
      };
      cols.push(inferColumn(name, records.length, get, (i) => `${where}[${i}]`));
    }
    return Frame.of(cols, records.length);
  }

  /** Row-wise concatenation; every frame must have the same columns, in the same order, of the same kinds. */
  static concat(frames: readonly Frame[]): Frame {
    const first = frames[0];
    if (!first) throw invalid("cannot concatenate zero frames");
    if (frames.length === 1) return first;
    const key = first.schemaKey();
    let rows = 0;
    for (const f of frames) {
      if (f.schemaKey() !== key) {
        throw invalid(`cannot concatenate frames with different columns: [${f.schemaKey()}] vs [${key}]`);
      }
      rows += f.length;
    }
    const data = first.#kinds.map((kind, c) => {
      if (kind === "string") {
        const out: (string | null)[] = [];
        for (const f of frames) for (const v of f.#data[c] as (string | null)[]) out.push(v);
        return out;
      }
      const out = allocate(kind, rows) as Float64Array;
      let offset = 0;
      for (const f of frames) {
        out.set(f.#data[c] as Float64Array, offset);
        offset += f.length;
      }
      return out;
    });
    return new Frame([...first.#names], [...first.#kinds], data, rows);
  }

  /** Column names, in order. */
  get columns(): readonly string[] {
    return this.#names;
  }

  /** Column kinds, in column order. */
  get kinds(): readonly Dtype[] {
    return this.#kinds;
  }

  has(name: string): boolean {
    return this.#lookup().has(name);
  }

  /** A column's values; throws INVALID_PARAMETER_VALUE naming the column if there is none. */
  column(name: string): ColumnData {
    return this.#data[this.#at(name)]!;
  }

  kind(name: string): Dtype {
    return this.#kinds[this.#at(name)]!;
  }

  /** The columns with their kinds, in order (no copies of the data). */
  entries(): FrameColumn[] {
    return this.#names.map((name, i) => ({ name, kind: this.#kinds[i]!, data: this.#data[i]! }));
  }

  /** `name:kind,…` — equal keys mean two frames can be concatenated (the batcher groups by it). */
  schemaKey(): string {
    return this.#names.map((n, i) => `${JSON.stringify(n)}:${this.#kinds[i]}`).join(",");
  }

  /**
   * One plain object per row: numbers (NaN as null), booleans, bigint for int64/uint64, strings or null.
   * Allocates per row: for people and tests, not for the hot path.
   */
  rows(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (let r = 0; r < this.length; r++) {
      const row: Record<string, unknown> = {};
      for (let c = 0; c < this.#names.length; c++)
        row[this.#names[c]!] = cellValue(this.#kinds[c]!, this.#data[c]!, r);
      out.push(row);
    }
    return out;
  }

  /** A frame of the named columns, in the order given. */
  select(names: readonly string[]): Frame {
    const idx = names.map((n) => this.#at(n));
    return new Frame(
      idx.map((i) => this.#names[i]!),
      idx.map((i) => this.#kinds[i]!),
      idx.map((i) => this.#data[i]!),
      this.length,
    );
  }

  /** Rows [start, end). Typed columns are views into this frame's arrays (no copy). */
  slice(start = 0, end = this.length): Frame {
    const s = clamp(start, this.length);
    const e = Math.max(s, clamp(end, this.length));
    const data = this.#data.map((d) => (Array.isArray(d) ? d.slice(s, e) : d.subarray(s, e)));
    return new Frame([...this.#names], [...this.#kinds], data, e - s);
  }

  /** A frame with `name` replaced in place, or appended when new (e.g. a prediction column). */
  withColumn(name: string, values: ColumnInput, kind?: Dtype): Frame {
    const col = toColumn(name, values, kind);
    // An empty frame with no columns takes its row count from the first column added.
    const rows = this.#names.length === 0 && this.length === 0 ? col.data.length : this.length;
    if (col.data.length !== rows) {
      throw invalid(`column '${name}' has ${col.data.length} values; the frame has ${rows} rows`);
    }
    const at = this.#lookup().get(name);
    const names = [...this.#names];
    const kinds = [...this.#kinds];
    const data = [...this.#data];
    if (at === undefined) {
      names.push(name);
      kinds.push(col.kind);
      data.push(col.data);
    } else {
      kinds[at] = col.kind;
      data[at] = col.data;
    }
    return new Frame(names, kinds, data, rows);
  }

  #lookup(): Map<string, number> {
    if (!this.#index) {
      this.#index = new Map();
      for (let i = 0; i < this.#names.length; i++) this.#index.set(this.#names[i]!, i);
    }
    return this.#index;
  }

  #at(name: string): number {
    const i = this.#lookup().get(name);
    if (i === undefined) {
      throw invalid(`no column '${name}'; the frame has columns: ${this.#names.join(", ") || "(none)"}`);
    }
    return i;
  }
}

function clamp(i: number, n: number): number {
  const j = Math.trunc(i);
  return j < 0 ? Math.max(0, n + j) : Math.min(j, n);
}

function cellValue(kind: Dtype, data: ColumnData, r: number): unknown {
  const v = data[r];
  if (kind === "bool") return v === 1;
  if (kind === "float16") {
    const x = fromFloat16Bits(v as number);
    return Number.isNaN(x) ? null : x;
  }
  if (typeof v === "number" && Number.isNaN(v)) return null;
  return v;
}

export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return "a string";
  if (typeof v === "number") return "a number";
  if (typeof v === "boolean") return "a boolean";
  return typeof v;
}

function describeData(data: unknown): string {
  return isTypedArray(data)
    ? `a ${data.constructor.name}`
    : Array.isArray(data)
      ? "a plain array"
      : describeValue(data);
}

function toColumn(name: string, values: ColumnInput, kind: Dtype | undefined): FrameColumn {
  if (isTypedArray(values)) {
    const natural = dtypeOfArray(values);
    const k = kind ?? natural;
    if (!dataMatchesDtype(k, values)) {
      throw invalid(`column '${name}': a ${values.constructor.name} cannot hold a ${k} column`);
    }
    return { name, kind: k, data: values };
  }
  if (!Array.isArray(values))
    throw invalid(`column '${name}' must be an array, got ${describeValue(values)}`);
  const col = inferColumn(name, values.length, (i) => values[i]);
  if (kind && kind !== col.kind) {
    col.data = castColumn(col.data, col.kind, kind, `column '${name}'`);
    col.kind = kind;
  }
  return col;
}

type Seen = "number" | "string" | "boolean" | "bigint";

/**
 * Infers a column's kind from JSON-like values and fills its typed storage: numbers → float64 (null → NaN),
 * strings → string (null stays null), booleans → bool, bigints → int64; all-null → float64 NaN. Mixed kinds,
 * nested lists/objects, and nulls in bool/int64 columns fail naming the column and the row (`rowLabel(i)`).
 */
export function inferColumn(
  name: string,
  n: number,
  get: (i: number) => unknown,
  rowLabel: (i: number) => string = (i) => `row ${i}`,
): FrameColumn {
  let seen: Seen | undefined;
  let firstAt = -1;
  let firstNull = -1;
  for (let i = 0; i < n; i++) {
    const v = get(i);
    if (v === null || v === undefined) {
      if (firstNull < 0) firstNull = i;
      continue;
    }
    const t = typeof v;
    if (t !== "number" && t !== "string" && t !== "boolean" && t !== "bigint") {
      throw invalid(
        `column '${name}': ${rowLabel(i)} is ${describeValue(v)}; a column holds numbers, strings, booleans or null ` +
          "(send n-dimensional data as tensors with 'inputs')",
      );
    }
    if (seen === undefined) {
      seen = t as Seen;
      firstAt = i;
    } else if (seen !== t) {
      throw invalid(
        `column '${name}' mixes value types: ${rowLabel(firstAt)} is ${describeValue(get(firstAt))}, ` +
          `${rowLabel(i)} is ${describeValue(v)}`,
      );
    }
  }
  if (seen === "string") {
    const out = new Array<string | null>(n);
    for (let i = 0; i < n; i++) out[i] = (get(i) as string | null | undefined) ?? null;
    return { name, kind: "string", data: out };
  }
  if ((seen === "boolean" || seen === "bigint") && firstNull >= 0) {
    const kind = seen === "boolean" ? "bool" : "int64";
    throw invalid(`column '${name}': ${rowLabel(firstNull)} is null; a ${kind} column cannot hold nulls`);
  }
  if (seen === "boolean") {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = get(i) ? 1 : 0;
    return { name, kind: "bool", data: out };
  }
  if (seen === "bigint") {
    const out = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      const v = get(i) as bigint;
      if (BigInt.asIntN(64, v) !== v)
        throw invalid(`column '${name}': ${rowLabel(i)} (${v}) is out of range for int64`);
      out[i] = v;
    }
    return { name, kind: "int64", data: out };
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (get(i) as number | null | undefined) ?? Number.NaN;
  return { name, kind: "float64", data: out };
}
