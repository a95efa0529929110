// The life of a process a node agent supervises (a replica, a batch worker): read its launch from the
// environment, connect, start, then run until SIGTERM/SIGINT (stop gracefully, exit 0), until its agent is gone
// (an orphan nobody supervises stops by itself: the coordinator places a fresh one elsewhere), or until NATS is
// lost for good (exit 1: the agent restarts it). A model that cannot be served exits EXIT_LOAD_FAILED, which the
// agent reports as FAILED and does not restart.
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, type NatsOptions, type Schema } from "@switchyard/nats";
import { EXIT_LOAD_FAILED, SwitchyardError } from "@switchyard/protocol";
import { type Logger, pino } from "pino";

/** Errors that mean the model itself cannot be served: retrying would fail the same way. */
export function isLoadFailure(err: unknown): boolean {
  return (
    err instanceof SwitchyardError &&
    ["MALFORMED_MODEL", "INTEGRITY_ERROR", "RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"].includes(
      err.code,
    )
  );
}

export interface ChildProcessSpec<L extends { nats: NatsOptions }> {
  /** The environment variable holding the launch (JSON), and its schema. */
  env: string;
  launch: Schema<L>;
  /** Connection name and the fields every log line carries. */
  name(launch: L): string;
  logFields(launch: L): Record<string, unknown>;
  /** Starts the work; the returned stop() finishes or gives back what is in hand. */
  start(launch: L, nc: NatsConnection, log: Logger): Promise<{ stop(): Promise<void> }>;
}

/** Runs a supervised process to its end and exits with its code. */
export function runChild<L extends { nats: NatsOptions }>(spec: ChildProcessSpec<L>): void {
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

async function main<L extends { nats: NatsOptions }>(spec: ChildProcessSpec<L>): Promise<number> {
  const raw = process.env[spec.env];
  const early = pino({ base: { pid: process.pid } }, pino.destination(2));
  if (!raw) {
    early.fatal({ event: "bad_launch" }, `${spec.env} is not set`);
    return 1;
  }
  let launch: L;
  try {
    const parsed = spec.launch.safeParse(JSON.parse(raw));
    if (!parsed.success) throw new Error(parsed.error.message);
    launch = parsed.data;
  } catch (err) {
    early.fatal({ event: "bad_launch", err }, `${spec.env} is not a valid launch`);
    return 1;
  }
  const log = pino({ base: { ...spec.logFields(launch), pid: process.pid } }, pino.destination(2));
  const nc = await connectNats({ ...launch.nats, name: spec.name(launch) });
  let work: { stop(): Promise<void> };
  try {
    work = await spec.start(launch, nc, log);
  } catch (err) {
    log.error({ err, event: "start_failed" }, "could not start");
    await nc.close().catch(() => {});
    return isLoadFailure(err) ? EXIT_LOAD_FAILED : 1;
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
    const parent = process.ppid;
    const orphanCheck = setInterval(() => {
      if (process.ppid !== parent) stop("parent exited");
    }, 1_000);
    orphanCheck.unref();
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
