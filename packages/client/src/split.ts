// The router's pure policy: a weighted split of an endpoint's live routes by `traffic_percentage`, picked by a
// point in [0, 1) — random for ordinary requests, a hash of the route key for sticky ones. No I/O, no clock.
import type { LiveRoute } from "@switchyard/protocol";

/** An endpoint's live routes prepared for picking: cumulative weights, computed once per routes update. */
export interface TrafficSplit {
  readonly routes: readonly LiveRoute[];
  /** cumulative[i] = sum of the weights of routes[0..i]; routes with weight 0 are never picked by the split. */
  readonly cumulative: readonly number[];
  readonly total: number;
}

export function buildSplit(routes: readonly LiveRoute[]): TrafficSplit {
  let total = 0;
  const cumulative = routes.map((r) => {
    total += Math.max(0, r.traffic_percentage);
    return total;
  });
  // All weights zero (not a config the API accepts, but a hand-written record could hold it): split evenly.
  if (total === 0) {
    return { routes, cumulative: routes.map((_, i) => i + 1), total: routes.length };
  }
  return { routes, cumulative, total };
}

/** The route a point `u` in [0, 1) falls on; undefined when there are no routes. */
export function pickRoute(split: TrafficSplit, u: number): LiveRoute | undefined {
  const x = u * split.total;
  const c = split.cumulative;
  for (let i = 0; i < c.length; i++) {
    if (x < c[i]!) return split.routes[i];
  }
  return split.routes[split.routes.length - 1];
}

/** A stable point in [0, 1) for a sticky route key (32-bit FNV-1a, then a murmur3 finaliser to spread it). */
export function routeKeyPoint(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 0x1_0000_0000;
}
