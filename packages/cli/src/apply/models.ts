// Models: each declared version is found in the registry by its artifact's digest, or registered; each alias
// is pointed at the version its path is. Versions are never deleted and models never pruned: a version may
// still serve an endpoint or a job the file does not know of, and its number is history.
import path from "node:path";
import { artifactDigest, registerModel } from "@switchyard/ingest";
import {
  type DeclaredModel,
  type ModelVersion,
  type RegisteredModel,
  SwitchyardError,
} from "@switchyard/protocol";
import type { ApplyContext, Step } from "./plan.js";

/** The registered model and its versions, or nothing when the name is new. */
async function live(
  ctx: ApplyContext,
  name: string,
): Promise<{ model: RegisteredModel; versions: ModelVersion[] } | undefined> {
  try {
    return { model: await ctx.registry.getModel(name), versions: await ctx.registry.listVersions(name) };
  } catch (err) {
    if (err instanceof SwitchyardError && err.code === "RESOURCE_DOES_NOT_EXIST") return undefined;
    throw err;
  }
}

export async function planModels(ctx: ApplyContext, models: Record<string, DeclaredModel>): Promise<Step[]> {
  const steps: Step[] = [];
  for (const [name, decl] of Object.entries(models)) {
    const current = await live(ctx, name);
    /** Version number by declared path; filled by a create step when it has run. */
    const versionOf = new Map<string, number>();
    /** A digest registered earlier in this plan: a second path with the same content reuses its version. */
    const planned = new Map<string, string>();
    for (const v of decl.versions) {
      const abs = path.resolve(ctx.baseDir, v.path);
      const digest = await artifactDigest(abs);
      const existing = current?.versions.find((x) => x.source_digest === digest && x.flavor === v.flavor);
      const entryName = `${name}:${v.path}`;
      if (existing) {
        versionOf.set(v.path, existing.version);
        steps.push({ kind: "model_version", name: entryName, action: "unchanged" });
        continue;
      }
      const twin = planned.get(digest);
      if (twin !== undefined) {
        steps.push({
          kind: "model_version",
          name: entryName,
          action: "unchanged",
          run: async () => void versionOf.set(v.path, versionOf.get(twin)!),
        });
        continue;
      }
      planned.set(digest, v.path);
      steps.push({
        kind: "model_version",
        name: entryName,
        action: "create",
        run: async () => {
          const created = await registerModel(ctx.registry, name, abs, {
            flavor: v.flavor,
            ...(v.entry !== undefined ? { entry: v.entry } : {}),
            ...(v.description !== undefined ? { description: v.description } : {}),
          });
          versionOf.set(v.path, created.version);
        },
      });
    }
    for (const [alias, target] of Object.entries(decl.aliases)) {
      const now = current?.model.aliases[alias];
      const wanted = versionOf.get(target);
      const entryName = `${name}@${alias}`;
      if (now !== undefined && now === wanted) {
        steps.push({ kind: "alias", name: entryName, action: "unchanged" });
        continue;
      }
      const shown = wanted !== undefined ? String(wanted) : `(the new version of ${target})`;
      steps.push({
        kind: "alias",
        name: entryName,
        action: now === undefined ? "create" : "update",
        diff: [`version: ${now ?? "(unset)"} → ${shown}`],
        run: async () => void (await ctx.registry.setAlias(name, alias, versionOf.get(target)!)),
      });
    }
  }
  return steps;
}
