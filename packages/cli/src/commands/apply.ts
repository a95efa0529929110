// `switchyard apply`: makes the cluster what cluster.config.ts declares (models, aliases, endpoints, stream
// jobs, batch schedules, tokens' scopes, NATS users). Prints the plan, then applies it unless --dry-run. A file with any problem changes
// nothing and names every problem.
import path from "node:path";
import { TokenStore } from "@switchyard/bridge";
import { BatchApi, EndpointsApi, StreamsApi } from "@switchyard/client";
import { SwitchyardError } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import type { Command } from "commander";
import { execute, planAll } from "../apply/execute.js";
import { entryOf, type Step } from "../apply/plan.js";
import { configProblems } from "../apply/validate.js";
import { findConfigFile, importConfigFile } from "../config-file.js";
import { type GlobalOptions, withConnection } from "./context.js";
import { type ManagedCluster, managedCluster } from "./users.js";

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

/** The secrets created tokens and users have, shown once (the --json plan carries them on their entries). */
function secrets(steps: Step[]): string[] {
  const lines: string[] = [];
  for (const s of steps) {
    if (s.token !== undefined) lines.push(`token ${s.name}: ${s.token}`);
    if (s.password !== undefined)
      lines.push(`NATS user ${s.name}: password ${s.password} (inbox prefix _INBOX_${s.name})`);
  }
  return lines.length ? [...lines, "(shown once — keep them somewhere safe)"] : [];
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
      "make the cluster what the config file declares: models, aliases, endpoints, stream jobs, batch schedules, tokens, NATS users",
    )
    .option("--file <file>", "the config file (default: ./cluster.config.ts, .mjs or .js)")
    .option("--dry-run", "print the plan and change nothing")
    .option(
      "--prune",
      "also delete endpoints, stream jobs and schedules the file does not declare, and revoke/delete tokens and NATS users apply created (in its sections only; models are never deleted)",
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
        const problems: string[] = [...checked.problems];
        // NATS users live in the data dir of the cluster `switchyard up` runs: without one, nothing is changed.
        let natsUsers: ManagedCluster | undefined;
        if ((raw as { users?: unknown } | undefined)?.users !== undefined) {
          try {
            natsUsers = await managedCluster(globals());
          } catch (err) {
            problems.push(`users: ${(err as Error).message}`);
          }
        }
        if (!checked.config || problems.length) {
          const n = problems.length;
          throw new SwitchyardError(
            "INVALID_PARAMETER_VALUE",
            `${file} has ${n} problem${n === 1 ? "" : "s"}; nothing was changed:\n${problems.map((p) => `  ${p}`).join("\n")}`,
          );
        }
        const names = registry.names;
        const tokens = await TokenStore.open(nc, { cluster: target.cluster, follow: false });
        try {
          const steps = await planAll(
            {
              nc,
              names,
              registry,
              endpoints: new EndpointsApi(nc, names),
              streams: new StreamsApi(nc, names),
              batch: new BatchApi(nc, names),
              tokens,
              ...(natsUsers ? { natsUsers } : {}),
              baseDir,
              prune: opts.prune ?? false,
            },
            raw,
            checked.config,
          );
          if (!out.json) process.stdout.write(`${describe(steps)}\n`);
          if (!opts.dryRun) await execute(steps);
          const shown = out.json ? [] : secrets(steps);
          out.print([...shown, summary(steps, opts.dryRun ?? false)].join("\n"), {
            plan: steps.map(entryOf),
          });
        } finally {
          tokens.close();
        }
      });
    });
}
