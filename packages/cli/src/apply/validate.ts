// Everything wrong with a config file, all at once, before anything is changed: the schemas' problems, then
// what only the file system and the registry can tell (missing model files, endpoints naming models or
// aliases that neither the file nor the registry has).
import { existsSync } from "node:fs";
import path from "node:path";
import {
  aliasOf,
  ClusterConfig,
  issuePath,
  normalizeEndpointConfig,
  SwitchyardError,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";

export async function configProblems(
  raw: unknown,
  baseDir: string,
  registry: Registry,
): Promise<{ config: ClusterConfig; problems: [] } | { config: undefined; problems: string[] }> {
  const parsed = ClusterConfig.safeParse(raw);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${issuePath(i.path)}: ${i.message}`);
  /** Sections and items the schemas already found wrong are not checked further (one problem, said once). */
  const flawed = new Set(parsed.success ? [] : parsed.error.issues.map((i) => i.path.slice(0, 2).join("/")));
  const file = (raw ?? {}) as { models?: unknown; endpoints?: unknown };
  const models = isRecord(file.models) ? file.models : {};
  for (const [name, model] of Object.entries(models)) {
    const versions = isRecord(model) && Array.isArray(model.versions) ? model.versions : [];
    versions.forEach((v: unknown, i) => {
      if (!isRecord(v) || typeof v.path !== "string" || !v.path) return;
      const abs = path.resolve(baseDir, v.path);
      if (!existsSync(abs)) {
        problems.push(
          `models[${JSON.stringify(name)}].versions[${i}].path: '${v.path}' does not exist (${abs})`,
        );
      }
    });
  }
  const endpoints = Array.isArray(file.endpoints) ? file.endpoints : [];
  for (const [i, e] of endpoints.entries()) {
    if (flawed.has(`endpoints/${i}`) || !isRecord(e)) continue;
    const prefix = `endpoints[${i}].config`;
    const normalized = normalizeEndpointConfig(e.config, prefix);
    if (!normalized.config) {
      problems.push(...normalized.problems.map((p) => `${p.field}: ${p.message}`));
      continue;
    }
    for (const [j, s] of normalized.config.served_models.entries()) {
      const problem = await missingModel(models, registry, s.model_name, aliasOf(s.model_version));
      if (problem) problems.push(`${prefix}.${s.form}[${j}]: ${problem}`);
    }
  }
  if (problems.length || !parsed.success) return { config: undefined, problems };
  return { config: parsed.data, problems: [] };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Why an endpoint cannot serve `model` (at `alias`), or undefined when the file or the registry has it. */
async function missingModel(
  models: Record<string, unknown>,
  registry: Registry,
  model: string,
  alias: string | undefined,
): Promise<string | undefined> {
  const declared = models[model];
  const aliases = isRecord(declared) && isRecord(declared.aliases) ? declared.aliases : {};
  if (declared !== undefined && (alias === undefined || alias in aliases)) return undefined;
  try {
    const live = await registry.getModel(model);
    if (alias === undefined || alias in live.aliases) return undefined;
    return `model '${model}' has no alias '${alias}' in this file or in the registry`;
  } catch (err) {
    if (!(err instanceof SwitchyardError && err.code === "RESOURCE_DOES_NOT_EXIST")) throw err;
    return `model '${model}' is neither declared in this file nor registered`;
  }
}
