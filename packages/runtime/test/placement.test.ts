// The inline-or-pool policy on its own: series of measured costs and a fake clock in, sites out.
import { BatchPlacement, type BatchSite } from "@switchyard/runtime";
import { describe, expect, it } from "vitest";

/** Feeds `n` batches, one per `stepMs`, each running where the policy says with the given costs; returns the
 * sites they ran on and the clock after them. */
function drive(
  p: BatchPlacement,
  n: number,
  cost: { computeUs: number; hopUs: number },
  from = 0,
  stepMs = 1,
): { sites: BatchSite[]; now: number; moves: BatchSite[] } {
  const sites: BatchSite[] = [];
  const moves: BatchSite[] = [];
  let now = from;
  for (let i = 0; i < n; i++) {
    const site = p.next(now);
    sites.push(site);
    const moved = p.record(site, cost.computeUs, site === "pool" ? cost.hopUs : null, now);
    if (moved) moves.push(moved);
    now += stepMs;
  }
  return { sites, now, moves };
}

const count = (sites: BatchSite[], site: BatchSite) => sites.filter((s) => s === site).length;

describe("BatchPlacement", () => {
  it("starts in the pool and moves a cheap model inline after minPoolBatches pool batches", () => {
    const p = new BatchPlacement({ minPoolBatches: 8 });
    const { sites, moves } = drive(p, 20, { computeUs: 5, hopUs: 60 });
    expect(sites.slice(0, 8)).toEqual(Array(8).fill("pool"));
    expect(sites.slice(8)).toEqual(Array(12).fill("inline"));
    expect(moves).toEqual(["inline"]);
    expect(p.site).toBe("inline");
    expect(p.costs()).toEqual({ computeUs: 5, hopUs: 60 });
  });

  it("keeps a model whose compute is not well below the hop in the pool", () => {
    const p = new BatchPlacement();
    // compute 40 µs against a 60 µs hop: below the hop but above enterBelow (0.5) of it.
    const { sites, moves } = drive(p, 200, { computeUs: 40, hopUs: 60 });
    expect(count(sites, "inline")).toBe(0);
    expect(moves).toEqual([]);
  });

  it("probes the pool once per probeEveryMs while inline, and not more often", () => {
    const p = new BatchPlacement({ probeEveryMs: 100, minPoolBatches: 4 });
    const warm = drive(p, 4, { computeUs: 5, hopUs: 60 }); // 4 pool batches at t = 0..3, then inline
    expect(p.site).toBe("inline");
    // 1000 batches, one per ms, from t = 4: probes at t = 103, 203, …, 1003 (100 ms after the last pool batch).
    const { sites } = drive(p, 1000, { computeUs: 5, hopUs: 60 }, warm.now, 1);
    expect(count(sites, "pool")).toBe(10);
    expect(sites[99]).toBe("pool");
    expect(sites[98]).toBe("inline");
  });

  it("moves back to the pool when batches grow heavier than the hop, and inline again when they shrink", () => {
    const p = new BatchPlacement({ minPoolBatches: 4 });
    drive(p, 20, { computeUs: 5, hopUs: 60 });
    expect(p.site).toBe("inline");
    // Batches now compute 500 µs each: the fifth makes them the median of the last 9, above the hop.
    const heavy = drive(p, 10, { computeUs: 500, hopUs: 60 }, 20);
    expect(heavy.moves).toEqual(["pool"]);
    expect(heavy.sites).toEqual([...Array(5).fill("inline"), ...Array(5).fill("pool")]);
    // Cheap again: after five light batches the median is below enterBelow × hop and the model goes back inline.
    const light = drive(p, 10, { computeUs: 5, hopUs: 60 }, heavy.now);
    expect(light.moves).toEqual(["inline"]);
    expect(light.sites).toEqual([...Array(5).fill("pool"), ...Array(5).fill("inline")]);
  });

  it("is not moved by one slow batch (a cold start, a GC pause)", () => {
    const p = new BatchPlacement({ minPoolBatches: 4 });
    drive(p, 20, { computeUs: 5, hopUs: 60 });
    expect(drive(p, 1, { computeUs: 50_000, hopUs: 60 }, 20).moves).toEqual([]);
    expect(drive(p, 20, { computeUs: 5, hopUs: 60 }, 21).moves).toEqual([]);
    expect(p.site).toBe("inline");
  });

  it("does not flap between the thresholds (hysteresis)", () => {
    const p = new BatchPlacement({ minPoolBatches: 4, computeWindow: 1 });
    drive(p, 4, { computeUs: 10, hopUs: 100 });
    expect(p.site).toBe("inline");
    // Compute 80 µs: above enterBelow × hop (50) but below leaveAbove × hop (100): stays inline.
    const mid = drive(p, 500, { computeUs: 80, hopUs: 100 }, 10);
    expect(mid.moves).toEqual([]);
    expect(count(mid.sites, "inline")).toBe(500 - count(mid.sites, "pool"));
    expect(p.site).toBe("inline");
    // From the pool, the same 80 µs does not move it inline.
    const q = new BatchPlacement({ minPoolBatches: 4, computeWindow: 1 });
    expect(drive(q, 500, { computeUs: 80, hopUs: 100 }).moves).toEqual([]);
    expect(q.site).toBe("pool");
  });

  it("reads the hop's cost as its floor over the recent pool batches, so a lagging hop does not move the model", () => {
    const p = new BatchPlacement({ minPoolBatches: 4, hopWindow: 4, computeWindow: 1 });
    // Hops of 60 µs, then one of 5000 µs (a busy event loop): the floor stays 60.
    drive(p, 3, { computeUs: 40, hopUs: 60 });
    drive(p, 1, { computeUs: 40, hopUs: 5000 }, 3);
    expect(p.costs().hopUs).toBe(60);
    expect(p.site).toBe("pool");
    // Once only the slow hops are in the window, the floor follows them.
    drive(p, 4, { computeUs: 40, hopUs: 5000 }, 4);
    expect(p.costs().hopUs).toBe(5000);
    expect(p.site).toBe("inline");
  });

  it("rejects options it cannot work with, naming them", () => {
    expect(() => new BatchPlacement({ enterBelow: 2, leaveAbove: 1 })).toThrow(/options\.leaveAbove/);
    expect(() => new BatchPlacement({ hopWindow: 0 })).toThrow(/options\.hopWindow/);
    expect(() => new BatchPlacement({ minPoolBatches: 1.5 })).toThrow(/options\.minPoolBatches/);
    expect(() => new BatchPlacement({ computeWindow: 0 })).toThrow(/options\.computeWindow/);
  });
});
