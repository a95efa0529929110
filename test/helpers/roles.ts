// The per-role processes of a multi-host deployment (`switchyard coordinator|node|bridge`), started as a user
// starts them: the built CLI, each its own process, its output kept for assertions and failure reports.
import { type ChildProcess, spawn } from "node:child_process";
import { BIN, eventually, root } from "./up.js";

export interface Role {
  proc: ChildProcess;
  /** The command (`coordinator`, `node`, `bridge`). */
  command: string;
  /** Everything it printed, stdout and stderr, and how it exited. */
  output(): string;
}

const started: Role[] = [];

/** Starts `switchyard <args>` with warn-level logs. */
export function role(args: string[]): Role {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SWITCHYARD_LOG_LEVEL: "warn" },
  });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  proc.on("exit", (code, signal) => (out += `\n[exited: ${code ?? signal}]`));
  const r = { proc, command: args[0] ?? "", output: () => out };
  started.push(r);
  return r;
}

/** Every role started so far. */
export const roles = (): readonly Role[] => started;

/** SIGTERM to every role still running, and waits for each to exit. */
export async function stopRoles(): Promise<void> {
  await Promise.all(
    started.splice(0).map(
      ({ proc }) =>
        new Promise<void>((resolve) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
          proc.once("exit", () => resolve());
          proc.kill("SIGTERM");
        }),
    ),
  );
}

/** Waits until the bridge at `url` reports endpoint `name` READY (a first replica loads its model). */
export async function endpointReady(url: string, name: string): Promise<void> {
  await eventually(
    async () => {
      const r = (await (await fetch(`${url}/api/2.0/serving-endpoints/${name}`)).json()) as {
        state?: { ready?: string };
      };
      return r.state?.ready === "READY" ? true : undefined;
    },
    `${name} READY`,
    90_000,
  );
}

/**
 * Creates endpoint `name` serving version 1 of `model` through the bridge at `url`, and returns the answer.
 * The bridge can listen before a coordinator answers the management API: that 503 (retryable, nothing made) is
 * retried.
 */
export async function createEndpoint(url: string, name: string, model: string): Promise<Response> {
  return eventually(async () => {
    const res = await fetch(`${url}/api/2.0/serving-endpoints`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        name,
        config: { served_entities: [{ entity_name: model, entity_version: "1", workload_size: "Small" }] },
      }),
    });
    return res.status === 503 ? undefined : res;
  }, "the management API answering");
}
