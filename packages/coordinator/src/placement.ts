// Placement policy: which node runs which replica, and with how many threads. A pure function of the
// desired replica groups, the live nodes and the current assignments; it never touches NATS or the clock.

/** Every replica of one served model generation: they share a queue group and a ReplicaSpec template. */
export interface ReplicaGroup {
  /** `<endpoint>/<served>/<generation>` (see `groupKey`). */
  key: string;
  /** Wanted replicas before the budget cap. */
  replicas: number;
}

export interface PlacementNode {
  node_id: string;
  /** The node's thread budget (NodeHeartbeat.threads). */
  threads: number;
}

export interface PlacedReplica {
  node_id: string;
  replica_id: string;
  group: string;
  threads: number;
}

export interface PlacementInput {
  groups: ReplicaGroup[];
  nodes: PlacementNode[];
  current: PlacedReplica[];
  /**
   * Replicas kept as they are and not counted against the budget: the old generation of an endpoint in
   * rollout, which serves until the routes flip and then goes away.
   */
  retiring: ReadonlySet<string>;
  /** Fresh replica ids (injected so the plan is deterministic in tests). */
  newId: () => string;
}

export interface PlacementPlan {
  /** Replicas per group after the budget cap. */
  counts: Map<string, number>;
  keep: PlacedReplica[];
  create: PlacedReplica[];
  remove: PlacedReplica[];
}

export const groupKey = (endpoint: string, served: string, generation: string) =>
  `${endpoint}/${served}/${generation}`;

/**
 * Caps replica counts so their sum stays within `budget` (the live nodes' total threads), taking from the
 * largest group first. A group that wants replicas never drops below one (a served model without one cannot
 * serve); only a group that wants none (scaled to zero) gets none.
 */
export function capReplicas(groups: ReplicaGroup[], budget: number): Map<string, number> {
  const counts = new Map(groups.map((g) => [g.key, Math.max(g.replicas, 0)]));
  let total = [...counts.values()].reduce((a, b) => a + b, 0);
  const order = [...counts.keys()].sort();
  while (total > budget) {
    let biggest: string | undefined;
    // Ties go to the later key, so equal groups shrink from the end of the (sorted) list.
    for (const k of order) {
      if (counts.get(k)! > 1 && (!biggest || counts.get(k)! >= counts.get(biggest)!)) biggest = k;
    }
    if (!biggest) break;
    counts.set(biggest, counts.get(biggest)! - 1);
    total--;
  }
  return counts;
}

/** Threads for each replica on a node that runs `replicasOnNode` replicas (never below one). */
export function threadsPerReplica(nodeThreads: number, replicasOnNode: number): number {
  return Math.max(1, Math.floor(nodeThreads / Math.max(1, replicasOnNode)));
}

/**
 * Plans assignments: keeps replicas that are still wanted on live nodes, removes those of dead nodes, of
 * unwanted groups and beyond a group's count, and creates the missing ones (fresh ids) spread across
 * nodes: first onto nodes that have no replica of the group yet, then onto the least loaded by threads.
 * Threads of a new replica = max(1, floor(node threads / replicas the node runs after the plan)); existing
 * replicas keep theirs (changing them would restart a serving process).
 */
export function placeReplicas(input: PlacementInput): PlacementPlan {
  const nodes = [...input.nodes].sort((a, b) => (a.node_id < b.node_id ? -1 : 1));
  const live = new Map(nodes.map((n) => [n.node_id, n]));
  const budget = nodes.reduce((a, n) => a + n.threads, 0);
  const counts = capReplicas(input.groups, budget);
  const keep: PlacedReplica[] = [];
  const remove: PlacedReplica[] = [];
  const create: PlacedReplica[] = [];
  const load = new Map(nodes.map((n) => [n.node_id, 0]));
  const byGroup = new Map<string, PlacedReplica[]>();

  for (const r of input.current) {
    if (input.retiring.has(r.replica_id) && live.has(r.node_id)) continue;
    if (!live.has(r.node_id) || !counts.has(r.group)) {
      remove.push(r);
      continue;
    }
    const list = byGroup.get(r.group) ?? [];
    list.push(r);
    byGroup.set(r.group, list);
  }
  for (const [group, list] of byGroup) {
    list.sort((a, b) => (a.replica_id < b.replica_id ? -1 : 1));
    const want = counts.get(group)!;
    // Too many: drop from the nodes holding most of this group first.
    while (list.length > want) {
      const perNode = new Map<string, number>();
      for (const r of list) perNode.set(r.node_id, (perNode.get(r.node_id) ?? 0) + 1);
      let idx = 0;
      for (let i = 1; i < list.length; i++) {
        if (perNode.get(list[i]!.node_id)! > perNode.get(list[idx]!.node_id)!) idx = i;
      }
      remove.push(...list.splice(idx, 1));
    }
    for (const r of list) {
      keep.push(r);
      load.set(r.node_id, load.get(r.node_id)! + 1);
    }
  }

  if (nodes.length > 0) {
    for (const group of [...counts.keys()].sort()) {
      const have = byGroup.get(group) ?? [];
      const onNode = new Map<string, number>();
      for (const r of have) onNode.set(r.node_id, (onNode.get(r.node_id) ?? 0) + 1);
      for (let missing = counts.get(group)! - have.length; missing > 0; missing--) {
        let best = nodes[0]!;
        for (const n of nodes.slice(1)) if (better(n, best)) best = n;
        const r: PlacedReplica = { node_id: best.node_id, replica_id: input.newId(), group, threads: 0 };
        create.push(r);
        onNode.set(best.node_id, (onNode.get(best.node_id) ?? 0) + 1);
        load.set(best.node_id, load.get(best.node_id)! + 1);
      }
      function better(a: PlacementNode, b: PlacementNode): boolean {
        const ga = onNode.get(a.node_id) ?? 0;
        const gb = onNode.get(b.node_id) ?? 0;
        if (ga !== gb) return ga < gb;
        const la = load.get(a.node_id)! / a.threads;
        const lb = load.get(b.node_id)! / b.threads;
        if (la !== lb) return la < lb;
        return load.get(a.node_id)! < load.get(b.node_id)!;
      }
    }
    for (const r of create) r.threads = threadsPerReplica(live.get(r.node_id)!.threads, load.get(r.node_id)!);
  }
  return { counts, keep, create, remove };
}
