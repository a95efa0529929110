// `switchyard capture export`: an endpoint's inference table (its captured requests) written out as one Parquet
// or JSONL file, also usable as a batch input.
import path from "node:path";
import { exportCapture } from "@switchyard/jobs";
import { invalid, parseDurationMs } from "@switchyard/protocol";
import type { Command } from "commander";
import { type GlobalOptions, withConnection } from "./context.js";

/** `--since`: an ISO time, or a duration back from now (`30m`, `1h`, `7d`). */
export function sinceMs(value: string, now = Date.now()): number {
  const back = parseDurationMs(value);
  if (back !== undefined) return now - back;
  // Only ISO-8601 dates and times, not whatever else Date.parse accepts.
  const ms = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) {
    throw invalid(
      `--since: expected an ISO time (2026-12-01T09:00:00Z) or a duration like 30m, 1h or 7d, got '${value}'`,
    );
  }
  return ms;
}

export function captureCommand(program: Command, globals: () => GlobalOptions): void {
  const capture = program
    .command("capture")
    .description(
      "inference tables: the requests and replies captured for endpoints with auto_capture_config",
    );
  capture
    .command("export")
    .description("write an endpoint's captured requests to a Parquet or JSONL file")
    .argument("<endpoint>", "endpoint name")
    .requiredOption("--output <file>", "file.parquet or file.jsonl")
    .option("--since <time>", "only requests from then on: an ISO time, or a duration back from now (1h, 7d)")
    .action(async (endpoint: string, flags: { output: string; since?: string }) => {
      const since = flags.since === undefined ? undefined : sinceMs(flags.since);
      await withConnection(globals(), async (nc, target, out) => {
        const result = await exportCapture({
          nc,
          cluster: target.cluster,
          endpoint,
          output: path.resolve(flags.output),
          ...(since !== undefined ? { sinceMs: since } : {}),
        });
        out.print(
          `${result.rows} row${result.rows === 1 ? "" : "s"} of ${endpoint}'s inference table written to ` +
            `${result.output}` +
            (result.skipped ? ` (${result.skipped} messages that are not captures skipped)` : ""),
          result,
        );
      });
    });
}
