// Plans every declared section in apply order (models → aliases → endpoints → streams → schedules → tokens →
// NATS users), then runs the steps: creates and updates in that order, deletions (--prune) in reverse, so
// nothing is deleted while a declared object may still refer to it.
import type { ClusterConfig, DeclaredSchedule, StreamJobRequest } from "@switchyard/protocol";
import { planEndpoints } from "./endpoints.js";
import { planModels } from "./models.js";
import type { ApplyContext, Step } from "./plan.js";
import { planSchedules } from "./schedules.js";
import { planStreams } from "./streams.js";
import { planTokens } from "./tokens.js";
import { planUsers } from "./users.js";

type Raw = {
  endpoints?: Parameters<typeof planEndpoints>[1];
  streams?: StreamJobRequest[];
  schedules?: DeclaredSchedule[];
};

/** `raw` is the file as written (what the APIs are sent), `config` the same validated. */
export async function planAll(ctx: ApplyContext, raw: unknown, config: ClusterConfig): Promise<Step[]> {
  const r = raw as Raw;
  const steps: Step[] = [];
  if (config.models) steps.push(...(await planModels(ctx, config.models)));
  if (r.endpoints) steps.push(...(await planEndpoints(ctx, r.endpoints)));
  if (r.streams && config.streams) {
    const specs = config.streams;
    steps.push(
      ...(await planStreams(
        ctx,
        r.streams.map((body, i) => ({ body, spec: specs[i]! })),
      )),
    );
  }
  if (r.schedules) steps.push(...(await planSchedules(ctx, r.schedules)));
  if (config.tokens) steps.push(...(await planTokens(ctx, config.tokens)));
  // The apply command refuses a users section before planning when the cluster is not local.
  if (config.users && ctx.natsUsers) steps.push(...(await planUsers(ctx.natsUsers, config.users, ctx.prune)));
  const deletes = steps.filter((s) => s.action === "delete").reverse();
  return [...steps.filter((s) => s.action !== "delete"), ...deletes];
}

/** Runs the plan's steps in order; the first failure stops it, naming the object (earlier steps stay done). */
export async function execute(steps: Step[]): Promise<void> {
  for (const step of steps) {
    if (!step.run) continue;
    try {
      await step.run();
    } catch (err) {
      (err as Error).message = `${step.action} ${step.kind} '${step.name}' failed: ${(err as Error).message}`;
      throw err;
    }
  }
}
