// The SHA-256 of recently presented tokens, so a client sending thousands of requests a second with one token
// does not have it hashed on every request. Only the hash is remembered, never a verdict: whether the token is
// revoked, expired or what it may do is read from the live token mirror on every request, so nothing cached here
// can outlive a revocation or an expiry. Bounded, and the store caches only tokens the cluster knows, so a flood
// of made-up tokens cannot push out the ones in use.
import { createHash } from "node:crypto";

/** Tokens whose hash a bridge keeps by default: far more clients than one bridge serves at once. */
export const TOKEN_HASH_CAPACITY = 10_000;

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * Two generations of at most `capacity / 2` tokens each: a hit in the recent one is a single Map lookup (a strict
 * LRU's delete-and-reinsert per hit costs several times that); a hit in the older one moves the token to the
 * recent one; when the recent one is full it becomes the older one and the older one is dropped. So a token used
 * at least once per generation stays, and the least recently used go first.
 */
export class TokenHashes {
  private recent = new Map<string, string>();
  private older = new Map<string, string>();
  private readonly generation: number;

  constructor(readonly capacity = TOKEN_HASH_CAPACITY) {
    if (!Number.isSafeInteger(capacity) || capacity < 2) {
      throw new RangeError("capacity must be an integer of at least 2 tokens");
    }
    this.generation = Math.floor(capacity / 2);
  }

  /** The token's hash: remembered, or computed (and not remembered: see `remember`). */
  hashOf(token: string): string {
    const recent = this.recent.get(token);
    if (recent !== undefined) return recent;
    const older = this.older.get(token);
    if (older === undefined) return hashToken(token);
    this.older.delete(token);
    this.keep(token, older);
    return older;
  }

  /** Keeps a token's hash (called for tokens the cluster knows). */
  remember(token: string, hash: string): void {
    if (!this.recent.has(token) && !this.older.has(token)) this.keep(token, hash);
  }

  /** Drops a token (one no longer usable: its requests are refused anyway, so it need not hold a place). */
  forget(token: string): void {
    this.recent.delete(token);
    this.older.delete(token);
  }

  has(token: string): boolean {
    return this.recent.has(token) || this.older.has(token);
  }

  get size(): number {
    return this.recent.size + this.older.size;
  }

  private keep(token: string, hash: string): void {
    if (this.recent.size >= this.generation) {
      this.older = this.recent;
      this.recent = new Map();
    }
    this.recent.set(token, hash);
  }
}
