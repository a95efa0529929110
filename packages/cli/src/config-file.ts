// Loads `cluster.config.ts` (or .js/.mjs): esbuild turns it into one ESM file next to the original, so its
// own imports (`@switchyard/cli`) resolve from the user's project, then it is imported and validated.
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ClusterConfig, DEFER_CONFIG_VALIDATION, issuePath, SwitchyardError } from "@switchyard/protocol";
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
  const parsed = validateConfig(await importConfigFile(file));
  if (!parsed.config)
    throw new SwitchyardError("INVALID_PARAMETER_VALUE", `${file}: ${parsed.problems.join("; ")}`);
  return parsed.config;
}

/** The file's default export as written, not yet validated (`defineConfig` defers to the caller here). */
export async function importConfigFile(file: string): Promise<unknown> {
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
  const flags = globalThis as Record<symbol, unknown>;
  flags[DEFER_CONFIG_VALIDATION] = true;
  try {
    const mod = (await import(pathToFileURL(tmp).href)) as { default?: unknown };
    return mod.default ?? {};
  } catch (err) {
    throw new SwitchyardError("INVALID_PARAMETER_VALUE", `${file}: ${(err as Error).message.split("\n")[0]}`);
  } finally {
    delete flags[DEFER_CONFIG_VALIDATION];
    await rm(tmp, { force: true });
  }
}

/** The validated config, or every problem as `path: message` (`endpoints[0].config.served_entities[0]…`). */
export function validateConfig(
  raw: unknown,
): { config: ClusterConfig; problems: [] } | { config: undefined; problems: string[] } {
  const parsed = ClusterConfig.safeParse(raw);
  if (parsed.success) return { config: parsed.data, problems: [] };
  return {
    config: undefined,
    problems: parsed.error.issues.map((i) => `${issuePath(i.path)}: ${i.message}`),
  };
}
