// Loads `cluster.config.ts` (or .js/.mjs): esbuild turns it into one ESM file next to the original, so its
// own imports (`@switchyard/cli`) resolve from the user's project, then it is imported and validated.
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ClusterConfig, SwitchyardError } from "@switchyard/protocol";
import { build } from "esbuild";

const CANDIDATES = ["cluster.config.ts", "cluster.config.mjs", "cluster.config.js"];

export function findConfigFile(cwd = process.cwd()): string | undefined {
  for (const name of CANDIDATES) {
    const file = path.join(cwd, name);
    if (existsSync(file)) return file;
  }
  return undefined;
}

export async function loadClusterConfig(file: string | undefined): Promise<ClusterConfig> {
  if (!file) return ClusterConfig.parse({});
  const abs = path.resolve(file);
  if (!existsSync(abs)) {
    throw new SwitchyardError("INVALID_PARAMETER_VALUE", `--config: '${file}' does not exist`);
  }
  let out: string;
  try {
    const result = await build({
      entryPoints: [abs],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      packages: "external",
      write: false,
      logLevel: "silent",
    });
    out = result.outputFiles[0]!.text;
  } catch (err) {
    throw new SwitchyardError("INVALID_PARAMETER_VALUE", `${file}: ${(err as Error).message.split("\n")[0]}`);
  }
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.${process.pid}.mjs`);
  await writeFile(tmp, out);
  let mod: { default?: unknown };
  try {
    mod = await import(pathToFileURL(tmp).href);
  } catch (err) {
    throw new SwitchyardError("INVALID_PARAMETER_VALUE", `${file}: ${(err as Error).message.split("\n")[0]}`);
  } finally {
    await rm(tmp, { force: true });
  }
  const parsed = ClusterConfig.safeParse(mod.default ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new SwitchyardError("INVALID_PARAMETER_VALUE", `${file}: ${issues}`);
  }
  return parsed.data;
}
