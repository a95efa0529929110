// `switchyard coordinator|node|bridge`: one role per process, for clusters that span hosts. Each connects to
// the NATS given by --nats (credentials in the URL) and runs until SIGINT/SIGTERM.
import { availableParallelism, hostname } from "node:os";
import path from "node:path";
import { NodeAgent } from "@switchyard/agent";
import { Coordinator } from "@switchyard/coordinator";
import type { Command } from "commander";
import { pino } from "pino";
import { resolveTarget } from "../cluster-file.js";
import { startBridgeRole } from "../roles.js";
import type { GlobalOptions } from "./context.js";

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
}

const logger = () => pino({ level: process.env.SWITCHYARD_LOG_LEVEL ?? "info" });

export function roleCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command("coordinator")
    .description("run a coordinator (one leads, the others stand by and serve the management API)")
    .option("--id <id>", "coordinator id (default: <host>-<pid>)")
    .action(async (opts: { id?: string }) => {
      const target = await resolveTarget(globals());
      const c = new Coordinator({
        nats: { servers: target.natsUrl, name: "switchyard-coordinator" },
        cluster: target.cluster,
        id: opts.id ?? `${hostname()}-${process.pid}`,
        logger: logger(),
      });
      await c.start();
      await untilSignal();
      await c.stop();
    });

  program
    .command("node")
    .description("run a node agent: it starts, restarts and stops this host's replica processes")
    .option("--node-id <id>", "node id (default: the host name)")
    .option("--threads <n>", "ORT thread budget of this host (default: one per core)")
    .option("--cache-dir <dir>", "where model artifacts are cached", path.join(".switchyard", "models"))
    .action(async (opts: { nodeId?: string; threads?: string; cacheDir: string }) => {
      const target = await resolveTarget(globals());
      const threads = opts.threads ? Number(opts.threads) : availableParallelism();
      if (!Number.isInteger(threads) || threads < 1)
        throw new Error(`--threads: expected a positive integer, got '${opts.threads}'`);
      const agent = new NodeAgent({
        nats: { servers: target.natsUrl },
        cluster: target.cluster,
        nodeId: opts.nodeId ?? hostname(),
        threads,
        cacheDir: path.resolve(opts.cacheDir),
        logger: logger(),
      });
      await agent.start();
      await untilSignal();
      await agent.stop();
    });

  program
    .command("bridge")
    .description("run an HTTP bridge (Databricks/MLflow API, OIP v2) and the raw-NATS invoke actor")
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("--http-port <port>", "port to listen on", "8080")
    .option("--no-auth", "turn bearer-token auth OFF (not for shared machines)")
    .action(async (opts: { host: string; httpPort: string; auth: boolean }) => {
      const target = await resolveTarget(globals());
      if (!opts.auth) process.stderr.write("WARNING: authentication is OFF (--no-auth)\n");
      const bridge = await startBridgeRole({
        nats: { servers: target.natsUrl },
        cluster: target.cluster,
        host: opts.host,
        port: Number(opts.httpPort),
        auth: opts.auth,
        logger: logger(),
      });
      process.stdout.write(`HTTP bridge listening on ${bridge.url}\n`);
      await untilSignal();
      await bridge.stop();
    });
}
