// The batch envelope (docs/realtime.md "Batch envelopes"): several requests for one served model, or their
// replies, in one NATS message. A router sends one when more than one request for the same route subject waits
// in the same event-loop turn; the replica answers it with one envelope of replies in the same order.
//
// The message carries the header `x-switchyard-batch: <n>`; its body is n parts, each
//   u32 LE header length | header block | u32 LE body length | body
// where the header block is what the part would have carried as a NATS message of its own
// ("NATS/1.0\r\n" then "key: value\r\n" per value, then "\r\n"). No I/O here and no NATS client: callers turn
// header blocks into their client's header objects.

import { SwitchyardError } from "./errors.js";

/** The most requests a router puts in one envelope. */
export const MAX_ENVELOPE_PARTS = 64;

/** Bytes a message's own NATS header block takes besides its parts: `x-switchyard-batch: <n>` and framing. */
export const ENVELOPE_OVERHEAD_BYTES = 64;

export interface EnvelopePart {
  /** A NATS header block (may be empty: no headers). */
  headers: Uint8Array;
  body: Uint8Array;
}

const HEAD = "NATS/1.0\r\n";
const utf8 = new TextEncoder();

/** The NATS header block of `headers` (key → values), as it goes on the wire. */
export function headerBlock(headers: Iterable<[string, string[]]>): Uint8Array {
  let s = HEAD;
  for (const [key, values] of headers) for (const v of values) s += `${key}: ${v}\r\n`;
  return utf8.encode(`${s}\r\n`);
}

/** Bytes of the NATS header block `headerBlock(headers)` returns, without building it. */
export function headerBlockBytes(headers: Iterable<[string, string[]]>): number {
  let n = HEAD.length + 2;
  for (const [key, values] of headers) {
    for (const v of values) n += Buffer.byteLength(key) + 2 + Buffer.byteLength(v) + 2;
  }
  return n;
}

/** Bytes a part takes in an envelope. */
export const partBytes = (headerBytes: number, bodyBytes: number) => 8 + headerBytes + bodyBytes;

export function packEnvelope(parts: readonly EnvelopePart[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += partBytes(p.headers.byteLength, p.body.byteLength);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.headers.byteLength, true);
    out.set(p.headers, at + 4);
    at += 4 + p.headers.byteLength;
    view.setUint32(at, p.body.byteLength, true);
    out.set(p.body, at + 4);
    at += 4 + p.body.byteLength;
  }
  return out;
}

const malformed = (why: string) => new SwitchyardError("BAD_REQUEST", `malformed batch envelope: ${why}`);

/**
 * The parts of an envelope whose `x-switchyard-batch` header says `count`. Parts are views into `data` (no copy).
 * Throws BAD_REQUEST when the count is not a whole number from 1 to MAX_ENVELOPE_PARTS or the body does not
 * hold exactly that many parts.
 */
export function unpackEnvelope(data: Uint8Array, count: string): EnvelopePart[] {
  const n = Number(count);
  if (!Number.isInteger(n) || n < 1 || n > MAX_ENVELOPE_PARTS) {
    throw malformed(
      `x-switchyard-batch must be a whole number from 1 to ${MAX_ENVELOPE_PARTS}, got '${count}'`,
    );
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const parts: EnvelopePart[] = [];
  let at = 0;
  const take = (what: string): Uint8Array => {
    if (at + 4 > data.byteLength)
      throw malformed(`part ${parts.length + 1} of ${n} is cut short (${what} length)`);
    const len = view.getUint32(at, true);
    at += 4;
    if (at + len > data.byteLength) {
      throw malformed(`part ${parts.length + 1} of ${n} is cut short (${what}: ${len} bytes announced)`);
    }
    const bytes = data.subarray(at, at + len);
    at += len;
    return bytes;
  };
  while (parts.length < n) {
    const headers = take("headers");
    parts.push({ headers, body: take("body") });
  }
  if (at !== data.byteLength) throw malformed(`${data.byteLength - at} bytes follow the last of ${n} parts`);
  return parts;
}
