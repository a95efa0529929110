// Process entry of one replica: `node packages/replica/dist/main.js` with env SWITCHYARD_REPLICA (JSON
// ReplicaLaunch), spawned by a node agent. Exit codes: 0 after a drain, EXIT_LOAD_FAILED (3) when the model
// cannot be served (FAILED written with the reason), 1 for anything else (the agent restarts it).
import { connectNats } from "@switchyard/nats";
import { EXIT_LOAD_FAILED, REPLICA_ENV, ReplicaLaunch } from "@switchyard/protocol";
import { pino } from "pino";
import { isLoadFailure, Replica } from "./replica.js";

async function main(): Promise<number> {
  const raw = process.env[REPLICA_ENV];
  const early = pino({ base: { pid: process.pid } }, pino.destination(2));
  if (!raw) {
    early.fatal({ event: "bad_launch" }, `${REPLICA_ENV} is not set`);
    return 1;
  }
  let launch: ReplicaLaunch;
  try {
    launch = ReplicaLaunch.parse(JSON.parse(raw));
  } catch (err) {
    early.fatal({ event: "bad_launch", err }, `${REPLICA_ENV} is not a valid replica launch`);
    return 1;
  }
  const { spec } = launch;
  const log = pino(
    {
      base: {
        endpoint: spec.endpoint,
        servedModel: spec.served_model,
        replicaId: spec.replica_id,
        pid: process.pid,
      },
    },
    pino.destination(2),
  );
  const nc = await connectNats({ ...launch.nats, name: `replica-${spec.replica_id}` });
  let replica: Replica;
  try {
    replica = await Replica.start({
      nc,
      spec,
      cluster: launch.cluster,
      nodeId: launch.node_id,
      cacheDir: launch.cache_dir,
      logger: log,
    });
  } catch (err) {
    await nc.close().catch(() => {});
    return isLoadFailure(err) ? EXIT_LOAD_FAILED : 1;
  }
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ event: "stopping", signal }, "draining");
      replica.stop().then(
        () => resolve(0),
        (err) => {
          log.error({ err, event: "drain_failed" }, "drain failed");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    // An agent killed with SIGKILL cannot stop us; a replica nobody supervises must not keep serving
    // (the coordinator places a fresh one elsewhere), so an orphan drains and exits by itself.
    const parent = process.ppid;
    const orphanCheck = setInterval(() => {
      if (process.ppid !== parent) stop("parent exited");
    }, 1_000);
    orphanCheck.unref();
    // Losing NATS for good leaves nothing to serve: exit and let the agent restart us.
    nc.closed().then(() => {
      if (!stopping) {
        log.error({ event: "nats_closed" }, "NATS connection closed");
        resolve(1);
      }
    });
  });
  const code = await stopped;
  await nc.drain().catch(() => {});
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `${JSON.stringify({ level: 60, event: "fatal", msg: String((err as Error)?.stack ?? err) })}\n`,
    );
    process.exit(1);
  },
);
