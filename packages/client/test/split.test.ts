// The router's pure split policy: weighted picks by traffic_percentage and sticky points for route keys.
import type { LiveRoute } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { buildSplit, pickRoute, routeKeyPoint } from "../src/split.js";

const r = (name: string, traffic: number): LiveRoute => ({
  served_model_name: name,
  traffic_percentage: traffic,
  subject: `sy.rt.ep.${name}.g1`,
  model_name: "m",
  model_version: 1,
});

function shares(routes: LiveRoute[], n: number, point: (i: number) => number): Record<string, number> {
  const split = buildSplit(routes);
  const counts: Record<string, number> = {};
  for (const x of routes) counts[x.served_model_name] = 0;
  for (let i = 0; i < n; i++) {
    const picked = pickRoute(split, point(i))!;
    counts[picked.served_model_name]! += 1;
  }
  for (const k of Object.keys(counts)) counts[k] = (100 * counts[k]!) / n;
  return counts;
}

describe("traffic split", () => {
  it("lands each served model within 2 points of its percentage over 10,000 random picks", () => {
    for (const routes of [
      [r("a", 80), r("b", 20)],
      [r("a", 50), r("b", 30), r("c", 20)],
      [r("a", 1), r("b", 99)],
    ]) {
      const got = shares(routes, 10_000, () => Math.random());
      for (const x of routes) {
        expect(Math.abs(got[x.served_model_name]! - x.traffic_percentage)).toBeLessThanOrEqual(2);
      }
    }
  });

  it("never picks a served model with 0% traffic", () => {
    const got = shares([r("a", 0), r("b", 100), r("c", 0)], 10_000, () => Math.random());
    expect(got).toEqual({ a: 0, b: 100, c: 0 });
  });

  it("picks the boundaries exactly", () => {
    const split = buildSplit([r("a", 80), r("b", 20)]);
    expect(pickRoute(split, 0)!.served_model_name).toBe("a");
    expect(pickRoute(split, 0.7999)!.served_model_name).toBe("a");
    expect(pickRoute(split, 0.8)!.served_model_name).toBe("b");
    expect(pickRoute(split, 0.99999)!.served_model_name).toBe("b");
    expect(pickRoute(buildSplit([]), 0.5)).toBeUndefined();
  });

  it("splits evenly when every weight is zero", () => {
    const got = shares([r("a", 0), r("b", 0)], 10_000, (i) => (i + 0.5) / 10_000);
    expect(got).toEqual({ a: 50, b: 50 });
  });
});

describe("sticky route keys", () => {
  it("maps a key to the same point every time, in [0, 1)", () => {
    for (const key of ["user-1", "user-2", "", "ключ", "x".repeat(500)]) {
      const p = routeKeyPoint(key);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(1);
      expect(routeKeyPoint(key)).toBe(p);
    }
  });

  it("spreads 10,000 distinct keys by the split within 2 points", () => {
    const routes = [r("a", 70), r("b", 30)];
    const got = shares(routes, 10_000, (i) => routeKeyPoint(`customer-${i}`));
    expect(Math.abs(got.a! - 70)).toBeLessThanOrEqual(2);
    expect(Math.abs(got.b! - 30)).toBeLessThanOrEqual(2);
  });
});
