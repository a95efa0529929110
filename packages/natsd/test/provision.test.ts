import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findNatsServer, findRepoRoot, NatsServerNotFoundError, natsServerVersion } from "../src/mod.js";

// A stand-in for Debian bookworm's nats-server: it only answers --version, like the real one would.
async function fakeNatsServer(dir: string, version: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "nats-server");
  await writeFile(path, `#!/bin/sh\necho "nats-server: v${version}"\n`);
  await chmod(path, 0o755);
  return path;
}

describe("findNatsServer", () => {
  let tmp: string;
  let realBinary: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "natsd-provision-test-"));
    // The real binary the rest of the suite uses; provisioning it here must not need the network.
    realBinary = await findNatsServer({ download: false });
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("finds a real nats-server ≥ 2.10 for this suite", async () => {
    const v = await natsServerVersion(realBinary);
    expect(v.major * 100 + v.minor).toBeGreaterThanOrEqual(210);
  });

  it("gives a clear error when SWITCHYARD_NATS_SERVER points to a missing file", async () => {
    const missing = join(tmp, "does-not-exist", "nats-server");
    const attempt = findNatsServer({ env: { SWITCHYARD_NATS_SERVER: missing, PATH: "" }, download: false });
    await expect(attempt).rejects.toThrow(NatsServerNotFoundError);
    await expect(attempt).rejects.toThrow(`SWITCHYARD_NATS_SERVER=${missing}: no such file`);
  });

  it("rejects SWITCHYARD_NATS_SERVER when it is 2.9.10, without falling back", async () => {
    const old = await fakeNatsServer(join(tmp, "env-old"), "2.9.10");
    await expect(
      findNatsServer({ env: { SWITCHYARD_NATS_SERVER: old, PATH: "" }, cacheDir: join(tmp, "none") }),
    ).rejects.toThrow(
      `SWITCHYARD_NATS_SERVER=${old} is nats-server 2.9.10; Switchyard needs 2.10.0 or newer.`,
    );
  });

  it("returns SWITCHYARD_NATS_SERVER when it is new enough", async () => {
    await expect(findNatsServer({ env: { SWITCHYARD_NATS_SERVER: realBinary, PATH: "" } })).resolves.toBe(
      realBinary,
    );
  });

  it("skips a 2.9.10 on PATH and takes the project cache", async () => {
    const pathDir = join(tmp, "path-old");
    await fakeNatsServer(pathDir, "2.9.10");
    const cacheDir = join(tmp, "cache-real");
    await mkdir(join(cacheDir, "2.10.27"), { recursive: true });
    await symlink(realBinary, join(cacheDir, "2.10.27", "nats-server"));
    const logs: string[] = [];
    const found = await findNatsServer({
      env: { PATH: pathDir },
      cacheDir,
      download: false,
      log: (m) => logs.push(m),
    });
    expect(found).toBe(join(cacheDir, "2.10.27", "nats-server"));
    expect(logs.join("\n")).toContain("version 2.9.10 is older than 2.10.0");
  });

  it("prefers a new enough nats-server on PATH over the cache", async () => {
    const pathDir = join(tmp, "path-new");
    const onPath = await fakeNatsServer(pathDir, "2.11.1");
    const found = await findNatsServer({
      env: { PATH: pathDir },
      cacheDir: join(tmp, "cache-real"),
      download: false,
    });
    expect(found).toBe(onPath);
  });

  it("does not trust a cache directory name over what the binary says", async () => {
    const cacheDir = join(tmp, "cache-lying");
    await fakeNatsServer(join(cacheDir, "2.10.99"), "2.9.10");
    await expect(findNatsServer({ env: { PATH: "" }, cacheDir, download: false })).rejects.toThrow(
      NatsServerNotFoundError,
    );
  });

  it("says exactly what to install when nothing is found", async () => {
    const attempt = findNatsServer({
      env: { PATH: join(tmp, "path-old") },
      cacheDir: join(tmp, "empty"),
      download: false,
    });
    await expect(attempt).rejects.toThrow(/Install nats-server ≥ 2\.10\.0 .* or set SWITCHYARD_NATS_SERVER=/);
    await expect(attempt).rejects.toThrow("is version 2.9.10, older than 2.10.0");
  });

  it("finds the workspace root from this package", () => {
    const here = fileURLToPath(new URL(".", import.meta.url));
    const root = findRepoRoot(here);
    expect(root).toBeDefined();
    expect(existsSync(join(root!, "packages", "natsd", "package.json"))).toBe(true);
    expect(findRepoRoot("/")).toBeUndefined();
  });
});
