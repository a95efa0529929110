// The SHA-256 of recently presented tokens, so a client sending thousands of requests a second with one token
// does not have it hashed on every request. Only the hash is remembered, never a verdict: whether the token is
// revoked, expired or what it may do is read from the live token mirror on every request, so nothing cached here
// can outlive a revocation or an expiry. Bounded, least recently used first out; the store caches only tokens the
// cluster knows, so a flood of made-up tokens cannot push out the ones in use.
import { createHash } from "node:crypto";

/** Tokens whose hash a bridge keeps by default: far more clients than one bridge serves at once. */
export const TOKEN_HASH_CAPACITY = 10_000;

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export class TokenHashes {
  private readonly byToken = new Map<string, string>();

  constructor(readonly capacity = TOKEN_HASH_CAPACITY) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) {
      throw new RangeError("capacity must be a positive integer of tokens");
    }
  }

  /** The token's hash, computed once while it stays among the `capacity` most recently used. */
  hashOf(token: string): string {
    const known = this.byToken.get(token);
    if (known === undefined) return hashToken(token);
    // Re-inserted: a Map iterates in insertion order, so the first key is always the least recently used.
    this.byToken.delete(token);
    this.byToken.set(token, known);
    return known;
  }

  /** Keeps a token's hash (called for tokens the cluster knows). */
  remember(token: string, hash: string): void {
    if (this.byToken.has(token)) return;
    if (this.byToken.size >= this.capacity) {
      const oldest = this.byToken.keys().next().value;
      if (oldest !== undefined) this.byToken.delete(oldest);
    }
    this.byToken.set(token, hash);
  }

  /** Drops a token (one no longer usable: its requests are refused anyway, so it need not hold a place). */
  forget(token: string): void {
    this.byToken.delete(token);
  }

  has(token: string): boolean {
    return this.byToken.has(token);
  }

  get size(): number {
    return this.byToken.size;
  }
}
