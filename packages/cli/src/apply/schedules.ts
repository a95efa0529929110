// Batch schedules: cron, time zone and job (as written: the coordinator stores
// the job body as given) against the stored schedule. A changed schedule is replaced
// (deleted, then created): its next tick is counted from the new one, so no tick is fired twice.
import type { DeclaredSchedule } from "@switchyard/protocol";
import { diffValues, sameJson } from "./diff.js";
import type { ApplyContext, Step } from "./plan.js";

export async function planSchedules(ctx: ApplyContext, declared: DeclaredSchedule[]): Promise<Step[]> {
  const live = new Map((await ctx.batch.listSchedules()).map((s) => [s.name, s]));
  const steps: Step[] = [];
  for (const decl of declared) {
    const wanted = { cron: decl.cron, tz: decl.tz ?? "UTC", job: decl.job };
    const found = live.get(decl.name);
    const create = async () => void (await ctx.batch.createSchedule({ name: decl.name, ...wanted }));
    if (!found) {
      steps.push({ kind: "schedule", name: decl.name, action: "create", run: create });
      continue;
    }
    const current = { cron: found.cron, tz: found.tz, job: found.job };
    if (sameJson(current, wanted)) {
      steps.push({ kind: "schedule", name: decl.name, action: "unchanged" });
      continue;
    }
    steps.push({
      kind: "schedule",
      name: decl.name,
      action: "update",
      diff: diffValues(current, wanted),
      run: async () => {
        await ctx.batch.deleteSchedule(decl.name);
        await create();
      },
    });
  }
  if (ctx.prune) {
    const keep = new Set(declared.map((d) => d.name));
    for (const name of live.keys()) {
      if (!keep.has(name)) {
        steps.push({ kind: "schedule", name, action: "delete", run: () => ctx.batch.deleteSchedule(name) });
      }
    }
  }
  return steps;
}
