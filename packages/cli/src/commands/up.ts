// `switchyard up`: the embedded local cluster in the foreground until Ctrl-C / SIGTERM.

import { AutoscalerConfig, LocalClusterConfig } from "@switchyard/protocol";
import type { Command } from "commander";
import { findConfigFile, loadClusterConfig } from "../config-file.js";
import { startLocalCluster } from "../local-cluster.js";
import { durationFlag, type LogLevel, logLevelOption, positiveInteger, replicationOption } from "./flags.js";

interface UpOptions {
  config?: string;
  natsPort?: string;
  httpPort?: string;
  host?: string;
  syncAlways?: boolean;
  nodeThreads?: string;
  auth?: boolean;
  scaleToZeroAfter?: string;
  maxInFlight?: string;
  bodyTimeout?: string;
  replication?: number;
  logLevel: LogLevel;
}

function port(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`${flag}: expected a port 0-65535, got '${value}'`);
  return n;
}

export function upCommand(program: Command, dataDirFlag: () => string | undefined): void {
  program
    .command("up")
    .description("start a local cluster (nats-server + Switchyard roles) in the foreground")
    .option("--config <file>", "cluster.config.ts to read (default: ./cluster.config.ts if present)")
    .option("--nats-port <port>", "NATS client port (0: any free port)")
    .option("--http-port <port>", "HTTP bridge port (0: any free port)")
    .option("--host <host>", "interface to listen on")
    .option("--sync-always", "JetStream sync_interval: always (fsync every write)")
    .option("--node-threads <n>", "the local node's ORT thread budget (default: one per core)")
    .option("--no-auth", "turn bearer-token auth of the HTTP bridge OFF (not for shared machines)")
    .option(
      "--scale-to-zero-after <duration>",
      "idle time (30s, 30m, 2h) after which a served model with scale_to_zero_enabled has no replica (default 30m)",
    )
    .option(
      "--max-in-flight <n>",
      "requests the HTTP bridge holds at once; beyond it an immediate 503 with Retry-After (default 4096)",
    )
    .option(
      "--body-timeout <duration>",
      "how long a client may take to send a request body (500ms, 30s); slower gets 408 and is disconnected (default 30s)",
    )
    .addOption(logLevelOption())
    .addOption(replicationOption())
    .action(async (opts: UpOptions) => {
      const file = await loadClusterConfig(opts.config ?? findConfigFile());
      // Flags and environment override the config file; the schema re-validates the merge.
      const config = LocalClusterConfig.parse({
        ...file.cluster,
        ...((dataDirFlag() ?? process.env.SWITCHYARD_DATA_DIR)
          ? { dataDir: dataDirFlag() ?? process.env.SWITCHYARD_DATA_DIR }
          : {}),
        ...(opts.natsPort !== undefined ? { natsPort: port(opts.natsPort, "--nats-port") } : {}),
        ...(opts.httpPort !== undefined ? { httpPort: port(opts.httpPort, "--http-port") } : {}),
        ...(opts.host ? { host: opts.host } : {}),
        ...(opts.syncAlways ? { syncAlways: true } : {}),
        ...(opts.nodeThreads !== undefined
          ? { nodeThreads: positiveInteger(opts.nodeThreads, "--node-threads")! }
          : {}),
        ...(opts.auth === false ? { auth: false } : {}),
        ...(opts.replication !== undefined ? { replication: opts.replication } : {}),
      });
      const autoscaler = AutoscalerConfig.parse({
        ...file.autoscaler,
        ...(opts.scaleToZeroAfter !== undefined
          ? { scaleToZeroAfter: durationFlag(opts.scaleToZeroAfter, "--scale-to-zero-after") }
          : {}),
      });
      const say = (msg: string) => process.stdout.write(`${msg}\n`);
      const cluster = await startLocalCluster(config, say, {
        logLevel: opts.logLevel,
        autoscaler,
        ...(opts.maxInFlight !== undefined
          ? { maxInFlight: positiveInteger(opts.maxInFlight, "--max-in-flight")! }
          : {}),
        ...(opts.bodyTimeout !== undefined
          ? { bodyTimeoutMs: durationFlag(opts.bodyTimeout, "--body-timeout") }
          : {}),
      });
      say(`cluster '${config.name}' is up; connection details in ${cluster.clusterFilePath} (mode 0600)`);
      say("press Ctrl-C to stop");

      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          say(`${signal}: stopping…`);
          cluster.stop().then(resolve, (err) => {
            process.stderr.write(`error while stopping: ${(err as Error).message}\n`);
            resolve();
          });
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
      say("stopped");
    });
}
