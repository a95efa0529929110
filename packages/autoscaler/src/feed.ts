// The stats every replica and router publishes about once a second (`<c>.stats.>`), gathered in one place:
// the latest snapshot of each live source. A source silent for `staleMs` is forgotten (its process is gone).
// Policies and metrics read from here; nothing here decides anything.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { ClusterNames, ReplicaStatsSnapshot, RouterStatsSnapshot } from "@switchyard/protocol";

export interface FeedOptions {
  /** A source not heard from for this long is dropped (default 5 s: five missed reports). */
  staleMs?: number;
  /** The clock (injected in tests). */
  now?: () => number;
}

export interface Received<T> {
  snapshot: T;
  /** When this process received it (its own clock, so skew between hosts does not matter). */
  receivedAt: number;
}

export type FeedListener = (
  kind: "replica" | "router",
  received: Received<ReplicaStatsSnapshot | RouterStatsSnapshot>,
) => void;

export class StatsFeed {
  private readonly replicaStats = new Map<string, Received<ReplicaStatsSnapshot>>();
  private readonly routerStats = new Map<string, Received<RouterStatsSnapshot>>();
  private readonly listeners = new Set<FeedListener>();
  private readonly staleMs: number;
  private readonly now: () => number;
  private sub: Subscription | undefined;
  /** When stale sources were last dropped on a report (readers may never ask for one kind: see `prune`). */
  private prunedAt = 0;

  constructor(opts: FeedOptions = {}) {
    this.staleMs = opts.staleMs ?? 5_000;
    this.now = opts.now ?? Date.now;
  }

  /** Subscribes to every stats subject of the cluster. */
  static start(nc: NatsConnection, names: ClusterNames, opts: FeedOptions = {}): StatsFeed {
    const feed = new StatsFeed(opts);
    const replicaPrefix = names.subjects.replicaStats("");
    feed.sub = nc.subscribe(names.subjects.allStats, {
      callback: (err, msg) => {
        if (err || msg.reply) return; // requests to a replica's stats subject are not reports
        try {
          const body = msg.json<unknown>();
          if (msg.subject.startsWith(replicaPrefix)) feed.addReplica(body as ReplicaStatsSnapshot);
          else feed.addRouter(body as RouterStatsSnapshot);
        } catch {
          // A report that does not parse is skipped; the next one a second later replaces it.
        }
      },
    });
    return feed;
  }

  addReplica(s: ReplicaStatsSnapshot): void {
    const r = { snapshot: s, receivedAt: this.now() };
    this.replicaStats.set(s.replica_id, r);
    this.prune(r.receivedAt);
    for (const l of this.listeners) l("replica", r);
  }

  addRouter(s: RouterStatsSnapshot): void {
    const r = { snapshot: s, receivedAt: this.now() };
    this.routerStats.set(s.router_id, r);
    this.prune(r.receivedAt);
    for (const l of this.listeners) l("router", r);
  }

  /** Called on every report received (after it is stored). */
  onReport(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The latest snapshot of every replica heard from within `staleMs`. */
  replicas(): Received<ReplicaStatsSnapshot>[] {
    return this.fresh(this.replicaStats);
  }

  /** The latest snapshot of every router heard from within `staleMs`. */
  routers(): Received<RouterStatsSnapshot>[] {
    return this.fresh(this.routerStats);
  }

  /**
   * Drops sources silent for `staleMs`, at most once per `staleMs`: the autoscaler never lists replicas and a
   * bridge lists them only at start, so without this every replica that ever ran (scaling makes new ids all the
   * time) would stay in memory.
   */
  private prune(now: number): void {
    if (now - this.prunedAt < this.staleMs) return;
    this.prunedAt = now;
    this.fresh(this.replicaStats);
    this.fresh(this.routerStats);
  }

  private fresh<T>(m: Map<string, Received<T>>): Received<T>[] {
    const cutoff = this.now() - this.staleMs;
    const out: Received<T>[] = [];
    for (const [id, r] of m) {
      if (r.receivedAt < cutoff) m.delete(id);
      else out.push(r);
    }
    return out;
  }

  async stop(): Promise<void> {
    await this.sub?.drain().catch(() => undefined);
    this.sub = undefined;
  }
}
