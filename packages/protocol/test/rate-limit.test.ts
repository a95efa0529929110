import { describe, expect, it } from "vitest";
import {
  parseRateLimits,
  principalOfReply,
  RateLimitExceeded,
  rateCounterKey,
  rateWindow,
  retryAfterOf,
  SwitchyardError,
} from "../src/mod.js";

describe("rate limits", () => {
  it("fills the default key and names every bad field", () => {
    expect(parseRateLimits([{ calls: 3, renewal_period: "minute" }])).toEqual({
      limits: [{ calls: 3, key: "endpoint", renewal_period: "minute" }],
      problems: [],
    });
    const bad = parseRateLimits([{ calls: -1, key: "team", renewal_period: "hour", extra: 1 }]);
    expect(bad.limits).toBeUndefined();
    const fields = bad.problems.map((p) => p.field).sort();
    expect(fields).toEqual([
      "rate_limits.0",
      "rate_limits.0.calls",
      "rate_limits.0.key",
      "rate_limits.0.renewal_period",
    ]);
    expect(bad.problems.find((p) => p.field === "rate_limits.0.key")?.message).toBe(
      "expected 'user' or 'endpoint'",
    );
  });

  it("takes a NATS client's principal from its custom inbox prefix", () => {
    expect(principalOfReply("_INBOX_alice.abc.1")).toBe("alice");
    expect(principalOfReply("_INBOX.abc.1")).toBe("_INBOX");
    expect(principalOfReply("_INBOX_.abc")).toBe("_INBOX");
    expect(principalOfReply("other.reply")).toBe("_INBOX");
    expect(principalOfReply(undefined)).toBe("_INBOX");
  });

  it("keys counters by endpoint, principal (made key-safe) and minute window", () => {
    const user = { calls: 1, key: "user", renewal_period: "minute" } as const;
    const all = { calls: 1, key: "endpoint", renewal_period: "minute" } as const;
    expect(rateCounterKey("fraud", all, "x", 7)).toBe("fraud.endpoint.7");
    expect(rateCounterKey("fraud", user, "tok_1", 7)).toBe("fraud.user.tok_1.7");
    expect(rateCounterKey("fraud", user, "a.b*", 7)).toBe("fraud.user.a=2eb=2a.7");
    expect(rateWindow(125_000)).toEqual({ index: 2, endsAt: 180_000 });
  });

  it("carries Retry-After seconds on REQUEST_LIMIT_EXCEEDED only", () => {
    const e = new RateLimitExceeded("fraud", { calls: 5, key: "user", renewal_period: "minute" }, 12);
    expect(e.code).toBe("REQUEST_LIMIT_EXCEEDED");
    expect(e.status).toBe(429);
    expect(e.message).toBe("endpoint 'fraud' allows 5 calls per minute per user; retry in 12 s");
    expect(retryAfterOf(e)).toBe(12);
    expect(retryAfterOf(new SwitchyardError("TEMPORARILY_UNAVAILABLE", "x"))).toBeUndefined();
  });
});
