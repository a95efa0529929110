// The stats feed on an injected clock: a source that stopped reporting is dropped even when nobody lists that
// kind of source (the autoscaler never lists replicas), so replicas that came and went do not pile up.
import { StatsFeed } from "@switchyard/autoscaler";
import type { ReplicaStatsSnapshot, RouterStatsSnapshot } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

const replica = (id: string) => ({ replica_id: id }) as ReplicaStatsSnapshot;
const router = (id: string) => ({ router_id: id }) as RouterStatsSnapshot;
/** How many sources the feed holds in memory, listed or not. */
const held = (feed: StatsFeed) => {
  const f = feed as unknown as { replicaStats: Map<string, unknown>; routerStats: Map<string, unknown> };
  return f.replicaStats.size + f.routerStats.size;
};

describe("StatsFeed", () => {
  it("drops silent sources on later reports, without being asked for them", () => {
    let now = 1_000_000;
    const feed = new StatsFeed({ staleMs: 5_000, now: () => now });
    for (let i = 0; i < 100; i++) feed.addReplica(replica(`gone-${i}`));
    feed.addRouter(router("gone-router"));
    expect(held(feed)).toBe(101);
    now += 6_000;
    feed.addRouter(router("live-router"));
    expect(held(feed)).toBe(1);
    expect(feed.routers().map((r) => r.snapshot.router_id)).toEqual(["live-router"]);
    expect(feed.replicas()).toEqual([]);
  });
});
