// What importing a package loads, seen by the real Node loader in a fresh process: what custom-model authors
// import stays light (no NATS client, no zod, no esbuild, no msgpack), and serving processes never load the
// registration tooling (esbuild). Runs the built packages, as a deployed process would.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const REGISTER = fileURLToPath(new URL("./fixtures/module-graph/register.mjs", import.meta.url));

/** Every module URL that `import(specifier)` resolves in a fresh Node process (dependencies included). */
function modulesLoadedBy(specifier: string): string[] {
  const out = join(tempDir("sy-graph-"), "modules.txt");
  const r = spawnSync(
    process.execPath,
    ["--import", REGISTER, "--input-type=module", "-e", `await import(${JSON.stringify(specifier)});`],
    { cwd: ROOT, env: { ...process.env, MODULE_GRAPH_OUT: out }, encoding: "utf8" },
  );
  expect(r.status, r.stderr).toBe(0);
  return [...new Set(readFileSync(out, "utf8").trim().split("\n"))];
}

const loads = (modules: string[], pkg: string) => modules.some((m) => m.includes(`/node_modules/${pkg}/`));

describe("module graph", () => {
  it("@switchyard/model loads its data types and no NATS client, zod, esbuild or msgpack", () => {
    const modules = modulesLoadedBy("@switchyard/model");
    expect(modules.some((m) => m.endsWith("/packages/data/dist/frame.js"))).toBe(true);
    for (const heavy of ["@nats-io", "zod", "esbuild", "msgpackr", "onnxruntime-node"]) {
      expect(loads(modules, heavy), `${heavy} is loaded`).toBe(false);
    }
    expect(modules.filter((m) => m.includes("/packages/") && !/\/packages\/(model|data)\//.test(m))).toEqual([
      expect.stringContaining("/packages/protocol/dist/errors.js"),
    ]);
  });

  it.each(["@switchyard/bridge", "@switchyard/coordinator", "@switchyard/replica", "@switchyard/agent"])(
    "%s loads no esbuild and no ingestion code",
    (pkg) => {
      const modules = modulesLoadedBy(pkg);
      expect(modules.some((m) => m.includes("/packages/protocol/dist/"))).toBe(true);
      expect(loads(modules, "esbuild")).toBe(false);
      expect(modules.some((m) => m.includes("/packages/ingest/"))).toBe(false);
    },
  );

  it("@switchyard/client loads no model runtime; @switchyard/client/local does", () => {
    const sdk = modulesLoadedBy("@switchyard/client");
    for (const heavy of ["onnxruntime-node", "piscina"])
      expect(loads(sdk, heavy), `${heavy} is loaded`).toBe(false);
    expect(sdk.some((m) => m.includes("/packages/runtime/"))).toBe(false);
    const local = modulesLoadedBy("@switchyard/client/local");
    expect(local.some((m) => m.endsWith("/packages/runtime/dist/runner.js"))).toBe(true);
    expect(loads(local, "piscina")).toBe(true);
    expect(local.some((m) => m.includes("/packages/ingest/"))).toBe(false);
  });
});
