// The wire codec between our own processes: msgpack with typed arrays as raw, aligned bytes, so a Float32Array
// leaves as a Float32Array and arrives as one, usually without a copy. Raw NATS clients may send JSON instead.
//
// Importing this module registers two msgpackr extensions for the whole process (msgpackr's registry is
// global): 0x54 'T' for typed arrays (replacing msgpackr's copying 't' format; Buffers stay msgpack bin)
// and 0x46 'F' for Frame. Both ends must import it. Typed-array bytes are in host order: little-endian hosts.

import type { Dtype } from "@switchyard/protocol";
import { SwitchyardError } from "@switchyard/protocol/errors";
import { addExtension, Packr, Unpackr } from "msgpackr";
import { type ColumnData, Frame } from "./frame.js";
import { DTYPE_ARRAY, isDtype, type TypedArray, type TypedArrayConstructor } from "./tensor.js";

const TYPED_EXT = 0x54;
const FRAME_EXT = 0x46;
/** Wire codes of typed arrays; append only. */
const TYPED: readonly TypedArrayConstructor[] = [
  Int8Array,
  Uint8Array,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
];
/** Each typed payload is [code, pad, pad zero bytes, data, 7 - pad zero bytes]: the length is fixed before
 * the write position is known, and the pad puts the data on an 8-byte boundary of the encoded message. */
const OVERHEAD = 2 + 7;

type Alloc = (size: number) => { target: Uint8Array; position: number };

// Set only while decode() runs (msgpackr unpacks synchronously); other users of msgpackr always get copies.
let zeroCopy = false;

function writeBin(bytes: Uint8Array, allocateForWrite: Alloc): void {
  const n = bytes.byteLength;
  const h = n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  const { target, position } = allocateForWrite(h + n);
  let p = position;
  if (h === 2) {
    target[p++] = 0xc4;
    target[p++] = n;
  } else if (h === 3) {
    target[p++] = 0xc5;
    target[p++] = n >> 8;
    target[p++] = n & 0xff;
  } else {
    target[p++] = 0xc6;
    new DataView(target.buffer, target.byteOffset).setUint32(p, n);
    p += 4;
  }
  target.set(bytes, p);
}

function packTyped(value: TypedArray, code: number, allocateForWrite: Alloc): void {
  const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  const len = OVERHEAD + bytes.byteLength;
  const h = len < 0x100 ? 3 : len < 0x10000 ? 4 : 6;
  const { target, position } = allocateForWrite(h + len);
  let p = position;
  if (h === 3) {
    target[p++] = 0xc7;
    target[p++] = len;
  } else if (h === 4) {
    target[p++] = 0xc8;
    target[p++] = len >> 8;
    target[p++] = len & 0xff;
  } else {
    target[p++] = 0xc9;
    new DataView(target.buffer, target.byteOffset).setUint32(p, len);
    p += 4;
  }
  target[p++] = TYPED_EXT;
  const pad = (8 - ((target.byteOffset + p + 2) & 7)) & 7;
  target[p++] = code;
  target[p++] = pad;
  target.fill(0, p, p + pad);
  target.set(bytes, p + pad);
  const end = p + pad + bytes.byteLength;
  target.fill(0, end, end + 7 - pad);
}

function unpackTyped(payload: Uint8Array): TypedArray {
  const Ctor = TYPED[payload[0] ?? 255];
  const pad = payload[1] ?? 255;
  const byteLength = payload.byteLength - OVERHEAD;
  if (!Ctor || pad > 7 || byteLength < 0 || byteLength % Ctor.BYTES_PER_ELEMENT !== 0) {
    throw new Error("malformed typed array extension");
  }
  const start = payload.byteOffset + 2 + pad;
  const n = byteLength / Ctor.BYTES_PER_ELEMENT;
  if (zeroCopy && start % Ctor.BYTES_PER_ELEMENT === 0) {
    const View = Ctor as unknown as new (b: ArrayBufferLike, o: number, n: number) => TypedArray;
    return new View(payload.buffer, start, n);
  }
  // A typed view must start at a multiple of its element size: copy when the message is not aligned.
  const out = new Ctor(n);
  new Uint8Array(out.buffer).set(payload.subarray(2 + pad, 2 + pad + byteLength));
  return out;
}

TYPED.forEach((Class, code) => {
  addExtension({
    Class,
    type: TYPED_EXT,
    // msgpackr calls pack(value, allocateForWrite); its typings only know the one-argument form.
    pack: ((value: TypedArray, allocateForWrite: Alloc) => {
      if (value.constructor === Class) packTyped(value, code, allocateForWrite);
      else if (value instanceof Uint8Array)
        writeBin(value, allocateForWrite); // a Buffer: plain msgpack bin
      else packTyped(value, TYPED.indexOf(value.constructor as TypedArrayConstructor), allocateForWrite);
    }) as unknown as (value: unknown) => Uint8Array,
    unpack: unpackTyped,
  });
});

// A Frame travels as [rows, names, kinds, blob, strings]: every non-string column's bytes in one blob, each
// at an 8-byte aligned offset (one extension call and one copy at most, however wide the frame), and string
// columns as arrays with nulls (null in `strings` for the others). Decoded columns are views into the blob.
const align8 = (n: number) => (n + 7) & ~7;

function frameBlobLayout(kinds: readonly Dtype[], rows: number): { offsets: number[]; size: number } {
  const offsets: number[] = [];
  let size = 0;
  for (const kind of kinds) {
    if (kind === "string") {
      offsets.push(-1);
      continue;
    }
    size = align8(size);
    offsets.push(size);
    size += rows * DTYPE_ARRAY[kind].BYTES_PER_ELEMENT;
  }
  return { offsets, size };
}

addExtension({
  Class: Frame,
  type: FRAME_EXT,
  write: (frame: Frame) => {
    const cols = frame.entries();
    const { offsets, size } = frameBlobLayout(frame.kinds, frame.length);
    const blob = new Uint8Array(size);
    const strings = cols.map((c, i) => {
      if (Array.isArray(c.data)) return c.data;
      blob.set(new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength), offsets[i]);
      return null;
    });
    return [frame.length, frame.columns, frame.kinds, blob, strings];
  },
  read: ([rows, names, kinds, blob, strings]: [
    number,
    string[],
    Dtype[],
    Uint8Array,
    ((string | null)[] | null)[],
  ]) => {
    if (!Array.isArray(kinds) || !kinds.every(isDtype)) {
      throw new Error("malformed frame: unknown column kind");
    }
    const { offsets, size } = frameBlobLayout(kinds, rows);
    if (!(blob instanceof Uint8Array) || blob.byteLength !== size)
      throw new Error("malformed frame: bad column data");
    // The blob is a view into the message when zero-copy decoding; views of 8-byte types need 8-byte alignment.
    const bytes = blob.byteOffset % 8 === 0 ? blob : blob.slice();
    const data: ColumnData[] = kinds.map((kind, i) => {
      if (kind === "string") return strings[i] ?? [];
      const Ctor = DTYPE_ARRAY[kind] as unknown as new (
        b: ArrayBufferLike,
        o: number,
        n: number,
      ) => TypedArray;
      return new Ctor(bytes.buffer, bytes.byteOffset + offsets[i]!, rows);
    });
    return Frame.of(
      names.map((name, i) => ({ name, kind: kinds[i]!, data: data[i]! })),
      rows,
    );
  },
});

// Plain msgpack maps (no msgpackr records), so other msgpack implementations can read our envelopes.
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** msgpack bytes of `value`; typed arrays, Frames and Tensors (plain objects) round-trip exactly. */
export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * Decodes msgpack. Typed arrays are views into `bytes` when their data is aligned (no copy), so they keep
 * `bytes` alive and share its buffer: pass `{ copy: true }` to get arrays that own their memory (e.g. before
 * transferring their buffers to another thread or when `bytes` will be reused). Bad bytes → BAD_REQUEST.
 */
export function decode(bytes: Uint8Array, options: { copy?: boolean } = {}): unknown {
  zeroCopy = options.copy !== true;
  try {
    return unpackr.unpack(bytes);
  } catch (err) {
    if (err instanceof SwitchyardError) throw err;
    throw new SwitchyardError("BAD_REQUEST", `Invalid msgpack payload: ${(err as Error).message}`);
  } finally {
    zeroCopy = false;
  }
}

export type WireFormat = "json" | "msgpack";

/**
 * A body from a raw NATS client: JSON when the content type says JSON or the first non-blank byte is `{` or
 * `[`, msgpack otherwise (or when the content type says msgpack). Returns the format so the reply can use it.
 * Malformed JSON → BAD_REQUEST.
 */
export function decodeJsonOrMsgpack(
  bytes: Uint8Array,
  contentType?: string,
): { format: WireFormat; value: unknown } {
  const type = contentType?.toLowerCase() ?? "";
  const json = type.includes("json") || (!type.includes("msgpack") && looksLikeJson(bytes));
  if (!json) return { format: "msgpack", value: decode(bytes) };
  try {
    return { format: "json", value: JSON.parse(new TextDecoder().decode(bytes)) };
  } catch (err) {
    throw new SwitchyardError(
      "BAD_REQUEST",
      `Invalid input. Ensure that input is a valid JSON formatted string. Error: '${(err as Error).message}'`,
    );
  }
}

function looksLikeJson(bytes: Uint8Array): boolean {
  let i = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3; // UTF-8 BOM
  for (; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x7b || b === 0x5b;
  }
  return false;
}
