// The stream-static join of a features spec: fields read from a KV bucket by the event's key field. Read once
// per distinct key per batch, so a bucket written while the job runs is seen at the next batch; a missing key
// (or a value that is not a JSON object) gives nulls.
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { LookupSpec } from "@switchyard/protocol";

/** NATS KV keys: letters, digits and `-_/=.` (not at either end of a dot). */
const KV_KEY = /^[-/_=.a-zA-Z0-9]+$/;

export class Lookups {
  private readonly buckets = new Map<string, Promise<KV>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly specs: readonly LookupSpec[],
  ) {}

  /** Per event, the lookup fields (in spec order), null where the key or field is missing. */
  async fetch(events: ReadonlyArray<Record<string, unknown>>): Promise<Array<Record<string, unknown>>> {
    const out = events.map(() => ({}) as Record<string, unknown>);
    for (const spec of this.specs) {
      const kv = await this.bucket(spec.bucket);
      const keyOf = (e: Record<string, unknown>) => {
        const k = e[spec.key];
        const text = typeof k === "string" || typeof k === "number" ? String(k) : undefined;
        return text !== undefined && KV_KEY.test(text) && !text.startsWith(".") && !text.endsWith(".")
          ? text
          : undefined;
      };
      const wanted = [...new Set(events.map(keyOf).filter((k) => k !== undefined))];
      const values = new Map(
        await Promise.all(
          wanted.map(async (k) => {
            const entry = await kv.get(k);
            let value: unknown;
            if (entry?.operation === "PUT") {
              try {
                value = entry.json();
              } catch {
                value = undefined;
              }
            }
            return [
              k,
              value && typeof value === "object" ? (value as Record<string, unknown>) : undefined,
            ] as const;
          }),
        ),
      );
      events.forEach((e, i) => {
        const k = keyOf(e);
        const row = k === undefined ? undefined : values.get(k);
        for (const f of spec.fields) out[i]![f] = row?.[f] ?? null;
      });
    }
    return out;
  }

  private bucket(name: string): Promise<KV> {
    let kv = this.buckets.get(name);
    if (!kv) {
      kv = new Kvm(this.nc).open(name);
      this.buckets.set(name, kv);
    }
    return kv;
  }
}
