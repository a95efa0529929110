// Switchyard for the realtime bench: `switchyard up` in a fresh data dir, models registered with the CLI,
// one endpoint per model created over the Databricks REST API and polled until READY.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { ClusterFile } from "@switchyard/protocol";
import { treeCpuTicks } from "./cpu.js";
import { repoRoot, stopChild, tail } from "./procs.js";

const execFileAsync = promisify(execFile);
const CLI = path.join(repoRoot, "packages", "cli", "bin", "switchyard.js");

export interface SwitchyardCluster {
  /** The `switchyard up` process; CPU accounting takes it and all its descendants. */
  pid: number;
  dataDir: string;
  file: ClusterFile;
  stop(): Promise<void>;
}

/** What `up` printed and logged, for error messages. */
export class SwitchyardStartError extends Error {}

export interface StartOptions {
  /** `--node-threads`: the node agent's thread budget (default: `up`'s, one per core). */
  nodeThreads?: number;
  timeoutMs?: number;
}

/**
 * Spawns `switchyard up --data-dir <tmp> --nats-port 0 --http-port 0` from the repository root (so its data
 * roots are the repository and the data dir) and waits until it is up (its "is up" line, with cluster.json
 * written by this pid). The caller checks `file.httpUrl` / `file.token`.
 */
export async function startSwitchyard(
  log: (m: string) => void,
  { nodeThreads, timeoutMs = 60_000 }: StartOptions = {},
): Promise<SwitchyardCluster> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "sy-bench-"));
  const threads = nodeThreads === undefined ? [] : ["--node-threads", String(nodeThreads)];
  const child = spawn(
    process.execPath,
    [CLI, "up", "--data-dir", dataDir, "--nats-port", "0", "--http-port", "0", ...threads],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
  );
  const out = tail();
  let upLine = false;
  child.stdout.on("data", (c: Buffer) => {
    out.push(c);
    if (/ is up\b/.test(out.text())) upLine = true;
  });
  child.stderr.on("data", (c: Buffer) => out.push(c));
  const stop = async () => {
    // `up` stops its own children on SIGTERM; anything of its tree still alive after that is killed by pid.
    const tree = [...treeCpuTicks([child.pid!]).keys()].filter((p) => p !== child.pid);
    await stopChild(child, 20_000);
    for (const pid of tree) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + timeoutMs;
  try {
    while (true) {
      if (exited(child)) throw new SwitchyardStartError(`switchyard up exited early: ${out.text()}`);
      const file = readCluster(dataDir);
      if (file && file.pid === child.pid && upLine) {
        log(
          `switchyard up (pid ${child.pid}) is up: nats ${redact(file.natsUrl)}, http ${file.httpUrl ?? "-"}`,
        );
        return { pid: child.pid!, dataDir, file, stop };
      }
      if (Date.now() > deadline) {
        throw new SwitchyardStartError(`switchyard up not up within ${timeoutMs} ms: ${out.text()}`);
      }
      await sleep(100);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const redact = (url: string) => url.replace(/\/\/[^@/]*@/, "//");

function readCluster(dataDir: string): ClusterFile | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dataDir, "cluster.json"), "utf8")) as ClusterFile;
  } catch {
    return undefined; // not written yet, or mid-rename
  }
}

/** `switchyard models register <name> <file> --json`; returns the new version. */
export async function registerModel(sy: SwitchyardCluster, name: string, file: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(
      process.execPath,
      [CLI, "--data-dir", sy.dataDir, "--json", "models", "register", name, file],
      { cwd: repoRoot, timeout: 60_000 },
    );
    const v = JSON.parse(stdout) as { version: number };
    return String(v.version);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`switchyard models register ${name} failed: ${e.stderr?.trim() || e.message}`);
  }
}

export function authHeaders(sy: SwitchyardCluster): Record<string, string> {
  return sy.file.token ? { authorization: `Bearer ${sy.file.token}` } : {};
}

export function invocationUrl(sy: SwitchyardCluster, endpoint: string): string {
  return `${sy.file.httpUrl!.replace(/\/$/, "")}/serving-endpoints/${endpoint}/invocations`;
}

export interface EndpointState {
  state?: { ready?: string; config_update?: string };
  config?: Record<string, unknown>;
  [k: string]: unknown;
}

const endpointsBase = (sy: SwitchyardCluster) =>
  `${sy.file.httpUrl!.replace(/\/$/, "")}/api/2.0/serving-endpoints`;

/**
 * Sends `body` to the endpoints REST API (`POST` creates, `PUT …/{name}/config` updates) with the cluster's
 * token; throws on an error reply, naming the call.
 */
export async function sendEndpoint(
  sy: SwitchyardCluster,
  method: "POST" | "PUT",
  pathSuffix: string,
  body: unknown,
): Promise<void> {
  const url = `${endpointsBase(sy)}${pathSuffix}`;
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...authHeaders(sy) },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
}

/**
 * Polls GET of the endpoint until `accept` holds for it; fails on UPDATE_FAILED or after `timeoutMs`, with the
 * last reply.
 */
export async function waitEndpoint(
  sy: SwitchyardCluster,
  name: string,
  what: string,
  accept: (ep: EndpointState) => boolean,
  timeoutMs = 180_000,
): Promise<EndpointState> {
  const headers = authHeaders(sy);
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const res = await fetch(`${endpointsBase(sy)}/${name}`, { headers });
    const text = await res.text();
    if (res.ok) {
      const ep = JSON.parse(text) as EndpointState;
      if (accept(ep)) return ep;
      if (ep.state?.config_update === "UPDATE_FAILED")
        throw new Error(`endpoint ${name} UPDATE_FAILED: ${text}`);
    }
    last = `${res.status} ${text}`;
    await sleep(250);
  }
  throw new Error(`endpoint ${name} not ${what} within ${timeoutMs} ms; last GET: ${last.slice(0, 500)}`);
}

/**
 * Creates an endpoint serving one model version (workload Small) with the Databricks REST body, then
 * polls GET until `state.ready == "READY"`; fails on UPDATE_FAILED or after `timeoutMs`.
 */
export async function createEndpoint(
  sy: SwitchyardCluster,
  name: string,
  model: string,
  version: string,
  timeoutMs = 180_000,
): Promise<void> {
  await sendEndpoint(sy, "POST", "", {
    name,
    config: {
      served_entities: [{ entity_name: model, entity_version: version, workload_size: "Small" }],
    },
  });
  await waitEndpoint(sy, name, "READY", (ep) => ep.state?.ready === "READY", timeoutMs);
}
