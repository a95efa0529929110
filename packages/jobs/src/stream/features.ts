// Reading a stream event's time, and the error of an event the stream cannot use. Pure.

/** An event the stream cannot use (the scorer sends it to the dead-letter subject with this message). */
export class PoisonEventError extends Error {
  override name = "PoisonEventError";
}

// A date-time without an offset is read as UTC, so the scorer's own time zone never changes a result.
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** An event's time in epoch milliseconds: an ISO-8601 string or a number of epoch milliseconds. */
export function eventTimeMs(value: unknown, field: string): number {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string") {
    const m = ISO_8601.exec(value);
    // Date-only strings are UTC already; a date-time needs the Z added when it has no offset.
    const ms = m ? Date.parse(value.includes(":") && !m[1] ? `${value}Z` : value) : Number.NaN;
    if (Number.isFinite(ms)) return ms;
  }
  throw new PoisonEventError(
    `event time field "${field}": expected an ISO-8601 string or epoch milliseconds, got ${describe(value)}`,
  );
}

/** A field's value as a message shows it: JSON, or `nothing` when the field is missing. */
export function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  // NaN, Infinity and msgpack's bigints have no JSON form.
  return typeof value === "number" || typeof value === "bigint" ? String(value) : JSON.stringify(value);
}
