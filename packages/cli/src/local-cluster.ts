// The embedded local cluster behind `switchyard up`: a nats-server child with its data under the data
// dir, plus the cluster's roles, in one process tree. It must never leave a child running after stop().
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { NatsServer } from "@switchyard/natsd";
import {
  type ClusterFile,
  clusterNames,
  connectNats,
  type LocalClusterConfig,
  SwitchyardError,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { readClusterFile, removeClusterFile, writeClusterFile } from "./cluster-file.js";
import { type ClusterSecrets, loadOrCreateSecrets } from "./secrets.js";

export interface StartedCluster {
  config: LocalClusterConfig;
  file: ClusterFile;
  clusterFilePath: string;
  secrets: ClusterSecrets;
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

export async function startLocalCluster(
  config: LocalClusterConfig,
  log: (msg: string) => void = () => {},
): Promise<StartedCluster> {
  const dataDir = path.resolve(config.dataDir);
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
  const nats = await NatsServer.start({
    host: config.host,
    port: config.natsPort === 0 ? -1 : config.natsPort,
    storeDir: path.join(dataDir, "nats"),
    syncAlways: config.syncAlways,
    users: [secrets.internal, secrets.admin],
    logFile: path.join(dataDir, "logs", "nats-server.log"),
    serverName: `${config.name}-local`,
  });
  log(`nats-server listening on ${nats.url} (JetStream store ${path.join(dataDir, "nats")})`);

  try {
    // The cluster's own components connect as the internal user, never as the admin the CLI uses.
    const nc = await connectNats({
      servers: nats.url,
      user: secrets.internal.user,
      pass: secrets.internal.password,
      name: "switchyard-up",
    });
    try {
      await Registry.open(nc, { cluster: names.cluster });
    } finally {
      await nc.close();
    }
    log(`model registry ready (KV ${names.buckets.models}, object store ${names.buckets.artifacts})`);

    const file: ClusterFile = {
      cluster: names.cluster,
      natsUrl: nats.urlWithCredentials(secrets.admin.user, secrets.admin.password),
      pid: process.pid,
      startedAt: new Date().toISOString(),
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
          await nats.stop({ removeData: false });
        })();
        return stopped;
      },
    };
  } catch (err) {
    await nats.stop({ removeData: false });
    throw err;
  }
}
