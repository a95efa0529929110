// Runs Switchyard as a user does: the built `switchyard` CLI in child processes, `switchyard up` with its
// own nats-server, HTTP through the bridge. Used by the end-to-end tests.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import { connectNats } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = path.join(root, "packages/cli/bin/switchyard.js");

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return run(process.execPath, [BIN, ...args], env);
}

let binDir: string | undefined;

/**
 * Runs a command line through /bin/sh as a user types it, with `switchyard` on PATH standing for the built
 * CLI, so a command from the docs or the notes is tested character for character.
 */
export function shell(commandLine: string, env: Record<string, string> = {}): Promise<Run> {
  if (!binDir) {
    binDir = mkdtempSync(path.join(tmpdir(), "sy-bin-"));
    const wrapper = path.join(binDir, "switchyard");
    writeFileSync(
      wrapper,
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
  }
  return run("/bin/sh", ["-c", commandLine], {
    PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ""}`,
    ...env,
  });
}

function run(command: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: root,
        env: { ...process.env, SWITCHYARD_NATS_URL: "", ...env },
        timeout: 120_000,
        maxBuffer: 64 << 20,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

import { eventually, tempDir, writeTempModel } from "@switchyard/testkit";

export { alive, eventually, sleep } from "@switchyard/testkit";

/** Direct children of pid whose command line contains `match`. */
export function childrenMatching(pid: number, match: string): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    return kids.filter((k) => readFileSync(`/proc/${k}/cmdline`, "utf8").includes(match)).map(Number);
  } catch {
    return [];
  }
}

export interface ClusterInfo {
  cluster: string;
  natsUrl: string;
  httpUrl?: string;
  token?: string;
  pid: number;
}

export interface Up {
  proc: ChildProcess;
  dataDir: string;
  output(): string;
  exited: Promise<number | null>;
  info(): ClusterInfo;
  stop(): Promise<number | null>;
}

export function spawnUp(dataDir: string, extra: string[] = []): Up {
  const proc = spawn(
    process.execPath,
    [BIN, "up", "--data-dir", dataDir, "--nats-port", "0", "--http-port", "0", ...extra],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
  return {
    proc,
    dataDir,
    output: () => out,
    exited,
    info: () => JSON.parse(readFileSync(path.join(dataDir, "cluster.json"), "utf8")) as ClusterInfo,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      return exited;
    },
  };
}

/** Starts `switchyard up` and waits until it says it is up. */
export async function startUp(dataDir: string, extra: string[] = []): Promise<Up> {
  const up = spawnUp(dataDir, extra);
  await eventually(
    () =>
      up.output().includes("is up")
        ? true
        : up.proc.exitCode !== null
          ? Promise.reject(new Error(up.output()))
          : undefined,
    "switchyard up",
    60_000,
  ).catch((err) => {
    throw new Error(`switchyard up did not start: ${err.message}\n${up.output()}`);
  });
  return up;
}

/** `switchyard up` with its data dir in a fresh temp dir, with an ONNX model registered under `name` and `alias`. */
export async function startUpWithModel(name: string, onnx: Uint8Array, alias: string): Promise<Up> {
  const up = await startUp(path.join(tempDir("sy-up-"), "data"));
  const reg = await cli([
    "models",
    "register",
    name,
    writeTempModel(onnx),
    "--alias",
    alias,
    "--nats",
    up.info().natsUrl,
  ]);
  if (reg.code !== 0) {
    await up.stop();
    throw new Error(`models register ${name} failed: ${reg.stderr}`);
  }
  return up;
}

export interface HttpReply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** One HTTP call as curl makes it: a JSON body (a string is sent as is), the token as a bearer when given. */
export async function httpCall(
  base: string,
  token: string | undefined,
  method: string,
  p: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<HttpReply> {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** What the end-to-end tests do against a running `switchyard up`: HTTP as curl does it, and cluster state. */
export function clusterClient(up: Up) {
  const { httpUrl, token, natsUrl } = up.info();
  const call = (method: string, p: string, body?: unknown, headers: Record<string, string> = {}) =>
    httpCall(httpUrl ?? "", token, method, p, body, headers);
  const invoke = (endpoint: string, body: unknown, headers: Record<string, string> = {}) =>
    call("POST", `/serving-endpoints/${endpoint}/invocations`, body, headers);
  /** Resolves with the GET body once READY and NOT_UPDATING; fails at once on UPDATE_FAILED. */
  const waitReady = (name: string, ms = 90_000) =>
    eventually(
      async () => {
        const r = await call("GET", `/api/2.0/serving-endpoints/${name}`);
        if (r.json?.state?.config_update === "UPDATE_FAILED") throw new Error(JSON.stringify(r.json));
        return r.json?.state?.ready === "READY" && r.json?.state?.config_update === "NOT_UPDATING"
          ? r.json
          : undefined;
      },
      `endpoint ${name} READY`,
      ms,
    );
  /** Pids of the READY replicas of an endpoint, from the replica states in KV. */
  const replicaPids = async (endpoint: string): Promise<number[]> => {
    const nc = await connectNats({ servers: natsUrl, reconnect: false });
    try {
      const kv = await new Kvm(nc).open(clusterNames(up.info().cluster).buckets.cluster);
      const pids: number[] = [];
      for await (const key of await kv.keys("replica.*")) {
        const e = await kv.get(key);
        // A replica that stopped leaves a delete marker under its key.
        if (e?.operation !== "PUT") continue;
        const s = e.json<{ endpoint: string; state: string; pid: number | null }>();
        if (s?.endpoint === endpoint && s.state === "READY" && s.pid) pids.push(s.pid);
      }
      return pids.sort();
    } finally {
      await nc.close();
    }
  };
  return { http: httpUrl!, token: token!, call, invoke, waitReady, replicaPids };
}
