// `switchyard endpoints …` and `switchyard invoke`: Databricks-shaped serving endpoints over the management
// API, and one-off invocations with MLflow bodies.
import type { EndpointView, SwitchyardClient } from "@switchyard/client";
import {
  type EndpointMetrics,
  METRICS_WINDOWS,
  type MetricsWindow,
  SwitchyardError,
} from "@switchyard/protocol";
import type { Command } from "commander";
import {
  createBody,
  parseConfigOption,
  parseJsonObject,
  readJsonFile,
  updateConfig,
  updateName,
} from "../endpoint-config.js";
import { sleepUnlessStopped, table, when } from "../output.js";
import { accuracyTable } from "./accuracy.js";
import { type GlobalOptions, withClient } from "./context.js";
import { rolloutCommand } from "./rollout.js";
import { shadowLines } from "./shadow-metrics.js";

type State = { ready?: string; config_update?: string; message?: string };
const stateOf = (e: EndpointView) => (e.state ?? {}) as State;

/** Polls until the update settles: READY + NOT_UPDATING, or the failure with its reason. */
async function waitSettled(client: SwitchyardClient, name: string, timeoutMs: number): Promise<EndpointView> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const e = await client.endpoints.get(name);
    const s = stateOf(e);
    if (s.config_update === "UPDATE_FAILED") {
      throw new SwitchyardError(
        "INVALID_PARAMETER_VALUE",
        `endpoint '${name}' update failed: ${s.message || "no reason given"}`,
      );
    }
    if (s.ready === "READY" && s.config_update === "NOT_UPDATING") return e;
    if (Date.now() > end) {
      throw new SwitchyardError(
        "DEADLINE_EXCEEDED",
        `endpoint '${name}' not READY after ${timeoutMs / 1000} s (state ${JSON.stringify(s)})`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function summary(e: EndpointView): string {
  const s = stateOf(e);
  const config = (e.config ?? {}) as { served_entities?: unknown[]; served_models?: unknown[] };
  const served = (config.served_entities ?? config.served_models ?? []) as Record<string, unknown>[];
  const lines = [
    `${e.name}: ${s.ready ?? "?"} (${s.config_update ?? "?"})${s.message ? ` — ${s.message}` : ""}`,
  ];
  const routes = ((e.config as { traffic_config?: { routes?: Record<string, unknown>[] } })?.traffic_config
    ?.routes ?? []) as {
    served_model_name: string;
    traffic_percentage: number;
  }[];
  for (const m of served) {
    const model = m.entity_name ?? m.model_name;
    const version = m.entity_version ?? m.model_version;
    const pct = routes.find((r) => r.served_model_name === m.name)?.traffic_percentage ?? 0;
    const state = (m.state ?? {}) as { deployment?: string; deployment_state_message?: string };
    const replicas = m.replicas as { ready: number; desired: number } | undefined;
    lines.push(
      `  ${m.name}: models:/${model}/${version}  ${pct}%  ${state.deployment ?? ""}` +
        (replicas ? `  replicas ${replicas.ready}/${replicas.desired} ready` : ""),
    );
    if (replicas?.desired === 0 && state.deployment_state_message) {
      lines.push(`    ${state.deployment_state_message}`);
    }
    const scale = m.autoscaler as { reason: string; limited_by: string | null; at: number } | undefined;
    if (scale) {
      const limit = scale.limited_by ? ` [limited by ${scale.limited_by}]` : "";
      lines.push(`    autoscaler (${when(scale.at)}): ${scale.reason}${limit}`);
    }
  }
  return lines.join("\n");
}

/** How often `endpoints metrics --watch` reads the summary again. */
export const METRICS_WATCH_MS = 2_000;

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function windowRow(window: string, name: string, w: MetricsWindow, replicas: string): string[] {
  const errors = Object.entries(w.errors)
    .map(([code, n]) => `${code}:${n}`)
    .join(" ");
  return [
    window,
    name,
    String(w.requests),
    w.rps.toFixed(2),
    errors || "0",
    ms(w.latency_ms.p50),
    ms(w.latency_ms.p95),
    ms(w.latency_ms.p99),
    replicas,
  ];
}

/** One table: each served model, then the whole endpoint, for each window. */
export function metricsTable(m: EndpointMetrics): string {
  const rows: string[][] = [];
  for (const window of Object.keys(METRICS_WINDOWS) as (keyof typeof METRICS_WINDOWS)[]) {
    for (const s of m.served_models) {
      rows.push(windowRow(window, s.name, s.windows[window], String(s.replicas.ready)));
    }
    const all = m.served_models.reduce((n, s) => n + s.replicas.ready, 0);
    rows.push(windowRow(window, "(endpoint)", m.windows[window], String(all)));
  }
  const served = m.served_models
    .map((s) => `${s.name}: models:/${s.model_name}/${s.model_version}`)
    .join(", ");
  return [
    `${m.name}${served ? ` — ${served}` : ""}`,
    table(
      ["WINDOW", "SERVED MODEL", "REQUESTS", "RPS", "ERRORS", "P50 MS", "P95 MS", "P99 MS", "REPLICAS"],
      rows,
    ),
    ...shadowLines(m, ms),
    ...(m.accuracy ? [accuracyTable(m.accuracy)] : []),
  ].join("\n");
}

export function endpointsCommand(program: Command, globals: () => GlobalOptions): void {
  const endpoints = program
    .command("endpoints")
    // The Databricks CLI's name, so its commands work with `switchyard` in place of `databricks`.
    .alias("model-serving-endpoints")
    .description("serving endpoints (Databricks-compatible configs)");
  const configHelp =
    "inline JSON ({…}), @file or a file path: the config ({served_entities|served_models, traffic_config}) " +
    "or a whole create body";
  const waitOption = (c: Command) =>
    c
      .option("--wait", "return when the endpoint is READY, or fail with the reason")
      .option("--timeout <seconds>", "how long --wait waits", "300");

  waitOption(
    endpoints
      .command("create")
      .description("create an endpoint from a Databricks config, named by --name or by the create body")
      .option("--name <name>", 'endpoint name (else the create body\'s "name")')
      .requiredOption("--config <json|@file|file>", configHelp),
  ).action(async (opts: { name?: string; config: string; wait?: boolean; timeout: string }) => {
    const body = createBody(await parseConfigOption(opts.config), opts.name);
    await withClient(globals(), async (client, out) => {
      let e = await client.endpoints.create(body);
      if (opts.wait) e = await waitSettled(client, String(body.name), Number(opts.timeout) * 1000);
      out.print(summary(e), e);
    });
  });

  waitOption(
    endpoints
      .command("update")
      .description("replace an endpoint's config (the Databricks PUT …/config body)")
      .argument("[name]", "endpoint name (or --name)")
      .option("--name <name>", "endpoint name (or the argument)")
      .requiredOption("--config <json|@file|file>", configHelp),
  ).action(
    async (
      argument: string | undefined,
      opts: { name?: string; config: string; wait?: boolean; timeout: string },
    ) => {
      const name = updateName(argument, opts.name);
      const nameSource = argument !== undefined ? "argument" : "--name";
      const config = updateConfig(await parseConfigOption(opts.config), name, "--config", nameSource);
      await withClient(globals(), async (client, out) => {
        let e = await client.endpoints.update(name, config);
        if (opts.wait) e = await waitSettled(client, name, Number(opts.timeout) * 1000);
        out.print(summary(e), e);
      });
    },
  );

  endpoints
    .command("get")
    .argument("<name>", "endpoint name")
    .action(async (name: string) => {
      await withClient(globals(), async (client, out) => {
        const e = await client.endpoints.get(name);
        out.print(summary(e), e);
      });
    });

  endpoints
    .command("metrics")
    .description(
      "requests, rps, errors and p50/p95/p99 latency per served model over the last 1 and 5 minutes " +
        "(kept by the bridge: one must be running)",
    )
    .argument("<name>", "endpoint name")
    .option("--watch", `refresh every ${METRICS_WATCH_MS / 1000} s until Ctrl-C`)
    .action(async (name: string, opts: { watch?: boolean }) => {
      await withClient(globals(), async (client, out) => {
        const stopped = { value: false };
        for (;;) {
          const m = await client.metrics(name);
          if (opts.watch && !out.json) process.stdout.write("\x1b[2J\x1b[H");
          // --watch --json: one document a line, so a script can read them as they come.
          if (opts.watch && out.json) process.stdout.write(`${JSON.stringify(m)}\n`);
          else out.print(metricsTable(m), m);
          if (!opts.watch) return;
          await sleepUnlessStopped(METRICS_WATCH_MS, stopped);
          if (stopped.value) return;
        }
      });
    });

  endpoints
    .command("rate-limits")
    .description(
      "set the endpoint's rate limit (Databricks' PUT …/rate-limits): calls per minute, for the whole " +
        "endpoint or per user (token over HTTP, inbox prefix over NATS); --clear removes it",
    )
    .argument("<name>", "endpoint name")
    .option("--calls <n>", "calls allowed per minute")
    .option("--key <key>", "'endpoint' (one count for everyone) or 'user' (one count per caller)", "endpoint")
    .option("--clear", "remove the endpoint's rate limits")
    .action(async (name: string, opts: { calls?: string; key: string; clear?: boolean }) => {
      if (opts.clear === (opts.calls !== undefined)) {
        throw new SwitchyardError("INVALID_PARAMETER_VALUE", "give --calls <n> or --clear (one of them)");
      }
      // The API validates the limit and names the bad field; a number-looking --calls goes as a number.
      const calls = opts.calls !== undefined && opts.calls.trim() !== "" ? Number(opts.calls) : opts.calls;
      const limits = opts.clear
        ? []
        : [{ calls: Number.isNaN(calls) ? opts.calls : calls, key: opts.key, renewal_period: "minute" }];
      await withClient(globals(), async (client, out) => {
        const set = await client.endpoints.putRateLimits(name, limits);
        const lines = set.rate_limits.map((l) => {
          const r = l as { calls: number; key: string; renewal_period: string };
          return `${r.calls} calls per ${r.renewal_period}${r.key === "user" ? " per user" : ""}`;
        });
        out.print(
          lines.length ? `rate limits of ${name}: ${lines.join(", ")}` : `${name} has no rate limits`,
          set,
        );
      });
    });

  rolloutCommand(endpoints, globals);

  endpoints.command("list").action(async () => {
    await withClient(globals(), async (client, out) => {
      const all = await client.endpoints.list();
      const rows = all.map((e) => [String(e.name), stateOf(e).ready ?? "?", stateOf(e).config_update ?? "?"]);
      out.print(all.length ? table(["NAME", "STATE", "CONFIG UPDATE"], rows) : "no endpoints", {
        endpoints: all,
      });
    });
  });

  endpoints
    .command("delete")
    .argument("<name>", "endpoint name")
    .action(async (name: string) => {
      await withClient(globals(), async (client, out) => {
        await client.endpoints.delete(name);
        out.print(`deleted endpoint ${name}`, {});
      });
    });

  program
    .command("invoke")
    .description(
      "score with an endpoint: an MLflow body (dataframe_split, dataframe_records, instances, inputs)",
    )
    .argument("<endpoint>", "endpoint name")
    .option("--data <json>", "the request body")
    .option("--file <path>", "a file holding the request body")
    .option("--served-model <name>", "query one served model, bypassing the traffic split")
    .option("--timeout-ms <ms>", "request deadline", "30000")
    .action(
      async (
        endpoint: string,
        opts: { data?: string; file?: string; servedModel?: string; timeoutMs: string },
      ) => {
        if ((opts.data === undefined) === (opts.file === undefined)) {
          throw new SwitchyardError(
            "INVALID_PARAMETER_VALUE",
            "give the request body with exactly one of --data or --file",
          );
        }
        const body =
          opts.data !== undefined
            ? parseJsonObject(opts.data, "--data")
            : await readJsonFile(opts.file!, "--file");
        await withClient(globals(), async (client) => {
          const reply = await client.invoke(endpoint, body, {
            timeoutMs: Number(opts.timeoutMs),
            ...(opts.servedModel ? { servedModel: opts.servedModel } : {}),
          });
          process.stdout.write(`${JSON.stringify(reply)}\n`);
        });
      },
    );
}
