// Stream jobs: the declared request against the job's stored request (both parsed, defaults filled). There is
// no update of a running job, so a changed job is replaced: deleted, then created from the file (its consumer
// starts again from `start`).
import path from "node:path";
import type { StreamJobRequest, StreamJobSpec, StreamJobView } from "@switchyard/protocol";
import { diffValues, sameJson } from "./diff.js";
import type { ApplyContext, Step } from "./plan.js";

/**
 * The stored request as the file would write it: the coordinator stores directories resolved under its data
 * roots, so a declared directory that the stored one ends with is the same directory.
 */
function asDeclared(stored: Record<string, unknown>, decl: StreamJobSpec): Record<string, unknown> {
  const out = { ...stored };
  for (const field of ["source_dir", "sink_dir"] as const) {
    const mine = decl[field];
    const theirs = stored[field];
    if (typeof mine !== "string" || typeof theirs !== "string") continue;
    const tail = path
      .normalize(mine)
      .replace(/^(\.\/)+/, "")
      .replace(/\/$/, "");
    if (theirs === mine || theirs.endsWith(`${path.sep}${tail}`)) out[field] = mine;
  }
  return out;
}

/** A declared job as written (sent to the API, which parses it itself) and as parsed (compared). */
export interface DeclaredStream {
  body: StreamJobRequest;
  spec: StreamJobSpec;
}

export async function planStreams(ctx: ApplyContext, declared: DeclaredStream[]): Promise<Step[]> {
  const live = new Map<string, StreamJobView>((await ctx.streams.list()).map((j) => [j.name, j]));
  const steps: Step[] = [];
  for (const { body, spec: decl } of declared) {
    const job = live.get(decl.name);
    const create = async () => void (await ctx.streams.create(body));
    if (!job) {
      steps.push({ kind: "stream", name: decl.name, action: "create", run: create });
      continue;
    }
    const current = asDeclared(job.request, decl);
    if (sameJson(current, decl)) {
      steps.push({ kind: "stream", name: decl.name, action: "unchanged" });
      continue;
    }
    steps.push({
      kind: "stream",
      name: decl.name,
      action: "update",
      diff: diffValues(current, decl),
      run: async () => {
        await ctx.streams.delete(decl.name);
        await create();
      },
    });
  }
  if (ctx.prune) {
    const keep = new Set(declared.map((d) => d.spec.name));
    for (const name of live.keys()) {
      if (!keep.has(name)) {
        steps.push({ kind: "stream", name, action: "delete", run: () => ctx.streams.delete(name) });
      }
    }
  }
  return steps;
}
