// `switchyard endpoints rollout start|status|pause|resume|abort <name>`: staged canaries over the management
// API. Start's flags override the endpoint's `rollout` section; status prints the stage, each guard against its
// limit and the history (--watch until the canary ends).
import { RolloutApi, type RolloutOverrides } from "@switchyard/client";
import { type CanaryView, clusterNames, invalid } from "@switchyard/protocol";
import type { Command } from "commander";
import { type Out, sleepUnlessStopped, table, when } from "../output.js";
import { type GlobalOptions, withConnection } from "./context.js";
import { commaList, durationFlag, positiveInteger } from "./flags.js";

/** How often `rollout status --watch` reads the status again. */
export const ROLLOUT_WATCH_MS = 2_000;

interface StartFlags {
  champion?: string;
  challenger?: string;
  stages?: string;
  hold?: string;
  minRequests?: string;
  promoteAlias?: boolean;
}

/** The start body from the flags (only those given: the rest comes from the endpoint's section). */
export function startOverrides(f: StartFlags): RolloutOverrides {
  const hold: { duration?: number; min_requests?: number } = {};
  if (f.hold !== undefined) hold.duration = durationFlag(f.hold, "--hold");
  const minRequests = positiveInteger(f.minRequests, "--min-requests");
  if (minRequests !== undefined) hold.min_requests = minRequests;
  return {
    ...(f.champion !== undefined ? { champion: f.champion } : {}),
    ...(f.challenger !== undefined ? { challenger: f.challenger } : {}),
    ...(f.stages !== undefined ? { stages: stagesFlag(f.stages) } : {}),
    ...(Object.keys(hold).length ? { hold } : {}),
    ...(f.promoteAlias ? { promote_alias: true } : {}),
  };
}

function stagesFlag(value: string): number[] {
  return commaList(value).map((p) => {
    const n = Number(p);
    if (p === "" || !Number.isInteger(n)) {
      throw invalid(`--stages: expected percentages separated by commas such as 5,20,50,100, got '${value}'`);
    }
    return n;
  });
}

const seconds = (ms: number) =>
  ms >= 60_000 ? `${(ms / 60_000).toFixed(1)}m` : `${(ms / 1000).toFixed(0)}s`;

/** People's view of a canary: where it is, each guard against its limit, what happened. */
export function canaryText(v: CanaryView): string {
  const stage = `stage ${v.stage + 1} of ${v.stages.length} (${v.stages.join(" → ")}%)`;
  const lines = [
    `canary of ${v.endpoint}: ${v.phase.replace("_", " ")} — ${v.challenger} at ${v.percent}% against ${v.champion}, ${stage}`,
  ];
  if (v.phase === "running" || v.phase === "paused") {
    lines.push(
      `  hold: ${seconds(v.hold.elapsed_ms)} of ${seconds(v.hold.duration_ms)}, ` +
        `${v.hold.requests} of ${v.hold.min_requests} challenger requests`,
    );
  }
  lines.push(`  ${v.message}`, "");
  lines.push(
    table(
      ["GUARD", "STATE", "VALUE", "LIMIT", "FROM"],
      v.guards.map((g) => [
        g.guard,
        g.state,
        g.value === null ? "-" : String(g.value),
        String(g.limit),
        g.note,
      ]),
    ),
  );
  lines.push(
    "",
    table(
      ["AT", "EVENT", "STAGE", "MESSAGE"],
      v.history.map((e) => [when(e.at), e.event, `${e.percent}%`, e.message]),
    ),
  );
  return lines.join("\n");
}

export function rolloutCommand(endpoints: Command, globals: () => GlobalOptions): void {
  const rollout = endpoints
    .command("rollout")
    .description(
      "staged canary: the challenger takes each stage's share of traffic while its guards hold, then is promoted; " +
        "a guard that fails rolls it back",
    );
  const withRollout = <T>(fn: (api: RolloutApi, out: Out) => Promise<T>) =>
    withConnection(globals(), (nc, target, out) => fn(new RolloutApi(nc, clusterNames(target.cluster)), out));

  rollout
    .command("start")
    .description(
      "start a canary (flags override the endpoint's rollout section; two served models need none)",
    )
    .argument("<name>", "endpoint name")
    .option("--champion <served>", "the served model serving now (default: the one with the most traffic)")
    .option("--challenger <served>", "the served model that may replace it")
    .option(
      "--stages <list>",
      "the challenger's percentage at each stage, ending at 100 (default 5,20,50,100)",
    )
    .option("--hold <duration>", "how long each stage holds at least (default 5m)")
    .option(
      "--min-requests <n>",
      "challenger requests a stage needs before anything is decided (default 100)",
    )
    .option(
      "--promote-alias",
      "on promotion move @champion to the challenger's version and remove @challenger",
    )
    .action(async (name: string, flags: StartFlags) => {
      const overrides = startOverrides(flags);
      await withRollout(async (api, out) => {
        const v = await api.start(name, overrides);
        out.print(canaryText(v), v);
      });
    });

  rollout
    .command("status")
    .argument("<name>", "endpoint name")
    .option("--watch", `refresh every ${ROLLOUT_WATCH_MS / 1000} s until the canary ends or Ctrl-C`)
    .action(async (name: string, opts: { watch?: boolean }) => {
      await withRollout(async (api, out) => {
        const stopped = { value: false };
        for (;;) {
          const v = await api.status(name);
          if (opts.watch && !out.json) process.stdout.write("\x1b[2J\x1b[H");
          // --watch --json: one document a line, so a script can read them as they come.
          if (opts.watch && out.json) process.stdout.write(`${JSON.stringify(v)}\n`);
          else out.print(canaryText(v), v);
          if (!opts.watch || (v.phase !== "running" && v.phase !== "paused")) return;
          await sleepUnlessStopped(ROLLOUT_WATCH_MS, stopped);
          if (stopped.value) return;
        }
      });
    });

  for (const [op, help] of [
    ["pause", "hold the canary at its stage (routes stay) until resumed"],
    ["resume", "resume a paused canary; its stage's hold starts again"],
    ["abort", "end the canary; the champion takes all traffic back"],
  ] as const) {
    rollout
      .command(op)
      .description(help)
      .argument("<name>", "endpoint name")
      .action(async (name: string) => {
        await withRollout(async (api, out) => {
          const v = await api[op](name);
          out.print(canaryText(v), v);
        });
      });
  }
}
