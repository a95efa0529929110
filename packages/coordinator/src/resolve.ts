// Endpoint configs against the model registry: every problem with the models, versions and aliases a config
// names (for validation), and the concrete version each served model serves now (aliases followed).
import {
  aliasOf,
  type ConfigProblem,
  type EndpointConfig,
  EndpointConfigInput,
  isModelName,
  normalizeEndpointConfig,
  type RegisteredModel,
  SwitchyardError,
} from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";

/** Reads registered models once per name within one validation or reconcile pass. */
export class ModelLookup {
  private readonly models = new Map<string, Promise<RegisteredModel | undefined>>();
  constructor(private readonly registry: Registry) {}

  model(name: string): Promise<RegisteredModel | undefined> {
    let p = this.models.get(name);
    if (!p) {
      p = this.registry.getModel(name).catch((err: unknown) => {
        if (err instanceof SwitchyardError && err.code === "RESOURCE_DOES_NOT_EXIST") return undefined;
        throw err;
      });
      this.models.set(name, p);
    }
    return p;
  }

  async versionExists(name: string, version: number): Promise<boolean> {
    try {
      await this.registry.getVersion(name, version);
      return true;
    } catch (err) {
      if (err instanceof SwitchyardError && err.code === "RESOURCE_DOES_NOT_EXIST") return false;
      throw err;
    }
  }

  /** "3" → 3 (if it exists), "@champion" → the version the alias points at; throws RESOURCE_DOES_NOT_EXIST. */
  async resolve(name: string, version: string): Promise<number> {
    const model = await this.model(name);
    if (!model) throw new SwitchyardError("RESOURCE_DOES_NOT_EXIST", `model '${name}' does not exist`);
    const alias = aliasOf(version);
    if (alias !== undefined) {
      const v = model.aliases[alias];
      if (v === undefined) {
        throw new SwitchyardError(
          "RESOURCE_DOES_NOT_EXIST",
          `alias '${alias}' of model '${name}' does not exist`,
        );
      }
      return v;
    }
    const n = Number(version);
    if (!(await this.versionExists(name, n))) {
      throw new SwitchyardError("RESOURCE_DOES_NOT_EXIST", `version ${n} of model '${name}' does not exist`);
    }
    return n;
  }
}

/** Served name → concrete version for every served model of a normalised config. */
export async function resolveVersions(
  lookup: ModelLookup,
  cfg: EndpointConfig,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of cfg.served_models) out[s.name] = await lookup.resolve(s.model_name, s.model_version);
  return out;
}

/**
 * Validates a Databricks config completely: the shape and traffic rules (normalizeEndpointConfig) and, for
 * every served model, that its model, version or alias exists in the registry. Lists every problem.
 */
export async function validateConfig(
  lookup: ModelLookup,
  input: unknown,
  prefix = "config",
): Promise<{ config: EndpointConfig; problems: [] } | { config: undefined; problems: ConfigProblem[] }> {
  const normalized = normalizeEndpointConfig(input, prefix);
  const parsed = EndpointConfigInput.safeParse(input);
  if (!parsed.success) return normalized;
  const problems: ConfigProblem[] = [...normalized.problems];
  const entries = [
    ...(parsed.data.served_entities ?? []).map((e, i) => ({
      field: `${prefix}.served_entities[${i}]`,
      nameField: "entity_name",
      versionField: "entity_version",
      model: e.entity_name,
      version: e.entity_version,
    })),
    ...(parsed.data.served_models ?? []).map((m, i) => ({
      field: `${prefix}.served_models[${i}]`,
      nameField: "model_name",
      versionField: "model_version",
      model: m.model_name,
      version: m.model_version,
    })),
  ];
  for (const e of entries) {
    if (!isModelName(e.model)) continue; // normalizeEndpointConfig already named it
    const model = await lookup.model(e.model);
    if (!model) {
      problems.push({ field: `${e.field}.${e.nameField}`, message: `model '${e.model}' does not exist` });
      continue;
    }
    const alias = aliasOf(e.version);
    if (alias !== undefined) {
      if (model.aliases[alias] === undefined) {
        const known = Object.keys(model.aliases);
        problems.push({
          field: `${e.field}.${e.versionField}`,
          message:
            `alias '${alias}' of model '${e.model}' does not exist` +
            (known.length ? ` (aliases: ${known.join(", ")})` : " (it has no aliases)"),
        });
      }
    } else if (/^[1-9]\d*$/.test(e.version) && !(await lookup.versionExists(e.model, Number(e.version)))) {
      problems.push({
        field: `${e.field}.${e.versionField}`,
        message: `version ${e.version} of model '${e.model}' does not exist (latest is ${model.latest_version})`,
      });
    }
  }
  if (problems.length) return { config: undefined, problems };
  return normalized;
}
