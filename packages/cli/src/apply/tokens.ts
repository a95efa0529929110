// Tokens: matched by name. A usable token with the declared name keeps its secret: changed scopes are written
// into its record in place, so what the team already distributed keeps working. A missing one is created and
// its secret shown once. --prune revokes only tokens apply created, never the admin token or hand-made ones.
import type { TokenRecord } from "@switchyard/bridge";
import { type DeclaredToken, parseDurationMs, parseScopes } from "@switchyard/protocol";
import { diffValues } from "./diff.js";
import type { ApplyContext, Step } from "./plan.js";

const usable = (t: TokenRecord, now: number) => t.expires_at === undefined || t.expires_at > now;

export async function planTokens(ctx: ApplyContext, declared: DeclaredToken[]): Promise<Step[]> {
  const now = Date.now();
  const live = ctx.tokens.list().filter((t) => usable(t, now));
  const steps: Step[] = [];
  for (const decl of declared) {
    const wanted = parseScopes(decl.scopes);
    // Among several with the name, the one apply made, then the newest.
    const found = live
      .filter((t) => t.name === decl.name)
      .sort(
        (a, b) =>
          Number(b.managed === "apply") - Number(a.managed === "apply") || b.created_at - a.created_at,
      )[0];
    if (!found) {
      const step: Step = { kind: "token", name: decl.name, action: "create" };
      step.run = async () => {
        const created = await ctx.tokens.createToken({
          name: decl.name,
          scopes: wanted,
          ...(decl.ttl !== undefined ? { ttlMs: parseDurationMs(decl.ttl) } : {}),
          managed: "apply",
        });
        step.token = created.token;
      };
      steps.push(step);
      continue;
    }
    const same = [...found.scopes].sort().join(",") === [...wanted].sort().join(",");
    if (same) {
      steps.push({ kind: "token", name: decl.name, action: "unchanged" });
      continue;
    }
    steps.push({
      kind: "token",
      name: decl.name,
      action: "update",
      diff: diffValues({ scopes: found.scopes }, { scopes: wanted }),
      run: async () => void (await ctx.tokens.setScopes(found.id, wanted)),
    });
  }
  if (ctx.prune) {
    const keep = new Set(declared.map((d) => d.name));
    for (const t of live) {
      if (t.managed !== "apply" || (t.name !== undefined && keep.has(t.name))) continue;
      steps.push({
        kind: "token",
        name: t.name ?? t.id,
        action: "delete",
        run: () => ctx.tokens.revoke(t.id),
      });
    }
  }
  return steps;
}
