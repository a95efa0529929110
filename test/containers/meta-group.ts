// The JetStream meta group of the compose file's three nats-servers, read from their monitoring port (8222) at
// the containers' addresses.
//
// nats-server 2.10 (2.10.27 measured here) sometimes forms the group without one of three servers when they start
// for the first time together: the leader reports cluster_size 2, the third server follows the leader but is not
// a peer, and no R3 stream can be placed ("no suitable peers for placement"), so the roles wait and restart. Four
// of ten fresh starts of the three servers alone did so here, with or without each server's own URL in its
// routes and with the servers started seconds apart. Restarting the missing server makes it a peer. The tier does
// what docs/deploy.md tells an operator to do: start NATS first, and restart a server the group left out or left
// behind.
import type { Project } from "./docker.js";

export const NATS_SERVICES = ["nats1", "nats2", "nats3"] as const;

interface MetaCluster {
  leader?: string;
  cluster_size?: number;
  replicas?: Array<{ name: string; current: boolean; active?: number; lag?: number; offline?: boolean }>;
}

/** The group as its leader sees it (only the leader lists the others), or undefined while there is none. */
async function leaderView(
  project: Project,
): Promise<{ leader: string; peers: string[]; current: boolean; seen: MetaCluster["replicas"] } | undefined> {
  for (const n of NATS_SERVICES) {
    const jsz = (await fetch(`http://${project.ip(n)}:8222/jsz`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.json())
      .catch(() => undefined)) as { meta_cluster?: MetaCluster } | undefined;
    const m = jsz?.meta_cluster;
    if (m?.leader === n && m.replicas) {
      return {
        leader: n,
        peers: [n, ...m.replicas.map((r) => r.name)].sort(),
        current: m.replicas.every((r) => r.current),
        seen: m.replicas,
      };
    }
  }
  return undefined;
}

/**
 * Waits until the group has all three servers, each current, and returns its leader and the servers restarted
 * on the way. With `heal`, a server left out of the group, or one its leader has seen behind (not current) for
 * `healAfterMs`, is restarted: after a server's restart under load, nats-server 2.10.27 has left another one
 * behind the new meta leader (lag 57 entries, never heard from) for minutes, until that one was restarted too.
 */
export async function wholeMetaGroup(
  project: Project,
  what: string,
  opts: { heal: boolean; healAfterMs?: number; ms?: number } = { heal: false },
): Promise<{ leader: string; restarted: string[] }> {
  const end = Date.now() + (opts.ms ?? 120_000);
  const restarted: string[] = [];
  let shortSince: number | undefined;
  let last: unknown;
  while (Date.now() < end) {
    const view = await leaderView(project);
    last = view;
    if (view?.peers.length === 3 && view.current) return { leader: view.leader, restarted };
    // Short of a server, or one that stays behind the leader (not current).
    if (view && (view.peers.length < 3 || !view.current)) {
      shortSince ??= Date.now();
      if (opts.heal && Date.now() - shortSince > (opts.healAfterMs ?? 15_000)) {
        const stuck = (view.seen ?? []).filter((r) => !r.current).map((r) => r.name);
        for (const n of NATS_SERVICES.filter((s) => !view.peers.includes(s) || stuck.includes(s))) {
          project.restart(n, 10);
          restarted.push(n);
        }
        shortSince = undefined;
      }
    } else shortSince = undefined;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}: the meta group last seen as ${JSON.stringify(last)}`);
}
