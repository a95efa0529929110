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

/** The servers whose `/healthz` is not ok (JetStream current: the meta group, and every stream and consumer they hold). */
async function unhealthy(project: Project): Promise<Array<{ server: string; said: unknown }>> {
  const out: Array<{ server: string; said: unknown }> = [];
  for (const n of NATS_SERVICES) {
    const said = await fetch(`http://${project.ip(n)}:8222/healthz`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.json())
      .catch((err: Error) => err.message);
    if ((said as { status?: string })?.status !== "ok") out.push({ server: n, said });
  }
  return out;
}

/**
 * Waits until the meta group has all three servers, each current, and every server's `/healthz` is ok (what
 * NATS's own rolling-restart advice waits for), and returns the meta leader and the servers restarted on the
 * way. With `heal`, a server left out of the group, one its leader has seen behind (not current), or one not
 * healthy, for `healAfterMs`, is restarted: after a server's restart under load, nats-server 2.10.27 has left
 * another behind the new meta leader (lag 57 entries, never heard from) for minutes, until it was restarted too.
 */
export async function wholeMetaGroup(
  project: Project,
  what: string,
  opts: { heal: boolean; healAfterMs?: number; ms?: number } = { heal: false },
): Promise<{ leader: string; restarted: string[] }> {
  const end = Date.now() + (opts.ms ?? 120_000);
  const restarted: string[] = [];
  let wrongSince: number | undefined;
  let last: unknown;
  while (Date.now() < end) {
    const view = await leaderView(project);
    const sick = await unhealthy(project);
    last = { meta: view, unhealthy: sick };
    if (view?.peers.length === 3 && view.current && sick.length === 0)
      return { leader: view.leader, restarted };
    if (view) {
      wrongSince ??= Date.now();
      if (opts.heal && Date.now() - wrongSince > (opts.healAfterMs ?? 15_000)) {
        const behind = (view.seen ?? []).filter((r) => !r.current).map((r) => r.name);
        const suspects = NATS_SERVICES.filter(
          (n) => !view.peers.includes(n) || behind.includes(n) || sick.some((u) => u.server === n),
        );
        for (const n of suspects) {
          project.restart(n, 10);
          restarted.push(n);
        }
        wrongSince = undefined;
      }
    } else wrongSince = undefined;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}: last seen ${JSON.stringify(last)}`);
}
