// Tensors: named n-dimensional arrays in an onnxruntime dtype, the unit models take and produce, plus the
// dtype casts every input goes through. A cast never silently changes meaning (a string into a float fails).
import type { Dtype } from "@switchyard/protocol";
import { invalid } from "@switchyard/protocol/errors";

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Tensor elements: a typed array matching the dtype (float16 as raw bits in a Uint16Array, bool as 0/1 in a
 * Uint8Array, int64/uint64 as BigInt64Array/BigUint64Array), or `string[]` for string tensors. */
export type TensorData = TypedArray | string[];

export interface Tensor {
  /** Input/output name; `UNNAMED` ("") for the single unnamed tensor of an `instances`/`inputs` list. */
  name: string;
  dtype: Dtype;
  /** Row-major; dimension 0 is rows (the batch dimension). */
  shape: number[];
  data: TensorData;
}

/** The name of the one tensor a request sends as a bare list (`{"inputs": [[1, 2]]}`). */
export const UNNAMED = "";

export interface TypedArrayConstructor {
  new (length: number): TypedArray;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
}

/** The typed array that holds each non-string dtype. */
export const DTYPE_ARRAY: { readonly [K in Exclude<Dtype, "string">]: TypedArrayConstructor } = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

/** The dtype a typed array holds when nothing says otherwise (Uint8Array → uint8, Uint16Array → uint16). */
export function dtypeOfArray(data: TypedArray): Dtype {
  switch (data.constructor) {
    case Float32Array:
      return "float32";
    case Float64Array:
      return "float64";
    case Int8Array:
      return "int8";
    case Uint8Array:
      return "uint8";
    case Int16Array:
      return "int16";
    case Uint16Array:
      return "uint16";
    case Int32Array:
      return "int32";
    case Uint32Array:
      return "uint32";
    case BigInt64Array:
      return "int64";
    case BigUint64Array:
      return "uint64";
    default:
      // A Buffer is a Uint8Array subclass; anything else is not a tensor element array.
      if (data instanceof Uint8Array) return "uint8";
      throw invalid(`unsupported array type ${data.constructor.name}`);
  }
}

const DTYPE_SET: ReadonlySet<unknown> = new Set<Dtype>([...(Object.keys(DTYPE_ARRAY) as Dtype[]), "string"]);

export function isDtype(value: unknown): value is Dtype {
  return DTYPE_SET.has(value);
}

export function isTypedArray(value: unknown): value is TypedArray {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

/** Whether `data` is the array type `dtype` requires (a Buffer counts as a Uint8Array). */
export function dataMatchesDtype(dtype: Dtype, data: unknown): boolean {
  if (dtype === "string") return Array.isArray(data);
  const ctor = DTYPE_ARRAY[dtype];
  return ctor === Uint8Array ? data instanceof Uint8Array : isTypedArray(data) && data.constructor === ctor;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Allocates zeroed (or "") data of `dtype` for `n` elements. */
export function allocate(dtype: Dtype, n: number): TensorData {
  return dtype === "string" ? new Array<string>(n).fill("") : new DTYPE_ARRAY[dtype](n);
}

/** Why `value` is not a well-formed Tensor, or null if it is. Used on data that arrives over the wire. */
export function tensorProblem(value: unknown, where = "tensor"): string | null {
  if (typeof value !== "object" || value === null) return `${where} must be an object`;
  const t = value as Partial<Tensor>;
  if (typeof t.name !== "string") return `${where}.name must be a string`;
  const label = t.name === UNNAMED ? where : `${where} '${t.name}'`;
  if (!isDtype(t.dtype)) {
    return `${label} has unknown dtype ${JSON.stringify(t.dtype)}`;
  }
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    return `${label} shape must be a list of non-negative integers`;
  }
  if (!dataMatchesDtype(t.dtype, t.data)) {
    const got = isTypedArray(t.data)
      ? t.data.constructor.name
      : Array.isArray(t.data)
        ? "an array"
        : typeof t.data;
    return `${label} data must be ${t.dtype === "string" ? "a string array" : DTYPE_ARRAY[t.dtype].name} for dtype ${t.dtype}, got ${got}`;
  }
  const data = t.data as TensorData;
  if (data.length !== elementCount(t.shape)) {
    return `${label} has ${data.length} elements but shape [${t.shape.join(", ")}] needs ${elementCount(t.shape)}`;
  }
  if (t.dtype === "string" && !(data as unknown[]).every((s) => typeof s === "string")) {
    return `${label} string data must hold only strings`;
  }
  return null;
}

/** Builds a Tensor, checking that data and shape agree with the dtype. */
export function tensor(name: string, dtype: Dtype, shape: readonly number[], data: TensorData): Tensor {
  const t: Tensor = { name, dtype, shape: [...shape], data };
  const problem = tensorProblem(t);
  if (problem) throw invalid(problem);
  return t;
}

const label = (t: Tensor) => (t.name === UNNAMED ? "the unnamed tensor" : `tensor '${t.name}'`);
const shapeText = (shape: readonly (number | string)[]) => `[${shape.join(", ")}]`;

/**
 * Concatenates along dimension 0 (rows). All tensors must share name, dtype and trailing dimensions:
 * batching never mixes requests whose shapes differ. One tensor comes back as is (no copy).
 */
export function concatTensors(ts: readonly Tensor[]): Tensor {
  const first = ts[0];
  if (!first) throw invalid("cannot concatenate zero tensors");
  if (ts.length === 1) return first;
  if (first.shape.length === 0) throw invalid(`cannot concatenate ${label(first)}: it has no row dimension`);
  const trailing = first.shape.slice(1);
  let rows = 0;
  for (const t of ts) {
    if (t.name !== first.name || t.dtype !== first.dtype) {
      throw invalid(`cannot concatenate ${label(t)} (${t.dtype}) with ${label(first)} (${first.dtype})`);
    }
    if (t.shape.length !== first.shape.length || t.shape.some((d, i) => i > 0 && d !== first.shape[i])) {
      throw invalid(
        `cannot concatenate ${label(t)}: shape ${shapeText(t.shape)} does not match ${shapeText(first.shape)} ` +
          "after the first dimension",
      );
    }
    rows += t.shape[0] ?? 0;
  }
  const shape = [rows, ...trailing];
  if (first.dtype === "string") {
    const out: string[] = [];
    for (const t of ts) for (const s of t.data as string[]) out.push(s);
    return { name: first.name, dtype: first.dtype, shape, data: out };
  }
  const out = allocate(first.dtype, elementCount(shape)) as TypedArray;
  let offset = 0;
  for (const t of ts) {
    (out as Float64Array).set(t.data as Float64Array, offset);
    offset += t.data.length;
  }
  return { name: first.name, dtype: first.dtype, shape, data: out };
}

/**
 * Splits along dimension 0 into pieces of `rowCounts` rows (which must add up to the row count). Typed
 * pieces are views into `t.data` (no copy): copy one before transferring its buffer to another thread.
 */
export function splitTensor(t: Tensor, rowCounts: readonly number[]): Tensor[] {
  const rows = t.shape[0];
  if (rows === undefined) throw invalid(`cannot split ${label(t)}: it has no row dimension`);
  let total = 0;
  for (const n of rowCounts) {
    if (!Number.isInteger(n) || n < 0)
      throw invalid(`cannot split ${label(t)}: row count ${n} is not allowed`);
    total += n;
  }
  if (total !== rows) {
    throw invalid(`cannot split ${label(t)}: row counts add up to ${total}, the tensor has ${rows} rows`);
  }
  const rowSize = elementCount(t.shape.slice(1));
  const out: Tensor[] = [];
  let start = 0;
  for (const n of rowCounts) {
    const end = start + n * rowSize;
    const data = Array.isArray(t.data) ? t.data.slice(start, end) : t.data.subarray(start, end);
    out.push({ name: t.name, dtype: t.dtype, shape: [n, ...t.shape.slice(1)], data });
    start = end;
  }
  return out;
}

// ---- casts ----------------------------------------------------------------------------------------------

const INT_RANGE: Partial<Record<Dtype, readonly [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
};
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half-precision bits of `x` (round to nearest even). */
export function toFloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  // A rounding carry out of the mantissa correctly bumps the exponent (up to infinity).
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function fromFloat16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

type Values = TypedArray | readonly (string | null)[];

function describeKind(dtype: Dtype): string {
  if (dtype === "string") return "strings";
  if (dtype === "bool") return "booleans";
  return `${dtype} numbers`;
}

/** Reads element i as a number or bigint (float16 decoded). */
function numberAt(src: TypedArray, from: Dtype, i: number): number | bigint {
  const v = src[i]!;
  return from === "float16" ? fromFloat16Bits(v as number) : v;
}

/**
 * Casts column or tensor values from dtype `from` to dtype `to`. `field` names the data in errors
 * (e.g. "column 'age'"). Same dtype → the same array back (no copy). Allowed: any number type to any number
 * type when every value fits (float64→float32 rounds; into an integer type each value must be a whole number
 * in range); bool only to bool; strings only to strings, without nulls.
 */
export function castColumn(data: Values, from: Dtype, to: Dtype, field: string): TensorData {
  if (from === "string" || to === "string") {
    if (from !== to) throw invalid(`${field} holds ${describeKind(from)}; expected ${to}`);
    const strings = data as readonly (string | null)[];
    const nullAt = strings.indexOf(null);
    if (nullAt >= 0) throw invalid(`${field} row ${nullAt} is null; ${to} values cannot be null`);
    return strings as string[];
  }
  const src = data as TypedArray;
  if (from === to) return src;
  if (from === "bool" || to === "bool") throw invalid(`${field} holds ${describeKind(from)}; expected ${to}`);
  const n = src.length;
  const isBig = from === "int64" || from === "uint64";

  if (to === "float32" || to === "float64") {
    const out = new DTYPE_ARRAY[to](n) as Float64Array;
    if (!isBig && from !== "float16") {
      out.set(src as Float64Array); // native element-wise conversion
      return out;
    }
    for (let i = 0; i < n; i++) out[i] = Number(numberAt(src, from, i));
    return out;
  }
  if (to === "float16") {
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) out[i] = toFloat16Bits(Number(numberAt(src, from, i)));
    return out;
  }

  const notWhole = (i: number, v: number | bigint) =>
    invalid(
      typeof v === "number" && Number.isNaN(v)
        ? `${field} row ${i} is null (NaN); ${to} values cannot be null`
        : `${field} row ${i}: ${v} is not a whole number, cannot cast to ${to}`,
    );
  const outOfRange = (i: number, v: number | bigint) =>
    invalid(`${field} row ${i}: ${v} is out of range for ${to}`);

  if (to === "int64" || to === "uint64") {
    const [lo, hi] = to === "int64" ? [INT64_MIN, INT64_MAX] : [0n, UINT64_MAX];
    const out = new DTYPE_ARRAY[to](n) as BigInt64Array;
    for (let i = 0; i < n; i++) {
      const v = numberAt(src, from, i);
      if (typeof v === "number" && !Number.isInteger(v)) throw notWhole(i, v);
      const b = BigInt(v);
      if (b < lo || b > hi) throw outOfRange(i, v);
      out[i] = b;
    }
    return out;
  }

  const [lo, hi] = INT_RANGE[to]!;
  const out = new DTYPE_ARRAY[to](n) as Int32Array;
  for (let i = 0; i < n; i++) {
    const raw = numberAt(src, from, i);
    if (typeof raw === "bigint") {
      if (raw < BigInt(lo) || raw > BigInt(hi)) throw outOfRange(i, raw);
      out[i] = Number(raw);
      continue;
    }
    if (!Number.isInteger(raw)) throw notWhole(i, raw);
    if (raw < lo || raw > hi) throw outOfRange(i, raw);
    out[i] = raw;
  }
  return out;
}

/** Casts a tensor to `dtype` (the same tensor back when it already has it); errors name `field`. */
export function castTensor(t: Tensor, dtype: Dtype, field = label(t)): Tensor {
  if (t.dtype === dtype) return t;
  return { name: t.name, dtype, shape: t.shape, data: castColumn(t.data, t.dtype, dtype, field) };
}
