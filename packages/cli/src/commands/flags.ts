// Flag values every job command reads the same way: numbers checked here (naming the flag), lists split on commas.
import { parseReplication } from "@switchyard/nats";
import { invalid, parseDuration } from "@switchyard/protocol";
import { Option } from "commander";

/** pino's levels, quietest last. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * `--log-level` of every long-running role (`up`, `coordinator`, `node`, `bridge`). Default `info`: lifecycle
 * events and one line per HTTP request; `warn` keeps only failed requests and problems.
 */
export const logLevelOption = () =>
  new Option(
    "--log-level <level>",
    "what the JSON logs include: one line per request at info, failures at warn",
  )
    .choices(LOG_LEVELS)
    .default("info")
    .env("SWITCHYARD_LOG_LEVEL");

/** A positive integer flag; undefined when not given. */
export function positiveInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw invalid(`${flag}: expected a positive integer, got '${value}'`);
  return n;
}

/** `a, b,c` → `["a", "b", "c"]`. */
export function commaList(value: string): string[] {
  return value.split(",").map((c) => c.trim());
}

/** A duration flag (`30s`, `30m`, `2h`, `500ms` or milliseconds), in ms. */
export function durationFlag(value: string, flag: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw invalid(`${flag}: expected a duration such as 30s, 30m, 2h, 500ms or milliseconds, got '${value}'`);
  }
  return ms;
}

/**
 * `--replication <n>` of `up`, `coordinator`, `node` and `bridge`: how many NATS servers keep each stream, bucket
 * and object store the cluster creates. Checked as it is read, from the flag or the variable.
 */
export const replicationOption = () =>
  new Option(
    "--replication <n>",
    "NATS servers keeping each stream, KV bucket and object store the cluster creates, 1-5 (default 1)",
  )
    .env("SWITCHYARD_REPLICATION")
    .argParser((value) => parseReplication(value, "--replication (SWITCHYARD_REPLICATION)"));
