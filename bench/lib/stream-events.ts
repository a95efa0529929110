// The events of the stream bench, shared by the publisher process (which sends them) and the bench (which checks
// each result against the model's reference): `{"id": "<prefix>-<n>", "sent_ms": <epoch ms>, "f0": …, "f29": …}`,
// the 30 numeric features of event n being row n % POOL_ROWS of a fixed pool.
import { prng } from "@switchyard/testkit";

export const FEATURES = Array.from({ length: 30 }, (_, i) => `f${i}`);
/** The key field copied into each result. */
export const KEY_FIELD = "id";
/**
 * When the publisher sent the event: the job's event-time field, so it is not a model input and every result
 * carries it back (`event_time`), which is what end-to-end latency is measured from.
 */
export const SENT_FIELD = "sent_ms";
export const POOL_ROWS = 1000;
const SEED = 11;

/** The feature rows, five decimals each (what a producer would send; the reference sees the same numbers). */
export function eventPool(): number[][] {
  const rand = prng(SEED);
  return Array.from({ length: POOL_ROWS }, () =>
    FEATURES.map(() => Math.round((rand() * 2 - 1) * 1e5) / 1e5),
  );
}

export const eventId = (prefix: string, n: number) => `${prefix}-${n}`;

/** n of an id made by `eventId(prefix, n)`, or undefined for an id of another prefix. */
export function eventIndex(id: unknown, prefix: string): number | undefined {
  if (typeof id !== "string" || !id.startsWith(`${prefix}-`)) return undefined;
  const n = Number(id.slice(prefix.length + 1));
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** A function building event n's JSON body, sent at `sentMs`; the feature part of each pool row is encoded once. */
export function eventEncoder(prefix: string): (n: number, sentMs: number) => string {
  const rows = eventPool().map((r) => FEATURES.map((f, i) => `"${f}":${r[i]}`).join(","));
  return (n, sentMs) =>
    `{"${KEY_FIELD}":"${eventId(prefix, n)}","${SENT_FIELD}":${sentMs},${rows[n % POOL_ROWS]}}`;
}
