// `switchyard coordinator|node|bridge`: one role per process, for clusters that span hosts — the one entry point
// of each role (container images and tests run exactly these). Each connects to the NATS given by --nats
// (credentials in the URL, or --creds) and runs until SIGINT/SIGTERM. Every flag has an environment variable,
// and the defaults are the ones `switchyard up` uses.
import { availableParallelism, hostname } from "node:os";
import path from "node:path";
import { AGENT_DEFAULTS, NodeAgent } from "@switchyard/agent";
import { COORDINATOR_DEFAULTS, Coordinator } from "@switchyard/coordinator";
import { batchFiles, underDataRoots } from "@switchyard/jobs";
import { DEFAULT_REPLICATION } from "@switchyard/nats";
import { AUTOSCALER_DEFAULTS, STREAM_DEFAULTS } from "@switchyard/protocol";
import { type Command, Option } from "commander";
import { pino } from "pino";
import { defaultCacheDir, defaultDataDir, natsOptionsOf, resolveTarget } from "../cluster-file.js";
import { startBridgeRole } from "../roles.js";
import type { GlobalOptions } from "./context.js";
import { durationFlag, type LogLevel, logLevelOption, positiveInteger, replicationOption } from "./flags.js";

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
}

const logger = (level: LogLevel) => pino({ level });

interface CoordinatorFlags {
  id?: string;
  scaleToZeroAfter?: string;
  logLevel: LogLevel;
  rolloutTimeoutMs?: string;
  streamAckWaitMs?: string;
  dataRoot?: string[] | string;
  replication?: number;
}

export function roleCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command("coordinator")
    .description("run a coordinator (one leads, the others stand by and serve the management API)")
    .addOption(
      new Option("--id <id>", "coordinator id (default: <host>-<pid>)").env("SWITCHYARD_COORDINATOR_ID"),
    )
    .addOption(
      new Option(
        "--rollout-timeout-ms <ms>",
        `a new config not READY within this fails (default ${COORDINATOR_DEFAULTS.rolloutTimeoutMs})`,
      ).env("SWITCHYARD_ROLLOUT_TIMEOUT_MS"),
    )
    .addOption(
      new Option(
        "--stream-ack-wait-ms <ms>",
        "a stream event unacked this long is redelivered, for jobs created by this coordinator; a job's sink " +
          `stream needs a duplicate window of four ack waits (default ${STREAM_DEFAULTS.ack_wait_ms})`,
      ).env("SWITCHYARD_STREAM_ACK_WAIT_MS"),
    )
    .addOption(logLevelOption())
    .addOption(replicationOption())
    .addOption(
      new Option(
        "--scale-to-zero-after <duration>",
        "idle time (30s, 30m, 2h) after which a served model with scale_to_zero_enabled has no replica " +
          `(default ${AUTOSCALER_DEFAULTS.scaleToZeroAfterMs / 60_000}m)`,
      ).env("SWITCHYARD_SCALE_TO_ZERO_AFTER"),
    )
    .addOption(
      new Option(
        "--data-root <dir...>",
        `directories batch jobs may read and write (default: the working directory; env: '${path.delimiter}'-separated)`,
      ).env("SWITCHYARD_DATA_ROOTS"),
    )
    .action(async (opts: CoordinatorFlags) => {
      const target = await resolveTarget(globals());
      const rolloutTimeoutMs = positiveInteger(opts.rolloutTimeoutMs, "--rollout-timeout-ms");
      const streamAckWaitMs = positiveInteger(opts.streamAckWaitMs, "--stream-ack-wait-ms");
      // From the environment commander hands one string: the roots joined like PATH.
      const roots =
        typeof opts.dataRoot === "string" ? opts.dataRoot.split(path.delimiter) : (opts.dataRoot ?? []);
      const dataRoots = (roots.length ? roots : [process.cwd()]).filter(Boolean).map((r) => path.resolve(r));
      const c = new Coordinator({
        nats: natsOptionsOf(target, "switchyard-coordinator"),
        cluster: target.cluster,
        batchFiles: batchFiles({ dataRoots }),
        dataPath: (p, field) => underDataRoots(p, dataRoots, field),
        id: opts.id ?? `${hostname()}-${process.pid}`,
        ...(rolloutTimeoutMs ? { rolloutTimeoutMs } : {}),
        ...(streamAckWaitMs ? { streamAckWaitMs } : {}),
        ...(opts.replication ? { replication: opts.replication } : {}),
        ...(opts.scaleToZeroAfter !== undefined
          ? {
              autoscaler: {
                scaleToZeroAfterMs: durationFlag(opts.scaleToZeroAfter, "--scale-to-zero-after"),
              },
            }
          : {}),
        logger: logger(opts.logLevel),
      });
      await c.start();
      await untilSignal();
      await c.stop();
    });

  program
    .command("node")
    .description("run a node agent: it starts, restarts and stops this host's replica processes")
    .addOption(new Option("--node-id <id>", "node id (default: the host name)").env("SWITCHYARD_NODE_ID"))
    .addOption(
      new Option("--threads <n>", "ORT thread budget of this host (default: one per core)").env(
        "SWITCHYARD_THREADS",
      ),
    )
    .addOption(
      new Option("--cache-dir <dir>", "where model artifacts are cached (default: <data-dir>/models)").env(
        "SWITCHYARD_CACHE_DIR",
      ),
    )
    .addOption(logLevelOption())
    .addOption(
      new Option(
        "--drain-timeout-ms <ms>",
        `how long a stopping replica may drain before it is killed (default ${AGENT_DEFAULTS.drainTimeoutMs})`,
      ).env("SWITCHYARD_DRAIN_TIMEOUT_MS"),
    )
    .addOption(replicationOption())
    .action(
      async (opts: {
        nodeId?: string;
        threads?: string;
        cacheDir?: string;
        drainTimeoutMs?: string;
        replication?: number;
        logLevel: LogLevel;
      }) => {
        const g = globals();
        const target = await resolveTarget(g);
        const drainTimeoutMs = positiveInteger(opts.drainTimeoutMs, "--drain-timeout-ms");
        const agent = new NodeAgent({
          nats: natsOptionsOf(target, "switchyard-node"),
          cluster: target.cluster,
          nodeId: opts.nodeId ?? hostname(),
          threads: positiveInteger(opts.threads, "--threads") ?? availableParallelism(),
          cacheDir: path.resolve(opts.cacheDir ?? defaultCacheDir(g.dataDir ?? defaultDataDir())),
          ...(drainTimeoutMs ? { drainTimeoutMs } : {}),
          ...(opts.replication ? { replication: opts.replication } : {}),
          logger: logger(opts.logLevel),
        });
        await agent.start();
        await untilSignal();
        await agent.stop();
      },
    );

  program
    .command("bridge")
    .description("run an HTTP bridge (Databricks/MLflow API, OIP v2) and the raw-NATS invoke actor")
    .addOption(
      new Option("--host <host>", "interface to listen on").default("127.0.0.1").env("SWITCHYARD_HOST"),
    )
    .addOption(
      new Option("--http-port <port>", "port to listen on").default("8080").env("SWITCHYARD_HTTP_PORT"),
    )
    .option("--no-auth", "turn bearer-token auth OFF (not for shared machines)")
    .option(
      "--max-in-flight <n>",
      "requests this bridge holds at once; beyond it an immediate 503 with Retry-After (default 4096)",
    )
    .option(
      "--body-timeout <duration>",
      "how long a client may take to send a request body (500ms, 30s); slower gets 408 and is disconnected (default 30s)",
    )
    .addOption(logLevelOption())
    .addOption(replicationOption())
    .action(
      async (opts: {
        host: string;
        httpPort: string;
        auth: boolean;
        maxInFlight?: string;
        bodyTimeout?: string;
        replication?: number;
        logLevel: LogLevel;
      }) => {
        const target = await resolveTarget(globals());
        if (!opts.auth) process.stderr.write("WARNING: authentication is OFF (--no-auth)\n");
        const bridge = await startBridgeRole({
          nats: natsOptionsOf(target, "switchyard-bridge"),
          cluster: target.cluster,
          host: opts.host,
          port: Number(opts.httpPort),
          auth: opts.auth,
          replication: opts.replication ?? DEFAULT_REPLICATION,
          logger: logger(opts.logLevel),
          ...(opts.maxInFlight !== undefined
            ? { maxInFlight: positiveInteger(opts.maxInFlight, "--max-in-flight")! }
            : {}),
          ...(opts.bodyTimeout !== undefined
            ? { bodyTimeoutMs: durationFlag(opts.bodyTimeout, "--body-timeout") }
            : {}),
        });
        process.stdout.write(`HTTP bridge listening on ${bridge.url}\n`);
        await untilSignal();
        await bridge.stop();
      },
    );
}
