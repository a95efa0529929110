// `switchyard apply`: makes the cluster what cluster.config.ts declares (models, aliases, endpoints, stream
// jobs, batch schedules). Prints the plan, then applies it unless --dry-run. A file with any problem changes
// nothing and names every problem.
import path from "node:path";
import { BatchApi, EndpointsApi, StreamsApi } from "@switchyard/client";
import { SwitchyardError } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import type { Command } from "commander";
import { execute, planAll } from "../apply/execute.js";
import { entryOf, type Step } from "../apply/plan.js";
import { configProblems } from "../apply/validate.js";
import { findConfigFile, importConfigFile } from "../config-file.js";
import { type GlobalOptions, withConnection } from "./context.js";

const MARK = { create: "+", update: "~", unchanged: "=", delete: "-" } as const;

function describe(steps: Step[]): string {
  if (steps.length === 0) return "The file declares nothing to apply.";
  const lines: string[] = [];
  for (const s of steps) {
    lines.push(`${MARK[s.action]} ${s.action.padEnd(9)} ${s.kind.padEnd(13)} ${s.name}`);
    for (const d of s.diff ?? []) lines.push(`      ${d}`);
  }
  return lines.join("\n");
}

function summary(steps: Step[], dryRun: boolean): string {
  const n = (a: Step["action"]) => steps.filter((s) => s.action === a).length;
  const [c, u, d, same] = [n("create"), n("update"), n("delete"), n("unchanged")];
  return dryRun
    ? `Dry run: ${c} to create, ${u} to update, ${d} to delete, ${same} unchanged; nothing was changed.`
    : `Applied: ${c} created, ${u} updated, ${d} deleted, ${same} unchanged.`;
}

export function applyCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command("apply")
    .description(
      "make the cluster what the config file declares: models, aliases, endpoints, stream jobs, batch schedules",
    )
    .option("--file <file>", "the config file (default: ./cluster.config.ts, .mjs or .js)")
    .option("--dry-run", "print the plan and change nothing")
    .option(
      "--prune",
      "also delete endpoints, stream jobs and schedules the file does not declare (in its sections only; models are never deleted)",
    )
    .action(async (opts: { file?: string; dryRun?: boolean; prune?: boolean }) => {
      const file = opts.file ?? findConfigFile();
      if (!file) {
        throw new SwitchyardError(
          "INVALID_PARAMETER_VALUE",
          "--file: no cluster.config.ts (or .mjs, .js) in this directory; give one with --file",
        );
      }
      const raw = await importConfigFile(file);
      const baseDir = path.dirname(path.resolve(file));
      await withConnection(globals(), async (nc, target, out) => {
        const registry = await Registry.open(nc, { cluster: target.cluster });
        const checked = await configProblems(raw, baseDir, registry);
        if (!checked.config) {
          const n = checked.problems.length;
          throw new SwitchyardError(
            "INVALID_PARAMETER_VALUE",
            `${file} has ${n} problem${n === 1 ? "" : "s"}; nothing was changed:\n${checked.problems.map((p) => `  ${p}`).join("\n")}`,
          );
        }
        const names = registry.names;
        const steps = await planAll(
          {
            nc,
            names,
            registry,
            endpoints: new EndpointsApi(nc, names),
            streams: new StreamsApi(nc, names),
            batch: new BatchApi(nc, names),
            baseDir,
            prune: opts.prune ?? false,
          },
          raw,
          checked.config,
        );
        if (!out.json) process.stdout.write(`${describe(steps)}\n`);
        if (!opts.dryRun) await execute(steps);
        out.print(summary(steps, opts.dryRun ?? false), { plan: steps.map(entryOf) });
      });
    });
}
