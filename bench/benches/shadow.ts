// Shadow traffic (README "Shadow traffic"): what mirroring costs the primary. One `switchyard up` cluster with
// auth on and one endpoint serving two served models: the realtime bench's logistic regression (the primary, 100 %
// of the traffic) and a second LR whose weights differ on three features (the challenger, 0 %). The same HTTP load
// through the bridge runs with no shadow_config (the baseline), then mirroring 100 % and 10 % to the challenger;
// an endpoint update switches between them, and each measurement waits until GET shows the new config applied.
// The primary's figures come from the load generator (its own process); mirrors, drops, shadow errors and
// agreement from the endpoint's Prometheus totals before and after each measured run.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROUTER_STATS_INTERVAL_MS } from "@switchyard/client";
import { buildLinear, type LinearOptions, linearPredict, prng } from "@switchyard/testkit";
import { cpuSecondsBetween, machineBusySeconds, treeCpuTicks } from "../lib/cpu.js";
import {
  authHeaders,
  type EndpointState,
  invocationUrl,
  redact,
  registerModel,
  type SwitchyardCluster,
  sendEndpoint,
  startSwitchyard,
  waitEndpoint,
} from "../lib/switchyard.js";
import type { LoadResult } from "../load/common.js";
import { ensureWrk, runWrk, wrkVersion } from "../load/wrk.js";
import { type Bench, type Cell, fmt } from "../types.js";
import { checkPredictions, LR, TOLERANCE } from "./realtime.js";

const POOL_ROWS = 1000;
const VERIFY_ROWS = 3;
const CONNECTIONS = 32;
const ENDPOINT = "bench-shadow";
const PRIMARY = "champion";
const SHADOW = "challenger";
/** The challenger's weights differ on these features: a row with all of them 0 gets the primary's prediction. */
const CHANGED = [27, 28, 29];
/** Every AGREE_EVERY-th pool row has the CHANGED features at 0, so about 1 / AGREE_EVERY of the rows agree. */
const AGREE_EVERY = 4;
/** How long the totals may take to settle after a run: generous, they settle within a few router reports. */
const SETTLE_TIMEOUT_MS = 30_000;
/** Above this much CPU of unrelated processes during a run (in cores), the row is flagged as disturbed. */
const NOISY_CORES = 0.15;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const CHALLENGER: LinearOptions = {
  ...LR,
  weights: Array.from(LR.weights!, (w, i) => (CHANGED.includes(i) ? 0.3 - w : w)),
};

interface Mirror {
  label: string;
  /** undefined: no shadow_config at all (the baseline). */
  percentage?: number;
}
const CONFIGS: Mirror[] = [
  { label: "(1) no shadow_config (baseline)" },
  { label: "(2) mirror 100 %", percentage: 100 },
  { label: "(3) mirror 10 %", percentage: 10 },
];

/** The endpoint's config for a row: the served models and split never change, only shadow_config. */
function endpointConfig(m: Mirror, primaryVersion: string, shadowVersion: string) {
  return {
    served_entities: [
      {
        name: PRIMARY,
        entity_name: "bench-shadow-primary",
        entity_version: primaryVersion,
        workload_size: "Small",
      },
      {
        name: SHADOW,
        entity_name: "bench-shadow-challenger",
        entity_version: shadowVersion,
        workload_size: "Small",
      },
    ],
    traffic_config: {
      routes: [
        { served_model_name: PRIMARY, traffic_percentage: 100 },
        { served_model_name: SHADOW, traffic_percentage: 0 },
      ],
    },
    ...(m.percentage === undefined
      ? {}
      : { shadow_config: { routes: [{ served_model_name: SHADOW, mirror_percentage: m.percentage }] } }),
  };
}

/** The update is live: the endpoint is READY, not updating, and GET shows this row's shadow routes. */
function applied(ep: EndpointState, m: Mirror): boolean {
  if (ep.state?.ready !== "READY" || ep.state?.config_update !== "NOT_UPDATING") return false;
  const shadow = ep.config?.shadow_config as { routes?: unknown[] } | undefined;
  if (m.percentage === undefined) return shadow === undefined;
  return (
    JSON.stringify(shadow?.routes) ===
    JSON.stringify([{ served_model_name: SHADOW, mirror_percentage: m.percentage }])
  );
}

/** README "Shadow traffic": numbers are equal within 1e-6 × max(1, |a|, |b|). */
const sameNumber = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a), Math.abs(b));

interface Pool {
  rows: number[][];
  bodiesFile: string;
  bodies: string[];
  /** Share of the pool's rows whose challenger prediction equals the primary's (by the references). */
  expectedAgreement: number;
}

function preparePool(dir: string): Pool {
  const rand = prng(1000);
  const columns = Array.from({ length: LR.inputs }, (_, i) => `f${i}`);
  // Five decimals, as the realtime bench: the references see exactly the numbers the server parses.
  const rows = Array.from({ length: POOL_ROWS }, (_, r) =>
    Array.from({ length: LR.inputs }, (_, i) =>
      r % AGREE_EVERY === 0 && CHANGED.includes(i) ? 0 : Math.round((rand() * 2 - 1) * 1e5) / 1e5,
    ),
  );
  const primary = linearPredict(LR, rows);
  const challenger = linearPredict(CHALLENGER, rows);
  const agreeing = primary.filter((p, i) => p.every((v, j) => sameNumber(v, challenger[i]![j]!))).length;
  const bodies = rows.map((r) => JSON.stringify({ dataframe_split: { columns, data: [r] } }));
  const bodiesFile = path.join(dir, "bodies.jsonl");
  writeFileSync(bodiesFile, `${bodies.join("\n")}\n`);
  return { rows, bodiesFile, bodies, expectedAgreement: agreeing / POOL_ROWS };
}

/** The endpoint's counters, from its Prometheus text (all routers' reports summed by the bridge). */
interface Totals {
  routed: number;
  mirrored: number;
  dropped: number;
  shadowErrors: number;
  compared: number;
  agreed: number;
  replicasPrimary: number;
  replicasShadow: number;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue; // comments (# HELP / # TYPE) and blank lines
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function readTotals(sy: SwitchyardCluster): Promise<Totals> {
  const url = `${sy.file.httpUrl!.replace(/\/$/, "")}/api/2.0/serving-endpoints/${ENDPOINT}/metrics`;
  const res = await fetch(url, { headers: authHeaders(sy) });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 300)}`);
  const samples = parsePrometheus(text);
  const sum = (name: string, served: string) =>
    samples
      .filter((s) => s.name === name && s.labels.endpoint === ENDPOINT && s.labels.served_model === served)
      .reduce((a, s) => a + s.value, 0);
  return {
    routed: sum("switchyard_requests_total", PRIMARY),
    mirrored: sum("switchyard_shadow_requests_total", SHADOW),
    dropped: sum("switchyard_shadow_dropped_total", SHADOW),
    shadowErrors: sum("switchyard_shadow_errors_total", SHADOW),
    compared: sum("switchyard_shadow_rows_compared_total", SHADOW),
    agreed: sum("switchyard_shadow_rows_agreed_total", SHADOW),
    replicasPrimary: sum("switchyard_replicas_ready", PRIMARY),
    replicasShadow: sum("switchyard_replicas_ready", SHADOW),
  };
}

/**
 * The totals once every request and mirror of the last run is counted: with no load running, every mirror sent
 * has been answered (one row each: compared, or an error) and two reads a router report apart agree.
 */
async function settledTotals(sy: SwitchyardCluster): Promise<Totals> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let prev = await readTotals(sy);
  while (true) {
    await sleep(ROUTER_STATS_INTERVAL_MS + 250);
    const now = await readTotals(sy);
    const same = (Object.keys(now) as (keyof Totals)[]).every((k) => now[k] === prev[k]);
    if (same && now.compared + now.shadowErrors === now.mirrored) return now;
    if (Date.now() > deadline) {
      throw new Error(
        `the endpoint's totals did not settle within ${SETTLE_TIMEOUT_MS} ms (every mirror compared or an error, ` +
          `unchanged across a router report): last ${JSON.stringify(now)}`,
      );
    }
    prev = now;
  }
}

/** POSTs the first pool rows; each reply must come from the primary and equal its reference. */
async function verifyPrimary(what: string, sy: SwitchyardCluster, pool: Pool): Promise<void> {
  const url = invocationUrl(sy, ENDPOINT);
  for (let i = 0; i < VERIFY_ROWS; i++) {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders(sy) },
      body: pool.bodies[i],
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${what}: POST ${url} → ${res.status} ${text.slice(0, 300)}`);
    const served = res.headers.get("x-served-model");
    if (served !== PRIMARY) throw new Error(`${what}: x-served-model '${served}', expected '${PRIMARY}'`);
    checkPredictions(
      what,
      (JSON.parse(text) as { predictions?: unknown }).predictions,
      linearPredict(LR, [pool.rows[i]!]),
    );
  }
}

interface Row {
  mirror: Mirror;
  result: LoadResult;
  delta: Totals;
  after: Totals;
  cpuPer1k: number;
  otherCores: number;
}

export const shadowBench: Bench = {
  name: "shadow",
  description:
    "what mirroring costs the primary: the same HTTP load with no shadow, mirroring 100 % and 10 % to a challenger",
  baseline: "(1) the same endpoint with no shadow_config, same cluster and load, same run",
  async run({ smoke, log }) {
    const durationS = smoke ? 1 : 10;
    // Whole seconds: wrk takes no fractions.
    const warmupS = smoke ? 1 : 2;
    ensureWrk(log);
    const dir = mkdtempSync(path.join(os.tmpdir(), "sy-bench-shadow-"));
    const rows: Row[] = [];
    const failures: string[] = [];
    let maxInFlight: unknown;
    let sy: SwitchyardCluster | undefined;
    let pool: Pool | undefined;
    try {
      pool = preparePool(dir);
      const { bodiesFile } = pool;
      const primaryFile = path.join(dir, "primary.onnx");
      const shadowFile = path.join(dir, "challenger.onnx");
      writeFileSync(primaryFile, buildLinear(LR));
      writeFileSync(shadowFile, buildLinear(CHALLENGER));

      sy = await startSwitchyard(log);
      const cluster = sy;
      if (!cluster.file.httpUrl || !cluster.file.token) {
        throw new Error(
          "shadow: the bench needs the HTTP bridge with auth on, but cluster.json has " +
            (cluster.file.httpUrl ? "no token (auth is off)" : "no httpUrl (no bridge)"),
        );
      }
      const primaryVersion = await registerModel(cluster, "bench-shadow-primary", primaryFile);
      const shadowVersion = await registerModel(cluster, "bench-shadow-challenger", shadowFile);
      const load = (seconds: number) =>
        runWrk({
          url: invocationUrl(cluster, ENDPOINT),
          bodiesFile,
          connections: CONNECTIONS,
          durationS: seconds,
          headers: authHeaders(cluster),
        });

      for (const [i, m] of CONFIGS.entries()) {
        const config = endpointConfig(m, primaryVersion, shadowVersion);
        if (i === 0) await sendEndpoint(cluster, "POST", "", { name: ENDPOINT, config });
        else await sendEndpoint(cluster, "PUT", `/${ENDPOINT}/config`, config);
        const ep = await waitEndpoint(cluster, ENDPOINT, `updated to ${m.label}`, (e) => applied(e, m));
        const shadowConfig = ep.config?.shadow_config as { max_in_flight?: unknown } | undefined;
        if (shadowConfig) maxInFlight = shadowConfig.max_in_flight;
        log(`${m.label}: applied (shadow_config ${JSON.stringify(ep.config?.shadow_config ?? null)})`);

        await verifyPrimary(m.label, cluster, pool);
        await load(warmupS);
        const before = await settledTotals(cluster);
        const cpu0 = treeCpuTicks([cluster.pid]);
        const busy0 = machineBusySeconds();
        const self0 = process.cpuUsage();
        const t0 = performance.now();
        const result = await load(durationS);
        const wallS = (performance.now() - t0) / 1000;
        const cpu = cpuSecondsBetween(cpu0, treeCpuTicks([cluster.pid]));
        const self = process.cpuUsage(self0);
        const other =
          machineBusySeconds() - busy0 - cpu - result.clientCpuS - (self.user + self.system) / 1e6;
        const after = await settledTotals(cluster);
        const delta = Object.fromEntries(
          (Object.keys(after) as (keyof Totals)[]).map((k) => [k, after[k] - before[k]]),
        ) as unknown as Totals;
        const row: Row = {
          mirror: m,
          result,
          delta,
          after,
          cpuPer1k: (cpu / result.requests) * 1000,
          otherCores: Math.max(0, other / wallS),
        };
        rows.push(row);
        log(
          `${m.label}: ${fmt(result.rps, 0)} req/s, p50 ${fmt(result.p50Ms, 3)} ms, p99 ${fmt(result.p99Ms, 3)} ms, ` +
            `non-2xx ${result.non2xx}, errors ${result.errors}, routed ${delta.routed}, mirrored ${delta.mirrored}, ` +
            `dropped ${delta.dropped}, shadow errors ${delta.shadowErrors}, agreed ${delta.agreed}/${delta.compared}`,
        );
        if (result.non2xx + result.errors > 0) {
          failures.push(
            `${m.label}: ${result.non2xx} non-2xx replies and ${result.errors} transport errors/timeouts (must be 0)`,
          );
        }
        if (m.percentage === undefined && delta.mirrored + delta.dropped > 0) {
          failures.push(
            `${m.label}: ${delta.mirrored} mirrored and ${delta.dropped} dropped with no shadow_config`,
          );
        }
      }
    } finally {
      await sy?.stop();
      rmSync(dir, { recursive: true, force: true });
    }

    const base = rows[0]!.result;
    const pct = (n: number, d: number) => (d > 0 ? `${fmt((100 * n) / d, 1)} %` : "-");
    const table: Record<string, Cell>[] = rows.map((r) => ({
      config: r.mirror.label,
      "req/s": fmt(r.result.rps, 0),
      "p50 ms": fmt(r.result.p50Ms, 3),
      "p99 ms": fmt(r.result.p99Ms, 3),
      "req/s vs (1)": `${fmt(r.result.rps / base.rps, 2)}x`,
      "p99 vs (1)": `${fmt(r.result.p99Ms / base.p99Ms, 2)}x`,
      "non-2xx": r.result.non2xx,
      errors: r.result.errors,
      routed: r.delta.routed,
      mirrored: r.delta.mirrored,
      "mirrored/routed": pct(r.delta.mirrored, r.delta.routed),
      dropped: r.delta.dropped,
      "shadow errors": r.delta.shadowErrors,
      agreement: r.delta.compared ? `${pct(r.delta.agreed, r.delta.compared)} (${r.delta.compared})` : "-",
      "CPU s/1k req": fmt(r.cpuPer1k, 3),
      replicas: `${r.after.replicasPrimary}+${r.after.replicasShadow}`,
      "other cores": fmt(r.otherCores, 2),
    }));
    const expected = pool!.expectedAgreement;
    const notes: string[] = [
      `Agreement: the challenger's weights differ from the primary's on features ${CHANGED.join(", ")}; every ` +
        `${AGREE_EVERY}th pool row has those at 0, so ${fmt(100 * expected, 1)} % of the pool's rows agree by the ` +
        "references (linearPredict, README's rule: within 1e-6 × max(1, |a|, |b|)); bodies are drawn at random, " +
        "so a run's rate is that within sampling noise.",
      "routed, mirrored, dropped, shadow errors, agreement (agreed/compared rows): the endpoint's Prometheus totals " +
        "(GET /api/2.0/serving-endpoints/{name}/metrics) after the measured run minus before it, each read once they " +
        "settled; routed counts the primary's requests including those still in flight when the load generator " +
        "stopped. replicas: READY replicas of primary+challenger after the run (the challenger scales on its mirrors).",
      "req/s, p50, p99: the primary as the callers saw it (wrk, one thread: every reply's latency, successes counted). " +
        "CPU s/1k req: utime+stime of `switchyard up` and all its descendants during the measured run per 1,000 " +
        "successful requests. 'other cores': busy CPU of the machine minus server, load generator and bench process.",
      `Correctness: before each measurement ${VERIFY_ROWS} replies come from '${PRIMARY}' (x-served-model) and equal ` +
        `the reference (linearPredict) within ${TOLERANCE}.`,
    ];
    for (const r of rows) {
      const { compared, agreed } = r.delta;
      // Five standard deviations of the sampled rate: a wider gap means the comparison, not chance.
      if (
        compared > 0 &&
        Math.abs(agreed / compared - expected) > 5 * Math.sqrt((expected * (1 - expected)) / compared)
      ) {
        failures.push(
          `${r.mirror.label}: agreement ${agreed}/${compared} is far from the expected ${fmt(100 * expected, 1)} %`,
        );
      }
    }
    const noisy = rows.filter((r) => r.otherCores > NOISY_CORES);
    if (noisy.length) {
      notes.push(
        `DISTURBED: in ${noisy.length} of ${rows.length} runs other processes used more than ${NOISY_CORES} cores ` +
          "(column 'other cores'): those figures are not clean, rerun on a quiet machine.",
      );
    }
    if (failures.length)
      throw new Error(`shadow: ${failures.length} check(s) failed:\n${failures.join("\n")}`);
    return {
      config: {
        durationS,
        warmupS,
        connections: CONNECTIONS,
        order: CONFIGS.map((c) => c.label),
        endpoint: {
          served_entities: `${PRIMARY} (LR, 30 features) 100 %, ${SHADOW} (LR, other weights on ${CHANGED.length} features) 0 %, workload_size Small`,
          shadow_max_in_flight: maxInFlight ?? "default",
          switch:
            "PUT /api/2.0/serving-endpoints/{name}/config; measured once GET shows the shadow_config and NOT_UPDATING",
        },
        cluster: `switchyard up, defaults, auth on, HTTP bridge (NATS ${redact(sy!.file.natsUrl)})`,
        bodyPool: `${POOL_ROWS} random rows, one row per request (dataframe_split), drawn at random`,
        expectedAgreement: Math.round(expected * 1e4) / 1e4,
        loadGenerator: `${wrkVersion()}, -t1, its own process`,
        node: process.version,
        cpus: os.availableParallelism(),
      },
      columns: Object.keys(table[0] ?? {}),
      rows: table,
      notes,
    };
  },
};
