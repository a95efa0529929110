import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { natsPerFile, uniqueCluster } from "../../client/test/fixtures/doubles.js";
import { TokenHashes } from "../src/token-hashes.js";
import { TokenStore } from "../src/tokens.js";

const files = natsPerFile();
const cleanups = files.cleanups;

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const madeUp = () => `syt_${randomBytes(32).toString("base64url")}`;

async function store(hashCapacity?: number): Promise<{ cluster: string; tokens: TokenStore }> {
  const cluster = uniqueCluster();
  const tokens = await TokenStore.open(files.nc(), { cluster, hashCapacity });
  cleanups.push(() => tokens.close());
  return { cluster, tokens };
}

async function eventually(cond: () => boolean): Promise<void> {
  const until = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met within 30 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("TokenHashes", () => {
  it("answers the SHA-256 of a token, remembered or not", () => {
    const hashes = new TokenHashes(4);
    const t = madeUp();
    expect(hashes.hashOf(t)).toBe(sha256(t));
    hashes.remember(t, sha256(t));
    expect(hashes.hashOf(t)).toBe(sha256(t));
  });

  it("keeps at most `capacity` tokens, dropping the least recently used first", () => {
    const hashes = new TokenHashes(4);
    const [a, b, c, d] = Array.from({ length: 4 }, madeUp) as [string, string, string, string];
    for (const t of [a, b, c]) hashes.remember(t, sha256(t));
    expect(hashes.hashOf(a)).toBe(sha256(a)); // a is used again: b is now the least recently used
    hashes.remember(d, sha256(d));
    expect([a, b, c, d].map((t) => hashes.has(t))).toEqual([true, false, true, true]);
    expect(hashes.size).toBe(3);
  });

  it("keeps a token used all along while thousands of others pass through", () => {
    const hashes = new TokenHashes(8);
    const hot = madeUp();
    hashes.remember(hot, sha256(hot));
    for (let i = 0; i < 2_000; i++) {
      const t = madeUp();
      hashes.remember(t, sha256(t));
      expect(hashes.hashOf(hot)).toBe(sha256(hot));
      expect(hashes.size).toBeLessThanOrEqual(8);
    }
    expect(hashes.has(hot)).toBe(true);
  });

  it("refuses a capacity below 2 or not an integer", () => {
    expect(() => new TokenHashes(1)).toThrow("capacity must be an integer of at least 2 tokens");
    expect(() => new TokenHashes(2.5)).toThrow("capacity must be an integer of at least 2 tokens");
  });
});

describe("TokenStore with remembered hashes", () => {
  it("a revocation made elsewhere refuses a token whose hash is remembered", async () => {
    const { cluster, tokens } = await store();
    const t = await tokens.createToken({ scopes: ["query:*"] });
    expect(tokens.check(t.token).status).toBe("ok");
    expect(tokens.check(t.token).status).toBe("ok");
    expect(tokens.rememberedHashes).toBe(1);
    // Another process (the CLI, another bridge) revokes it: this store learns it by its watch.
    const other = await TokenStore.open(files.nc(), { cluster, follow: false });
    cleanups.push(() => other.close());
    await other.revoke(t.id);
    await eventually(() => tokens.check(t.token).status === "revoked");
    expect(tokens.check(t.token)).toEqual({ status: "revoked" });
    expect(tokens.rememberedHashes).toBe(0);
  });

  it("an expiring token is refused from its expiry on, even right after a remembered use", async () => {
    const { tokens } = await store();
    const t = await tokens.createToken({ scopes: ["query:*"], ttlMs: 60_000 });
    const expiresAt = t.expires_at!;
    expect(tokens.check(t.token, expiresAt - 1).status).toBe("ok");
    expect(tokens.rememberedHashes).toBe(1);
    expect(tokens.check(t.token, expiresAt)).toEqual({ status: "expired" });
    expect(tokens.check(t.token, expiresAt + 1)).toEqual({ status: "expired" });
    expect(tokens.rememberedHashes).toBe(0);
  });

  it("stays within its bound and answers every token right when it is full", async () => {
    const { tokens } = await store(2);
    const made = await Promise.all([1, 2, 3].map(() => tokens.createToken({ scopes: ["read"] })));
    for (let round = 0; round < 3; round++) {
      for (const t of made)
        expect(tokens.check(t.token)).toEqual({
          status: "ok",
          record: expect.objectContaining({ id: t.id }),
        });
    }
    expect(tokens.rememberedHashes).toBe(2);
  });

  it("does not remember tokens the cluster never issued", async () => {
    const { tokens } = await store(2);
    const t = await tokens.createToken({ scopes: ["read"] });
    expect(tokens.check(t.token).status).toBe("ok");
    for (let i = 0; i < 10; i++) expect(tokens.check(madeUp())).toEqual({ status: "unknown" });
    expect(tokens.rememberedHashes).toBe(1);
    expect(tokens.check(t.token).status).toBe("ok");
  });
});
