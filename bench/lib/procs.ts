// Child processes of the benches: servers (kept running, pid known for CPU accounting) and load
// generators (run to completion, one JSON line out). Every child is ours and is stopped by its pid.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
/** bench/dist */
export const benchDist = path.resolve(here, "..");
/** The repository root. */
export const repoRoot = path.resolve(benchDist, "..", "..");

/** Keeps the last `max` characters of a stream, for error messages. */
export function tail(max = 4000): { push(chunk: Buffer | string): void; text(): string } {
  let s = "";
  return {
    push(chunk) {
      s = (s + chunk.toString()).slice(-max);
    },
    text: () => s.trim(),
  };
}

/** A child printing JSON lines on stdout: `done` parses its last line once it exits 0. */
export interface JsonChild<T> {
  pid: number;
  child: ChildProcess;
  done: Promise<T>;
}

/**
 * Starts `node <script> …args`; `onLine` gets each stdout line that parses as JSON, as it comes (progress such as
 * a publisher's start), and `done` the last line, parsed, when it exits 0 (else rejects with its stderr).
 */
export function spawnJsonChild<T>(
  script: string,
  args: string[],
  { timeoutMs, onLine }: { timeoutMs?: number; onLine?: (value: unknown) => void } = {},
): JsonChild<T> {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const done = new Promise<T>((resolve, reject) => {
    let out = "";
    let seen = 0;
    const err = tail();
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (!onLine) return;
      const lines = out.split("\n");
      for (; seen < lines.length - 1; seen++) {
        try {
          onLine(JSON.parse(lines[seen]!));
        } catch {
          // not a JSON line
        }
      }
    });
    child.stderr.on("data", (c: Buffer) => err.push(c));
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code === 0) {
        try {
          resolve(JSON.parse(last) as T);
          return;
        } catch {
          // fall through
        }
      }
      reject(
        new Error(
          `${path.basename(script)} ${code === null ? `killed by ${signal}` : `exited ${code}`}: ${err.text() || last}`,
        ),
      );
    });
  });
  return { pid: child.pid!, child, done };
}

/** Runs `node <script> …args` to completion and parses the last stdout line as JSON. */
export function runJsonChild<T>(script: string, args: string[], timeoutMs: number): Promise<T> {
  return spawnJsonChild<T>(script, args, { timeoutMs }).done;
}

export interface Server {
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/**
 * Starts `node <script> …args` and waits for its first stdout line that parses as JSON (the baseline
 * prints `{"port": n}` once listening).
 */
export function startJsonServer<T>(
  script: string,
  args: string[],
  timeoutMs = 30_000,
): Promise<{ server: Server; hello: T }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const err = tail();
    child.stderr.on("data", (c: Buffer) => err.push(c));
    let buf = "";
    let done = false;
    const fail = (why: string) => {
      if (done) return;
      done = true;
      child.kill("SIGKILL");
      reject(new Error(`${path.basename(script)} ${why}: ${err.text()}`));
    };
    const timer = setTimeout(() => fail(`did not start within ${timeoutMs} ms`), timeoutMs);
    child.on("error", (e) => fail(e.message));
    child.on("exit", (code, signal) => fail(`exited (${code ?? signal}) before listening`));
    child.stdout.on("data", (c: Buffer) => {
      if (done) return;
      buf += c.toString();
      for (const line of buf.split("\n").slice(0, -1)) {
        try {
          const hello = JSON.parse(line) as T;
          done = true;
          clearTimeout(timer);
          child.stdout.resume();
          resolve({ server: { pid: child.pid!, child, stop: () => stopChild(child) }, hello });
          return;
        } catch {
          // not the line we wait for
        }
      }
      buf = buf.slice(buf.lastIndexOf("\n") + 1);
    });
  });
}
