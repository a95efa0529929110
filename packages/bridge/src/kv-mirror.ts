// An in-memory copy of the keys under one prefix of a KV bucket, kept current by a watch and, as a bound in case
// the watch is interrupted without our noticing, by a full reload every RELOAD_MS. Request paths read the map:
// no NATS round trip per request.
import type { KV, KvEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/transport-node";
import { listKeys } from "@switchyard/nats";

/** The longest a change (a revocation, a grant) can take to reach a bridge whose watch silently stopped. */
export const RELOAD_MS = 10_000;

export interface Mirrored<T> {
  value: T;
  revision: number;
}

const utf8 = new TextDecoder();

export class KvMirror<T> {
  readonly entries = new Map<string, Mirrored<T>>();
  private watch?: QueuedIterator<KvEntry>;
  private timer?: NodeJS.Timeout;
  private closed = false;

  private constructor(
    readonly kv: KV,
    private readonly prefix: string,
    /** The value of a stored record, or undefined for one that is not ours (it is then ignored). */
    private readonly parse: (raw: unknown) => T | undefined,
  ) {}

  /** Resolves once what is stored now is loaded; `follow` false for one-shot readers such as the CLI. */
  static async open<T>(
    kv: KV,
    prefix: string,
    parse: (raw: unknown) => T | undefined,
    opts: { follow: boolean },
  ): Promise<KvMirror<T>> {
    const m = new KvMirror(kv, prefix, parse);
    if (opts.follow) {
      m.watch = await kv.watch({ key: `${prefix}*`, include: "updates" });
      void m.followWatch();
    }
    await m.reload();
    if (opts.follow) {
      m.timer = setInterval(() => void m.reload().catch(() => undefined), RELOAD_MS);
      m.timer.unref();
    }
    return m;
  }

  private async followWatch(): Promise<void> {
    if (!this.watch) return;
    for await (const entry of this.watch) this.apply(entry);
  }

  private decode(entry: KvEntry): T | undefined {
    try {
      return this.parse(JSON.parse(utf8.decode(entry.value)));
    } catch {
      return undefined;
    }
  }

  private apply(entry: KvEntry): void {
    const key = entry.key.slice(this.prefix.length);
    const known = this.entries.get(key);
    // The reload may have read a newer revision than a late watch event.
    if (known && known.revision > entry.revision) return;
    const value = entry.operation === "PUT" ? this.decode(entry) : undefined;
    if (value === undefined) this.entries.delete(key);
    else this.entries.set(key, { value, revision: entry.revision });
  }

  /** Reads every key again: what was deleted while no watch event arrived disappears here. */
  async reload(): Promise<void> {
    const seen = new Map<string, Mirrored<T>>();
    for (const key of await listKeys(this.kv, `${this.prefix}*`)) {
      const entry = await this.kv.get(key);
      if (entry?.operation !== "PUT") continue;
      const value = this.decode(entry);
      if (value !== undefined) seen.set(key.slice(this.prefix.length), { value, revision: entry.revision });
    }
    if (this.closed) return;
    this.entries.clear();
    for (const [k, v] of seen) this.entries.set(k, v);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.watch?.stop();
  }
}
