import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { processExists } from "./process-exists.js";

// The parent must be a real separate process, so the fixture runs the built package (npm test builds it).
const fixture = fileURLToPath(new URL("./fixtures/parent-of-nats.mjs", import.meta.url));
const dist = fileURLToPath(new URL("../dist/mod.js", import.meta.url));

interface OrphanCandidate {
  pid: number;
  configFile: string;
  storeDir: string;
}

async function serverOfDyingParent(mode: "exit" | "throw" | "signal"): Promise<OrphanCandidate> {
  const parent = spawn(process.execPath, [fixture, mode], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  parent.stderr.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise<void>((r) => parent.once("exit", () => r()));
  const server = await new Promise<OrphanCandidate>((resolveServer, reject) => {
    parent.stdout.once("data", (c: Buffer) => resolveServer(JSON.parse(c.toString())));
    parent.once("exit", (code) =>
      reject(new Error(`fixture exited (${code}) before printing a pid:\n${stderr}`)),
    );
  });
  if (mode === "signal") parent.kill("SIGTERM");
  await exited;
  return server;
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (!processExists(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !processExists(pid);
}

describe("spawned servers do not outlive their parent", () => {
  beforeAll(() => {
    if (!existsSync(dist))
      throw new Error(`${dist} is missing: build first (npx tsc -b packages/natsd; npm test does it)`);
  });

  for (const mode of ["exit", "throw", "signal"] as const) {
    it(`parent ends by ${mode}: its nats-server is killed`, async () => {
      const server = await serverOfDyingParent(mode);
      expect(server.pid).toBeGreaterThan(0);
      expect(await gone(server.pid, 5_000)).toBe(true);
      // The scratch config dir goes with it; the store is data and stays until someone removes it.
      expect(existsSync(server.configFile)).toBe(false);
      expect(existsSync(server.storeDir)).toBe(true);
      await rm(server.storeDir, { recursive: true, force: true });
    });
  }
});
