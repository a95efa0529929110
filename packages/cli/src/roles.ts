// The bridge role as one unit — router, raw-NATS invoke actor and HTTP bridge over one connection — so
// `switchyard up` and `switchyard bridge` run exactly the same thing.
import { listenBridge } from "@switchyard/bridge";
import { serveInvoke, startCapturingRouter } from "@switchyard/client";
import { connectNats, type NatsOptions, provisionBuckets } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import type { Logger } from "pino";

export interface BridgeRoleOptions {
  nats: NatsOptions;
  cluster: string;
  host: string;
  port: number;
  auth: boolean;
  /** The bridge's body-read deadline (default 30 s). */
  bodyTimeoutMs?: number;
  logger: Logger;
  /** Requests the HTTP bridge holds at once before answering 503 (default: the bridge's). */
  maxInFlight?: number;
  /** How many NATS servers keep the buckets and object store it creates when missing (1..5). */
  replication: number;
  /**
   * The cluster's KV buckets and object store already exist with the replication setting (`switchyard up` made
   * them once for all its roles); a bridge started on its own leaves this unset and provisions them at start.
   */
  bucketsProvisioned?: boolean;
}

export interface RunningBridgeRole {
  url: string;
  stop(): Promise<void>;
}

export async function startBridgeRole(o: BridgeRoleOptions): Promise<RunningBridgeRole> {
  const nc = await connectNats({ ...o.nats, name: "switchyard-bridge" });
  try {
    if (!o.bucketsProvisioned) {
      const replication = { replicas: o.replication, log: o.logger.child({ role: "bridge" }) };
      await provisionBuckets(nc, clusterNames(o.cluster), replication);
      await Registry.open(nc, { cluster: o.cluster, replication });
    }
    // One router for HTTP and raw-NATS invocations, so its stats and captures count both.
    const { router } = await startCapturingRouter(nc, {
      cluster: o.cluster,
      logger: o.logger.child({ role: "router" }),
      stats: { role: "bridge" },
    });
    const invoke = serveInvoke(nc, router, o.cluster);
    const bridge = await listenBridge({
      nc,
      cluster: o.cluster,
      auth: o.auth,
      bodyTimeoutMs: o.bodyTimeoutMs,
      router,
      host: o.host,
      port: o.port,
      logger: o.logger.child({ role: "bridge" }),
      ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}),
    });
    return {
      url: bridge.url,
      stop: async () => {
        await bridge.close();
        await invoke.stop();
        await router.close();
        await nc.drain();
      },
    };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
