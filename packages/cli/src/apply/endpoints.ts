// Endpoints: the declared Databricks body against the endpoint's record. Configs are compared normalised (the
// form the coordinator stores), so `served_entities` written with defaults spelled out or left out is the same
// config; a config being rolled out counts as the live one.
import type { KV } from "@nats-io/kv";
import { openBucket, readValue } from "@switchyard/nats";
import {
  type CreateEndpointRequest,
  EndpointRecord,
  keys,
  normalizeEndpointConfig,
} from "@switchyard/protocol";
import { diffValues, sameJson } from "./diff.js";
import type { ApplyContext, Step } from "./plan.js";

type Declared = CreateEndpointRequest & { config: Record<string, unknown> };

export async function planEndpoints(ctx: ApplyContext, declared: Declared[]): Promise<Step[]> {
  const kv: KV = await openBucket(ctx.nc, ctx.names, "endpoints");
  const steps: Step[] = [];
  for (const decl of declared) {
    const found = await readValue(kv, keys.endpoint(decl.name), EndpointRecord, `endpoint '${decl.name}'`);
    const record = found && !found.value.deleted ? found.value : undefined;
    if (!record) {
      steps.push({
        kind: "endpoint",
        name: decl.name,
        action: "create",
        run: async () => void (await ctx.endpoints.create(decl as Record<string, unknown>)),
      });
      continue;
    }
    // Validated before planning, so normalising cannot fail here.
    const wanted = normalizeEndpointConfig(decl.config).config!;
    const current = record.pending_config ?? record.config;
    if (sameJson(current, wanted)) {
      steps.push({ kind: "endpoint", name: decl.name, action: "unchanged" });
      continue;
    }
    steps.push({
      kind: "endpoint",
      name: decl.name,
      action: "update",
      diff: diffValues(current ?? {}, wanted),
      run: async () => void (await ctx.endpoints.update(decl.name, decl.config)),
    });
  }
  if (ctx.prune) {
    const keep = new Set(declared.map((d) => d.name));
    for (const e of await ctx.endpoints.list()) {
      const name = String(e.name);
      if (keep.has(name)) continue;
      steps.push({
        kind: "endpoint",
        name,
        action: "delete",
        run: () => ctx.endpoints.delete(name),
      });
    }
  }
  return steps;
}
