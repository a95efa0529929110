// Bearer tokens: KV `<cluster>_cluster` keys `tokens.<sha256 hex of the token>` = {id, scope, created_at}. Only
// hashes are stored; the plaintext exists once, in createToken's answer. Lookups hit an in-memory map a KV
// watch keeps current, so checking a token costs one SHA-256 and no NATS round trip.
import { createHash, randomBytes } from "node:crypto";
import type { KV, KvEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import { listKeys, openBucket } from "@switchyard/nats";
import { clusterNames, notFound } from "@switchyard/protocol";

export const TOKEN_SCOPES = ["admin"] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** What the cluster stores about a token (never the token itself). */
export interface TokenRecord {
  id: string;
  scope: string;
  created_at: number;
}

export interface CreatedToken extends TokenRecord {
  /** The bearer token. Shown once: only its hash is stored. */
  token: string;
}

const PREFIX = "tokens.";
/** Tokens look like `syt_<43 base64url chars>`: 256 random bits, recognisable in logs and secret scanners. */
const TOKEN_PREFIX = "syt_";
const utf8 = new TextDecoder();

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export class TokenStore {
  private readonly byHash = new Map<string, TokenRecord>();

  private constructor(
    private readonly kv: KV,
    private readonly watch: QueuedIterator<KvEntry>,
  ) {
    void this.follow();
  }

  /** Opens the token store of a cluster; resolves once the stored tokens are loaded. */
  static async open(nc: NatsConnection, opts: { cluster?: string } = {}): Promise<TokenStore> {
    const names = clusterNames(opts.cluster);
    const kv = await openBucket(nc, names, "cluster");
    const watch = await kv.watch({ key: `${PREFIX}*` });
    const store = new TokenStore(kv, watch);
    // Load what exists now, so a token created before this process started works on its first request.
    for (const key of await listKeys(kv, `${PREFIX}*`)) {
      const entry = await kv.get(key);
      if (entry) store.apply(entry);
    }
    return store;
  }

  private async follow(): Promise<void> {
    for await (const entry of this.watch) this.apply(entry);
  }

  private apply(entry: KvEntry): void {
    const hash = entry.key.slice(PREFIX.length);
    if (entry.operation !== "PUT") {
      this.byHash.delete(hash);
      return;
    }
    try {
      const rec = JSON.parse(utf8.decode(entry.value)) as TokenRecord;
      if (typeof rec.id === "string" && typeof rec.scope === "string") this.byHash.set(hash, rec);
    } catch {
      // A record that is not ours: ignore it, it grants nothing.
    }
  }

  /** The record of a presented token, or undefined when it is unknown or revoked. */
  verify(token: string): TokenRecord | undefined {
    return this.byHash.get(hashToken(token));
  }

  /** Creates a token and returns its plaintext (the only time it is available). */
  async createToken(scope: TokenScope = "admin"): Promise<CreatedToken> {
    const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
    const record: TokenRecord = { id: randomBytes(8).toString("hex"), scope, created_at: Date.now() };
    const hash = hashToken(token);
    await this.kv.create(PREFIX + hash, JSON.stringify(record));
    this.byHash.set(hash, record);
    return { ...record, token };
  }

  /** Revokes a token by id; RESOURCE_DOES_NOT_EXIST when no such token exists. */
  async revoke(id: string): Promise<void> {
    for (const [hash, rec] of this.byHash) {
      if (rec.id === id) {
        await this.kv.delete(PREFIX + hash);
        this.byHash.delete(hash);
        return;
      }
    }
    throw notFound(`token '${id}' does not exist`);
  }

  /** The stored tokens (ids and scopes; never the tokens). */
  list(): TokenRecord[] {
    return [...this.byHash.values()].sort((a, b) => a.created_at - b.created_at);
  }

  close(): void {
    this.watch.stop();
  }
}
