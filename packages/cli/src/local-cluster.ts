// The embedded local cluster behind `switchyard up`: a nats-server child with its data under the data dir,
// plus every role — coordinator, one node agent (which spawns replica processes), the bridge — in one
// process tree. It must never leave a child running after stop().

import { mkdir } from "node:fs/promises";
import { availableParallelism } from "node:os";
import path from "node:path";
import { NodeAgent } from "@switchyard/agent";
import { TokenStore } from "@switchyard/bridge";
import { Coordinator } from "@switchyard/coordinator";
import { batchFiles, underDataRoots } from "@switchyard/jobs";
import { connectNats, type NatsOptions, provisionBuckets } from "@switchyard/nats";
import { NatsServer } from "@switchyard/natsd";
import {
  AutoscalerConfig,
  type ClusterFile,
  clusterNames,
  invalid,
  type LocalClusterConfig,
  SwitchyardError,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { type Logger, pino } from "pino";
import { defaultCacheDir, readClusterFile, removeClusterFile, writeClusterFile } from "./cluster-file.js";
import { GlobUsersFollower } from "./glob-users-follow.js";
import { clusterAuthorization, NATS_AUTHORIZATION_FILE, readNatsUsers } from "./nats-users.js";
import { startBridgeRole } from "./roles.js";
import { type ClusterSecrets, loadOrCreateSecrets, type RoleSecrets, saveSecrets } from "./secrets.js";

export interface StartedCluster {
  config: LocalClusterConfig;
  file: ClusterFile;
  clusterFilePath: string;
  secrets: RoleSecrets;
  nats: NatsServer;
  stop(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The admin token: the one kept in secrets.json if the cluster still knows it, else a new one. */
async function adminToken(
  nats: NatsOptions,
  cluster: string,
  dataDir: string,
  secrets: ClusterSecrets,
): Promise<string> {
  const nc = await connectNats({ ...nats, name: "switchyard-up" });
  try {
    const tokens = await TokenStore.open(nc, { cluster, follow: false });
    try {
      if (secrets.token && tokens.verify(secrets.token)) return secrets.token;
      const created = await tokens.createToken({ scopes: ["admin"], name: "admin" });
      await saveSecrets(dataDir, { ...secrets, token: created.token });
      return created.token;
    } finally {
      tokens.close();
    }
  } finally {
    await nc.close();
  }
}

export async function startLocalCluster(
  config: LocalClusterConfig,
  say: (msg: string) => void = () => {},
  opts: {
    logLevel?: string;
    autoscaler?: AutoscalerConfig;
    maxInFlight?: number;
    bodyTimeoutMs?: number;
  } = {},
): Promise<StartedCluster> {
  if (config.replication > 1) {
    // The embedded nats-server is one server: JetStream refuses every stream kept by more than one.
    throw invalid(
      `replication: \`switchyard up\` runs one nats-server, which keeps one copy of each stream, so it takes 1, ` +
        `not ${config.replication}; for ${config.replication} copies run the roles against a NATS cluster ` +
        "(switchyard coordinator|node|bridge --nats <url,url,…> --replication <n>)",
    );
  }
  const dataDir = path.resolve(config.dataDir);
  const scaling = opts.autoscaler ?? AutoscalerConfig.parse({});
  const names = clusterNames(config.name);
  await mkdir(path.join(dataDir, "logs"), { recursive: true, mode: 0o700 });

  const previous = await readClusterFile(dataDir);
  if (previous && previous.pid !== process.pid && alive(previous.pid)) {
    throw new SwitchyardError(
      "RESOURCE_CONFLICT",
      `a local cluster is already running from ${dataDir} (pid ${previous.pid}); stop it first or use another --data-dir`,
    );
  }

  const secrets = await loadOrCreateSecrets(dataDir);
  const logger: Logger = pino(
    { level: opts.logLevel ?? process.env.SWITCHYARD_LOG_LEVEL ?? "info", base: { cluster: names.cluster } },
    pino.destination({ dest: path.join(dataDir, "logs", "switchyard.log"), mkdir: true, sync: false }),
  );
  const natsLog = path.join(dataDir, "logs", "nats-server.log");
  const authorizationFile = path.join(dataDir, NATS_AUTHORIZATION_FILE);
  const nats = await NatsServer.start({
    host: config.host,
    port: config.natsPort === 0 ? -1 : config.natsPort,
    storeDir: path.join(dataDir, "nats"),
    syncAlways: config.syncAlways,
    // Globs expand against no endpoint until the bucket can be read: GlobUsersFollower renders them then.
    users: clusterAuthorization(names, secrets, await readNatsUsers(dataDir), []),
    authorizationFile,
    logFile: natsLog,
    serverName: `${config.name}-local`,
  }).catch((err: Error) => {
    const reason = err.message.split("\n", 1)[0];
    throw new Error(
      `${reason}; its log is ${natsLog}${config.natsPort ? " (another port: --nats-port)" : ""}`,
    );
  });
  say(`nats-server listening on ${nats.url} (JetStream store ${path.join(dataDir, "nats")})`);

  // Each role connects as its own user (see nats-users.ts for what each may do), never as the admin.
  const as = (c: { user: string; password: string }): NatsOptions => ({
    servers: nats.url,
    user: c.user,
    pass: c.password,
  });
  const internal = as(secrets.internal);
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.error({ err }, "error while stopping");
      }
    }
    stops.length = 0;
  };
  stops.push(() => nats.stop({ removeData: false }));

  try {
    // The cluster's buckets and object store, made here once for the three roles below, which skip it
    // (bucketsProvisioned); roles started on their own hosts each provision at start instead.
    const nc = await connectNats({ ...internal, name: "switchyard-up" });
    try {
      const replication = { replicas: config.replication, log: logger };
      await provisionBuckets(nc, names, replication);
      await Registry.open(nc, { cluster: names.cluster, replication });
    } finally {
      await nc.close();
    }
    say(`model registry ready (KV ${names.buckets.models}, object store ${names.buckets.artifacts})`);

    const dataRoots = config.dataRoots.length
      ? config.dataRoots.map((r) => path.resolve(r))
      : [process.cwd(), dataDir];
    const coordinator = new Coordinator({
      nats: internal,
      cluster: names.cluster,
      batchFiles: batchFiles({ dataRoots }),
      dataPath: (p, field) => underDataRoots(p, dataRoots, field),
      id: `${names.cluster}-local`,
      replication: config.replication,
      bucketsProvisioned: true,
      autoscaler: {
        scaleToZeroAfterMs: scaling.scaleToZeroAfter,
        upStabilizationMs: scaling.upStabilization,
        downStabilizationMs: scaling.downStabilization,
      },
      logger,
    });
    await coordinator.start();
    stops.push(() => coordinator.stop());

    const globUsers = await GlobUsersFollower.start(
      internal,
      { dataDir, cluster: names.cluster, natsServer: nats.url, natsPid: nats.pid, authorizationFile },
      logger,
    );
    stops.push(() => globUsers.stop());

    const threads = config.nodeThreads ?? availableParallelism();
    const agent = new NodeAgent({
      nats: as(secrets.node),
      cluster: names.cluster,
      threads,
      cacheDir: defaultCacheDir(dataDir),
      replication: config.replication,
      bucketsProvisioned: true,
      logger,
    });
    await agent.start();
    stops.push(() => agent.stop());
    say(`coordinator and node agent running (node budget: ${threads} ORT thread${threads === 1 ? "" : "s"})`);

    const token = config.auth ? await adminToken(internal, names.cluster, dataDir, secrets) : undefined;
    const bridge = await startBridgeRole({
      nats: as(secrets.bridge),
      cluster: names.cluster,
      host: config.host,
      port: config.httpPort,
      auth: config.auth,
      bodyTimeoutMs: opts.bodyTimeoutMs,
      replication: config.replication,
      bucketsProvisioned: true,
      logger,
      ...(opts.maxInFlight !== undefined ? { maxInFlight: opts.maxInFlight } : {}),
    });
    stops.push(() => bridge.stop());
    say(`HTTP bridge listening on ${bridge.url}`);
    if (token) {
      say(`admin token: ${token}`);
      say(`  curl -H "Authorization: Bearer $TOKEN" ${bridge.url}/api/2.0/serving-endpoints`);
    } else {
      say(
        "WARNING: authentication is OFF (--no-auth): anyone who can reach the bridge can use and change it",
      );
    }

    const file: ClusterFile = {
      cluster: names.cluster,
      natsUrl: nats.urlWithCredentials(secrets.admin.user, secrets.admin.password),
      httpUrl: bridge.url,
      ...(token ? { token } : {}),
      pid: process.pid,
      startedAt: new Date().toISOString(),
      natsPid: nats.pid,
      natsAuthorization: authorizationFile,
    };
    const clusterFilePath = await writeClusterFile(dataDir, file);
    let stopped: Promise<void> | undefined;
    return {
      config,
      file,
      clusterFilePath,
      secrets,
      nats,
      stop: () => {
        stopped ??= (async () => {
          await removeClusterFile(dataDir);
          await stopAll();
          logger.flush();
        })();
        return stopped;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
