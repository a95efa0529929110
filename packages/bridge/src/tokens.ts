// Bearer tokens: KV `<cluster>_cluster` keys `tokens.<sha256 hex of the token>` = a TokenRecord. Only hashes are
// stored; the plaintext exists once, in createToken's answer. Lookups hit an in-memory mirror (kv-mirror.ts), so
// checking a token costs no NATS round trip, and a recently used token's hash is remembered (token-hashes.ts);
// a revocation reaches every bridge by the watch, and within RELOAD_MS by the periodic reload if the watch was
// interrupted.
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { openBucket } from "@switchyard/nats";
import { clusterNames, invalid, notFound, parseScopes } from "@switchyard/protocol";
import { KvMirror } from "./kv-mirror.js";
import { hashToken, TokenHashes } from "./token-hashes.js";

/** What the cluster stores about a token (never the token itself). */
export interface TokenRecord {
  id: string;
  /** The principal Databricks permission grants name (`user_name` and the like). */
  name?: string;
  scopes: string[];
  created_at: number;
  /** Epoch ms after which the token is refused; absent: it does not expire. */
  expires_at?: number;
  /** Epoch ms of a use, written at most once per LAST_USED_EVERY_MS per token. */
  last_used_at?: number;
  /** `apply`: created by `switchyard apply`, so its --prune may revoke it (never a hand-made or admin token). */
  managed?: "apply";
  /** Set by `tokens revoke`: the record stays as a tombstone so the token is told apart from an unknown one. */
  revoked_at?: number;
}

export interface CreatedToken extends TokenRecord {
  /** The bearer token. Shown once: only its hash is stored. */
  token: string;
}

/** A presented token: known and usable, expired, revoked, or unknown (never issued here). */
export type TokenCheck =
  | { status: "ok"; record: TokenRecord }
  | { status: "expired" }
  | { status: "revoked" }
  | { status: "unknown" };

const PREFIX = "tokens.";
/** Tokens look like `syt_<43 base64url chars>`: 256 random bits, recognisable in logs and secret scanners. */
const TOKEN_PREFIX = "syt_";
const TOKEN_SHAPE = /^syt_[A-Za-z0-9_-]{43}$/;
/** Token names are principals in grants: user names (emails too) and service principal names. */
const NAME = /^[A-Za-z0-9_.@+-]{1,128}$/;
/** `last_used_at` is a hint, not an audit log: one KV write per token per minute at most, whatever the traffic. */
export const LAST_USED_EVERY_MS = 60_000;

/** Whether a string has the shape of a Switchyard token (anything else is malformed, not merely unknown). */
export function isTokenShaped(token: string): boolean {
  return TOKEN_SHAPE.test(token);
}

/** A stored record, including those written before scopes existed ({scope: "admin"}: still admin). */
function parseRecord(raw: unknown): TokenRecord | undefined {
  if (raw === null || typeof raw !== "object") return undefined;
  const r = raw as Record<string, unknown>;
  if (typeof r.id !== "string" || typeof r.created_at !== "number") return undefined;
  const scopes = Array.isArray(r.scopes)
    ? r.scopes.filter((s): s is string => typeof s === "string")
    : typeof r.scope === "string"
      ? [r.scope]
      : undefined;
  if (!scopes) return undefined;
  const rec: TokenRecord = { id: r.id, scopes, created_at: r.created_at };
  if (typeof r.name === "string") rec.name = r.name;
  if (typeof r.expires_at === "number") rec.expires_at = r.expires_at;
  if (typeof r.last_used_at === "number") rec.last_used_at = r.last_used_at;
  if (typeof r.revoked_at === "number") rec.revoked_at = r.revoked_at;
  if (r.managed === "apply") rec.managed = "apply";
  return rec;
}

export interface CreateTokenOptions {
  scopes: readonly string[];
  name?: string;
  /** Lifetime in ms; absent: the token does not expire. */
  ttlMs?: number;
  managed?: "apply";
}

export class TokenStore {
  /** Per token hash: when this process last wrote `last_used_at` (or decided not to). */
  private readonly touched = new Map<string, number>();
  private readonly hashes: TokenHashes;

  private constructor(
    private readonly mirror: KvMirror<TokenRecord>,
    hashCapacity?: number,
  ) {
    this.hashes = new TokenHashes(hashCapacity);
  }

  /**
   * Opens the token store of a cluster; resolves once the stored tokens are loaded. `follow` (the bridge) keeps
   * them current; without it (the CLI) the store is a snapshot.
   */
  static async open(
    nc: NatsConnection,
    opts: { cluster?: string; follow?: boolean; hashCapacity?: number } = {},
  ): Promise<TokenStore> {
    const kv = await openBucket(nc, clusterNames(opts.cluster), "cluster");
    const mirror = await KvMirror.open(kv, PREFIX, parseRecord, { follow: opts.follow ?? true });
    return new TokenStore(mirror, opts.hashCapacity);
  }

  /** What a presented token is; an `ok` use is remembered as `last_used_at` (at most once a minute). */
  check(token: string, now = Date.now()): TokenCheck {
    if (!isTokenShaped(token)) return { status: "unknown" };
    const hash = this.hashes.hashOf(token);
    const found = this.mirror.entries.get(hash);
    if (!found) return this.refused(token, "unknown");
    const record = found.value;
    if (record.revoked_at !== undefined) return this.refused(token, "revoked");
    if (record.expires_at !== undefined && now >= record.expires_at) return this.refused(token, "expired");
    this.hashes.remember(token, hash);
    this.touch(hash, found.revision, record, now);
    return { status: "ok", record };
  }

  private refused<S extends "unknown" | "revoked" | "expired">(token: string, status: S): { status: S } {
    this.hashes.forget(token);
    return { status };
  }

  /** Tokens whose hash is remembered now (bounded by `hashCapacity`). */
  get rememberedHashes(): number {
    return this.hashes.size;
  }

  /** The record of a usable presented token, or undefined when it is unknown, revoked or expired. */
  verify(token: string): TokenRecord | undefined {
    const c = this.check(token);
    return c.status === "ok" ? c.record : undefined;
  }

  private touch(hash: string, revision: number, record: TokenRecord, now: number): void {
    const last = Math.max(this.touched.get(hash) ?? 0, record.last_used_at ?? 0);
    if (now - last < LAST_USED_EVERY_MS) return;
    this.touched.set(hash, now);
    // Compare-and-set on the revision we read: a revocation in between must not be undone by this write.
    void this.mirror.kv
      .update(PREFIX + hash, JSON.stringify({ ...record, last_used_at: now }), revision)
      .catch(() => undefined);
  }

  /** Creates a token and returns its plaintext (the only time it is available). */
  async createToken(opts: CreateTokenOptions): Promise<CreatedToken> {
    const scopes = parseScopes(opts.scopes);
    if (opts.name !== undefined && !NAME.test(opts.name)) {
      throw invalid(
        `name: '${opts.name}' is invalid: expected 1-128 characters of letters, digits, '_', '.', '@', '+' or '-'`,
      );
    }
    if (opts.ttlMs !== undefined && !(Number.isSafeInteger(opts.ttlMs) && opts.ttlMs > 0)) {
      throw invalid("ttl: expected a positive duration such as 30d, 12h or 90s");
    }
    const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
    const now = Date.now();
    const record: TokenRecord = { id: randomBytes(8).toString("hex"), scopes, created_at: now };
    if (opts.name !== undefined) record.name = opts.name;
    if (opts.ttlMs !== undefined) record.expires_at = now + opts.ttlMs;
    if (opts.managed !== undefined) record.managed = opts.managed;
    const hash = hashToken(token);
    const revision = await this.mirror.kv.create(PREFIX + hash, JSON.stringify(record));
    this.mirror.entries.set(hash, { value: record, revision });
    return { ...record, token };
  }

  /**
   * Revokes a token by id, leaving a tombstone (so it is refused as revoked, 401, not as unknown);
   * RESOURCE_DOES_NOT_EXIST when no such live token exists.
   */
  async revoke(id: string): Promise<void> {
    for (const [hash, rec] of this.mirror.entries) {
      if (rec.value.id === id && rec.value.revoked_at === undefined) {
        const tombstone: TokenRecord = { ...rec.value, revoked_at: Date.now() };
        // Unconditional: a concurrent last-use write must not win over the revocation.
        const revision = await this.mirror.kv.put(PREFIX + hash, JSON.stringify(tombstone));
        this.mirror.entries.set(hash, { value: tombstone, revision });
        return;
      }
    }
    throw notFound(`token '${id}' does not exist`);
  }

  /**
   * Changes a live token's scopes in place, so the secret already handed out keeps working with the new ones
   * (bridges follow the record by their watch). Compare-and-set on the revision read: a revocation or a
   * last-use write in between makes it re-read, so neither is undone.
   */
  async setScopes(id: string, scopes: readonly string[]): Promise<TokenRecord> {
    const wanted = parseScopes(scopes);
    for (let attempt = 0; ; attempt++) {
      const found = [...this.mirror.entries].find(
        ([, e]) => e.value.id === id && e.value.revoked_at === undefined,
      );
      if (!found) throw notFound(`token '${id}' does not exist`);
      const [hash, entry] = found;
      const next: TokenRecord = { ...entry.value, scopes: wanted };
      try {
        const revision = await this.mirror.kv.update(PREFIX + hash, JSON.stringify(next), entry.revision);
        this.mirror.entries.set(hash, { value: next, revision });
        return next;
      } catch (err) {
        if (attempt >= 5) throw err;
        const latest = await this.mirror.kv.get(PREFIX + hash);
        const value = latest?.operation === "PUT" ? parseRecord(latest.json()) : undefined;
        if (!latest || !value) this.mirror.entries.delete(hash);
        else this.mirror.entries.set(hash, { value, revision: latest.revision });
      }
    }
  }

  /** The live tokens, oldest first (records only; never a token or its hash). */
  list(): TokenRecord[] {
    return [...this.mirror.entries.values()]
      .map((e) => e.value)
      .filter((t) => t.revoked_at === undefined)
      .sort((a, b) => a.created_at - b.created_at);
  }

  close(): void {
    this.mirror.close();
  }
}
