// Everything wrong with a config file, all at once, before anything is changed: the schemas' problems, then
// what only the file system and the registry can tell (missing model files, endpoints naming models or
// aliases that neither the file nor the registry has).
import { existsSync } from "node:fs";
import path from "node:path";
import { aliasOf, type ClusterConfig, normalizeEndpointConfig, SwitchyardError } from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import { validateConfig } from "../config-file.js";

export async function configProblems(
  raw: unknown,
  baseDir: string,
  registry: Registry,
): Promise<{ config: ClusterConfig; problems: [] } | { config: undefined; problems: string[] }> {
  const parsed = validateConfig(raw);
  if (!parsed.config) return parsed;
  const config = parsed.config;
  const problems: string[] = [];
  for (const [name, model] of Object.entries(config.models ?? {})) {
    model.versions.forEach((v, i) => {
      const abs = path.resolve(baseDir, v.path);
      if (!existsSync(abs)) {
        problems.push(
          `models[${JSON.stringify(name)}].versions[${i}].path: '${v.path}' does not exist (${abs})`,
        );
      }
    });
  }
  const rawEndpoints = (raw as { endpoints?: { config: unknown }[] }).endpoints ?? [];
  for (const [i, e] of rawEndpoints.entries()) {
    const prefix = `endpoints[${i}].config`;
    const normalized = normalizeEndpointConfig(e.config, prefix);
    if (!normalized.config) {
      problems.push(...normalized.problems.map((p) => `${p.field}: ${p.message}`));
      continue;
    }
    for (const [j, s] of normalized.config.served_models.entries()) {
      const field = `${prefix}.${s.form}[${j}]`;
      const problem = await missingModel(config, registry, s.model_name, aliasOf(s.model_version));
      if (problem) problems.push(`${field}: ${problem}`);
    }
  }
  return problems.length ? { config: undefined, problems } : { config, problems: [] };
}

/** Why an endpoint cannot serve `model` (at `alias`), or undefined when the file or the registry has it. */
async function missingModel(
  config: ClusterConfig,
  registry: Registry,
  model: string,
  alias: string | undefined,
): Promise<string | undefined> {
  const declared = config.models?.[model];
  if (declared && (alias === undefined || alias in declared.aliases)) return undefined;
  try {
    const live = await registry.getModel(model);
    if (alias === undefined || alias in live.aliases) return undefined;
    return `model '${model}' has no alias '${alias}' in this file or in the registry`;
  } catch (err) {
    if (!(err instanceof SwitchyardError && err.code === "RESOURCE_DOES_NOT_EXIST")) throw err;
    return `model '${model}' is neither declared in this file nor registered`;
  }
}
