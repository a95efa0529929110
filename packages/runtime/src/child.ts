// The life of a process a node agent supervises (a replica, a batch worker): read its launch from the
// environment, connect, start, then run until SIGTERM/SIGINT (stop gracefully, exit 0), until its agent is gone
// (an orphan nobody supervises stops by itself: the coordinator places a fresh one elsewhere), or until NATS is
// lost for good (exit 1: the agent restarts it). A model that cannot be served exits EXIT_LOAD_FAILED, which the
// agent reports as FAILED and does not restart. A warm spare (replicas only) does the launch-independent part —
// imports, connect, prepare — first, and then waits on its IPC channel for the assignment it takes.
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, type Schema } from "@switchyard/nats";
import {
  EXIT_LOAD_FAILED,
  SpareAssignment,
  SpareLaunch,
  type SpareSignal,
  SwitchyardError,
} from "@switchyard/protocol";
import { type Logger, pino } from "pino";
import { StartupMarks } from "./marks.js";

/** Errors that mean the model itself cannot be served: retrying would fail the same way. */
export function isLoadFailure(err: unknown): boolean {
  return (
    err instanceof SwitchyardError &&
    ["MALFORMED_MODEL", "INTEGRITY_ERROR", "RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"].includes(
      err.code,
    )
  );
}

/** What every launch carries besides its spec: where the cluster is and how to reach it. */
export type LaunchBase = Omit<SpareLaunch, "warm_threads">;
type Launch = LaunchBase & { spec: { threads: number } };

export interface ChildProcessSpec<L extends Launch, P = undefined, E = undefined> {
  /** The environment variable holding the launch (JSON), and its schema. */
  env: string;
  launch: Schema<L>;
  /** The environment variable that starts this entry as a warm spare (its value: a SpareLaunch), if it has one. */
  spareEnv?: string;
  /** Connection name and the fields every log line carries. */
  name(launch: L): string;
  logFields(launch: L): Record<string, unknown>;
  /**
   * Started as soon as the process knows how many model threads it runs, before it connects (worker threads, the
   * model runtime): a cold start overlaps it with connecting and reading its model; a spare does it before any
   * assignment, for the thread count its agent expects.
   */
  early?(threads: number): E;
  /** What needs only the cluster (buckets, the registry): a spare does it before its assignment arrives. */
  prepare?(base: LaunchBase, nc: NatsConnection): Promise<P>;
  /** Starts the work; the returned stop() finishes or gives back what is in hand. */
  start(
    launch: L,
    nc: NatsConnection,
    log: Logger,
    ctx: { marks: StartupMarks; prepared: P; early: E | undefined },
  ): Promise<{ stop(): Promise<void> }>;
}

/**
 * The agent that started this process, read when the module loads: read later (once the work is READY), an agent
 * killed in between would already have been replaced by init as the parent, and the orphan would never notice.
 */
const PARENT_PID = process.ppid;

/** Runs a supervised process to its end and exits with its code. */
export function runChild<L extends Launch, P = undefined, E = undefined>(
  spec: ChildProcessSpec<L, P, E>,
): void {
  main(spec).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(
        `${JSON.stringify({ level: 60, event: "fatal", msg: String((err as Error)?.stack ?? err) })}\n`,
      );
      process.exit(1);
    },
  );
}

async function main<L extends Launch, P, E>(spec: ChildProcessSpec<L, P, E>): Promise<number> {
  // Static imports are evaluated before this line: the first step of a cold start.
  const marks = new StartupMarks();
  marks.mark("imported");
  const root = pino({ base: { pid: process.pid } }, pino.destination(2));
  const spareRaw = spec.spareEnv ? process.env[spec.spareEnv] : undefined;
  if (spareRaw !== undefined) return runSpare(spec, spareRaw, marks, root);
  const raw = process.env[spec.env];
  if (!raw) {
    root.fatal({ event: "bad_launch" }, `${spec.env} is not set`);
    return 1;
  }
  const launch = parseLaunch(spec.launch, raw, spec.env, root);
  if (!launch) return 1;
  marks.mark("launched");
  const early = spec.early?.(launch.spec.threads);
  const nc = await connectNats({ ...launch.nats, name: spec.name(launch) });
  marks.mark("connected");
  const prepared = (await spec.prepare?.(launch, nc)) as P;
  marks.mark("prepared");
  return serve(spec, launch, nc, root.child(spec.logFields(launch)), { marks, prepared, early });
}

/**
 * A warm spare: connect and prepare, tell the agent it is waiting, then take the one assignment the agent sends.
 * SIGTERM, SIGINT or the agent's channel closing while it waits end it with 0 (it held nothing).
 */
async function runSpare<L extends Launch, P, E>(
  spec: ChildProcessSpec<L, P, E>,
  raw: string,
  marks: StartupMarks,
  root: Logger,
): Promise<number> {
  const base = parseLaunch(SpareLaunch, raw, spec.spareEnv!, root);
  if (!base) return 1;
  if (!process.send) {
    root.fatal({ event: "bad_launch" }, "a warm spare needs an IPC channel to its node agent");
    return 1;
  }
  const early = spec.early?.(base.warm_threads);
  const nc = await connectNats({ ...base.nats, name: `spare-${base.node_id}` });
  marks.mark("connected");
  const prepared = (await spec.prepare?.(base, nc)) as P;
  marks.mark("prepared");
  const assignment = await new Promise<unknown>((resolve) => {
    const quit = () => resolve(undefined);
    const take = (msg: unknown) => {
      process.off("SIGTERM", quit).off("SIGINT", quit).off("disconnect", quit).off("message", take);
      resolve(msg);
    };
    process.once("SIGTERM", quit).once("SIGINT", quit).once("disconnect", quit).on("message", take);
    process.send!({ spare: "waiting" } satisfies SpareSignal);
  });
  if (assignment === undefined) {
    await nc.close().catch(() => {});
    return 0;
  }
  const handed = SpareAssignment.safeParse(assignment);
  const { warm_threads: _, ...common } = base;
  const launch = handed.success
    ? parseLaunch(spec.launch, JSON.stringify({ ...common, spec: handed.data.spec }), spec.spareEnv!, root)
    : undefined;
  if (!launch) {
    root.fatal({ event: "bad_launch", assignment }, "the assignment handed to this spare is not valid");
    await nc.close().catch(() => {});
    return 1;
  }
  marks.mark("launched");
  return serve(spec, launch, nc, root.child(spec.logFields(launch)), { marks, prepared, early });
}

function parseLaunch<T>(schema: Schema<T>, raw: string, env: string, log: Logger): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(raw));
    if (!parsed.success) throw new Error(parsed.error.message);
    return parsed.data;
  } catch (err) {
    log.fatal({ event: "bad_launch", err }, `${env} is not a valid launch`);
    return undefined;
  }
}

async function serve<L extends Launch, P, E>(
  spec: ChildProcessSpec<L, P, E>,
  launch: L,
  nc: NatsConnection,
  log: Logger,
  ctx: { marks: StartupMarks; prepared: P; early: E | undefined },
): Promise<number> {
  let work: { stop(): Promise<void> };
  try {
    work = await spec.start(launch, nc, log, ctx);
  } catch (err) {
    log.error({ err, event: "start_failed" }, "could not start");
    await nc.close().catch(() => {});
    return isLoadFailure(err) ? EXIT_LOAD_FAILED : 1;
  }
  // A process started as a spare tells its agent it serves, then lives on exactly as a cold-started one.
  if (process.send) {
    process.send({ spare: "serving" } satisfies SpareSignal);
    process.disconnect();
  }
  const code = await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ event: "stopping", signal }, "stopping");
      work.stop().then(
        () => resolve(0),
        (err) => {
          log.error({ err, event: "stop_failed" }, "stop failed");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    const orphaned = () => {
      if (process.ppid !== PARENT_PID) stop("parent exited");
    };
    const orphanCheck = setInterval(orphaned, 1_000);
    orphanCheck.unref();
    orphaned();
    nc.closed().then(() => {
      if (!stopping) {
        log.error({ event: "nats_closed" }, "NATS connection closed");
        resolve(1);
      }
    });
  });
  await nc.drain().catch(() => {});
  return code;
}
