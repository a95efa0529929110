// HTTP load generator of the benches: wrk from Debian's packages, a C closed loop that takes far less CPU
// from the servers than a Node one on a 2-core machine. One thread, n connections, each request a random
// line of the body pool.
import { execFileSync, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { reapedChildrenCpuSeconds } from "../lib/cpu.js";
import { tail } from "../lib/procs.js";
import type { LoadResult } from "./common.js";

/**
 * wrk's script: loads the pool (its path comes after `--`), POSTs a random line per request, and at the end
 * prints wrk's own counters and µs latency percentiles as one JSON line, so nothing is parsed from its
 * human-readable report (whose units switch between us, ms and s).
 */
const POOL_LUA = `wrk.method = "POST"
local bodies = {}

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then bodies[#bodies + 1] = line end
  end
  if #bodies == 0 then error("no bodies in " .. tostring(args[1])) end
end

function request()
  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"meanUs":%.3f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
`;

let scriptFile: string | undefined;
/** POOL_LUA in a temporary file (wrk reads scripts from files only), removed when this process exits. */
function poolScript(): string {
  if (!scriptFile) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sy-bench-wrk-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    scriptFile = path.join(dir, "pool.lua");
    writeFileSync(scriptFile, POOL_LUA);
  }
  return scriptFile;
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? "").split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Installs wrk when it is missing (as root, from the distribution's packages); not root: one line saying so. */
export function ensureWrk(log: (m: string) => void): void {
  if (onPath("wrk")) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      "wrk is not installed and the bench is not root: run `apt-get install wrk` as root first",
    );
  }
  const apt = (args: string[]) =>
    execFileSync("apt-get", args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  const install = () => apt(["install", "-y", "--no-install-recommends", "wrk"]);
  log("wrk is missing: installing Debian's wrk package");
  try {
    install();
  } catch {
    // A fresh machine has no package lists yet.
    apt(["update"]);
    install();
  }
  if (!onPath("wrk")) throw new Error("apt-get installed wrk, but it is not on PATH");
}

/** `wrk -v`'s first line, e.g. "wrk debian/4.1.0-3+b2 [epoll]" (it exits 1 after printing it). */
export function wrkVersion(): string {
  try {
    return execFileSync("wrk", ["-v"], { encoding: "utf8" }).split("\n")[0]!;
  } catch (err) {
    const out = String((err as { stdout?: unknown }).stdout ?? "");
    return out.split("\n")[0]!.replace(/\s*Copyright.*$/, "") || "wrk (version unknown)";
  }
}

export interface WrkOptions {
  url: string;
  /** The body pool: JSON Lines, one request body per line. */
  bodiesFile: string;
  connections: number;
  /** Whole seconds: wrk truncates fractions. */
  durationS: number;
  headers?: Record<string, string>;
}

/** What POOL_LUA's done() prints. */
interface WrkDone {
  requests: number;
  durationUs: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
  connect: number;
  read: number;
  write: number;
  /** Responses with a status ≥ 400 (wrk's "Non-2xx or 3xx responses"). */
  status: number;
  timeout: number;
}

/**
 * Runs wrk to completion. Its CPU is what this process's reaped children used meanwhile (/proc/self/stat
 * cutime + cstime), so no other child of the bench may exit during the run.
 */
export async function runWrk(o: WrkOptions): Promise<LoadResult> {
  if (!Number.isInteger(o.durationS) || o.durationS < 1) {
    throw new Error(`wrk: durationS must be a whole number of seconds ≥ 1, got ${o.durationS}`);
  }
  if (!Number.isInteger(o.connections) || o.connections < 1) {
    throw new Error(`wrk: connections must be a whole number ≥ 1, got ${o.connections}`);
  }
  const headers = Object.entries({ "content-type": "application/json", ...o.headers });
  const args = [
    "-t1",
    `-c${o.connections}`,
    `-d${o.durationS}s`,
    "--latency",
    "--timeout",
    "30s",
    "-s",
    poolScript(),
    ...headers.flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    o.url,
    "--",
    o.bodiesFile,
  ];
  const cpu0 = reapedChildrenCpuSeconds();
  const d = await new Promise<WrkDone>((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const err = tail();
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill("SIGKILL"), (o.durationS + 60) * 1000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      try {
        if (code === 0) {
          resolve(JSON.parse(out.trim().split("\n").at(-1) ?? "") as WrkDone);
          return;
        }
      } catch {
        // no result line: reported below
      }
      const how = code === null ? `killed by ${signal}` : `exited ${code}`;
      reject(new Error(`wrk ${how}: ${err.text() || out.trim()}`));
    });
  });
  const cpuS = reapedChildrenCpuSeconds() - cpu0;
  const durationS = d.durationUs / 1e6;
  const ok = d.requests - d.status;
  return {
    connections: o.connections,
    durationS,
    requests: ok,
    rps: Math.round((ok / durationS) * 10) / 10,
    p50Ms: d.p50Us / 1000,
    p99Ms: d.p99Us / 1000,
    meanMs: Math.round(d.meanUs) / 1000,
    errors: d.connect + d.read + d.write + d.timeout,
    non2xx: d.status,
    clientCpuS: cpuS,
    runCpuS: cpuS,
  };
}
