// Batch scoring (issue 8): a million rows scored from a file into a file — MLP-S of the realtime bench over
// 64 float columns, and a 200-tree gradient-boosted ensemble over 30 — each as Parquet and as CSV. Every
// contender scores the same cached input (bench/lib/datasets.ts) and its output is checked (row count,
// order, input columns, predictions against the JS reference) before its figures count. Contenders: the
// baseline (one process, bench/baseline/duckdb-onnx.ts) and Switchyard batch jobs with one and two workers
// (batch-switchyard.ts).
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DuckDBInstance, version as duckdbVersion } from "@duckdb/node-api";
import { ENGINE_DEFAULTS, SHARD_DEFAULTS } from "@switchyard/jobs";
import {
  buildTreeEnsemble,
  type TreeEnsembleOptions,
  treeEnsembleParams,
  treeEnsemblePredict,
} from "@switchyard/testkit";
import { BASELINE_BATCH_ROWS, type BaselineReport } from "../baseline/duckdb-onnx.js";
import { machineBusySeconds } from "../lib/cpu.js";
import { type DatasetSpec, ensureDataset, featureColumns, VALUE_DECIMALS } from "../lib/datasets.js";
import { type FileFormat, readTable } from "../lib/duckdb.js";
import { benchDist, repoRoot, runJsonChild } from "../lib/procs.js";
import { type Bench, type Cell, fmt } from "../types.js";
import { BatchCluster, DEFAULT_SHARD_ROWS, NODE_THREADS, switchyardBatch } from "./batch-switchyard.js";
import { MODELS } from "./realtime.js";

/** A model the cells score, with the plain-JS reference its predictions are checked against. */
interface BatchModel {
  key: string;
  features: number;
  describe: string;
  bytes(): Uint8Array;
  /** One prediction per row. */
  reference(rows: number[][]): number[];
}

const mlpS = MODELS.find((m) => m.key === "MLP-S")!;
const TREES: TreeEnsembleOptions = { features: 30, trees: 200, depth: 3, seed: 1 };
const treeParams = treeEnsembleParams(TREES);

const MLP: BatchModel = {
  key: mlpS.key,
  features: mlpS.features,
  describe: "MLP-S of the realtime bench: 64-512-512-512-1, ReLU, sigmoid out",
  bytes: mlpS.bytes,
  reference: (rows) => mlpS.reference(rows).map((y) => y[0]!),
};
const TREE: BatchModel = {
  key: "GBT",
  features: TREES.features,
  describe: `TreeEnsembleRegressor (ai.onnx.ml 3): ${TREES.trees} trees of depth ${TREES.depth}, SUM`,
  bytes: () => buildTreeEnsemble(TREES),
  reference: (rows) => rows.map((row) => treeEnsemblePredict(treeParams, row)),
};

/** Predictions are float32 from ORT; the references are float64. */
const TOLERANCE = 1e-4;
/** Rows whose predictions are recomputed in JS per output (spread evenly over the file). */
const VERIFY_SAMPLE = 200;

/** What a contender is asked to do: score `input` with the model in `modelFile`, writing under `outDir`. */
export interface BatchCell {
  /** The model's key (MLP-S, GBT). */
  model: string;
  modelFile: string;
  /** The model's input columns, in order (the input also has `id`). */
  features: string[];
  input: string;
  format: FileFormat;
  rows: number;
  /** A fresh, empty directory for this contender's output. */
  outDir: string;
  /** Rows per shard a batch job asks for; undefined: the product's default. */
  shardRows: number | undefined;
  log(msg: string): void;
}

const PHASES = ["setup", "read", "score", "write", "finish", "coordination"] as const;
type Phase = (typeof PHASES)[number];

export interface CellRun {
  rows: number;
  /** Seconds from the contender's start (the baseline's `scoreFile`, the cluster's submit) to its output complete. */
  totalS: number;
  /** Where the time went, in seconds (the baseline's phases are wall time, one after another). */
  phases: Partial<Record<Phase, number>>;
  /** CPU seconds of every process of the contender. */
  cpuS: number;
  /** Peak RSS of each process that scored (the baseline's one; each batch worker), MiB. */
  peakRssMiB: number[];
  /** The output as `readTable` takes it: one file, or a glob of part files that sorts in input order. */
  output: string;
}

/** One way of scoring a file: `run` returns once its output is complete, and the bench then checks it. */
export interface BatchContender {
  name: string;
  /** The issue's target: at least this many times the baseline's rows/s. */
  target?: number;
  /** What `run` needs that is not measured (a cluster started, a model registered), before the clock starts. */
  prepare?(cell: BatchCell): Promise<void>;
  run(cell: BatchCell): Promise<CellRun>;
  /** Stops what the contender kept running between cells (a cluster). */
  close?(): Promise<void>;
}

const BASELINE = "baseline DuckDB+ORT";

const baseline: BatchContender = {
  name: BASELINE,
  async run(cell) {
    const output = path.join(cell.outDir, `scored.${cell.format}`);
    const args = [
      ["--model", cell.modelFile],
      ["--input", cell.input],
      ["--output", output],
      ["--features", cell.features.join(",")],
    ].flat();
    const cli = path.join(benchDist, "baseline", "duckdb-onnx-cli.js");
    const r = await runJsonChild<BaselineReport>(cli, args, 60 * 60_000);
    return {
      rows: r.rows,
      totalS: r.totalMs / 1000,
      phases: {
        setup: r.setupMs / 1000,
        read: r.readMs / 1000,
        score: r.scoreMs / 1000,
        write: r.writeMs / 1000,
      },
      cpuS: r.cpuS,
      peakRssMiB: [r.peakRssMiB],
      output,
    };
  },
};

const cluster = new BatchCluster();

/** In table order; the targets are issue 8's, for this 2-core machine. */
export const CONTENDERS: BatchContender[] = [
  baseline,
  switchyardBatch(cluster, 1, 0.9),
  switchyardBatch(cluster, 2, 1.7),
];

interface BatchCase {
  model: BatchModel;
  data: DatasetSpec;
  format: FileFormat;
}

function cases(rows: number): BatchCase[] {
  const wide: DatasetSpec = { rows, cols: MLP.features, seed: 1 };
  const narrow: DatasetSpec = { rows, cols: TREE.features, seed: 2 };
  return [
    { model: MLP, data: wide, format: "parquet" },
    { model: MLP, data: wide, format: "csv" },
    { model: TREE, data: narrow, format: "parquet" },
    { model: TREE, data: narrow, format: "csv" },
  ];
}

/**
 * The smoke run (CI, ~30 s) takes the cluster contenders through one case only, the tree model over CSV (four
 * shards, so both workers of the two-worker job score): each job costs seconds of worker start whatever its
 * size. The baseline runs every case.
 */
const inSmoke = (c: BatchCase, contender: BatchContender) =>
  contender === baseline || (c.model === TREE && c.format === "csv");

/** Throws unless `output` holds every input row in order, the input columns unchanged, and right predictions. */
async function verifyOutput(cell: BatchCell, model: BatchModel, output: string): Promise<void> {
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  const fail = (why: string) => {
    throw new Error(`${output}: ${why}`);
  };
  // Two queries, because every read_csv sniffs the file's dialect again (about a second at 64 columns).
  try {
    const out = readTable(output);
    const step = Math.max(1, Math.floor(cell.rows / VERIFY_SAMPLE));
    const sampled = await conn.run(`SELECT * FROM ${out} WHERE id % ${step} = 0`);
    const columns = sampled.columnNames();
    const expected = ["id", ...cell.features, "prediction"];
    if (columns.join() !== expected.join()) fail(`columns [${columns}], expected [${expected}]`);
    const sample = (await sampled.getRowsJS()) as [bigint, ...number[]][];
    const want = model.reference(sample.map((row) => row.slice(1, -1) as number[]));
    for (const [i, row] of sample.entries()) {
      const got = row.at(-1) as number;
      if (!(Math.abs(got - want[i]!) <= TOLERANCE))
        fail(`row ${row[0]}: prediction ${got}, expected ${want[i]}`);
    }
    // row_number() over the scan numbers rows in file order: an id out of place is a reordered row.
    const changed = cell.features.map((f) => `i.${f} IS DISTINCT FROM o.${f}`).join(" OR ");
    const counts = await conn.run(
      `SELECT count(*), count(*) FILTER (WHERE o.id <> o.rn), count(i.id), count(*) FILTER (WHERE ${changed}) ` +
        `FROM (SELECT *, row_number() OVER () - 1 AS rn FROM ${out}) o LEFT JOIN ${readTable(cell.input)} i ON i.id = o.id`,
    );
    const [rows, misplaced, matched, differing] = ((await counts.getRowsJS())[0] as bigint[]).map(Number);
    if (rows !== cell.rows || misplaced !== 0 || matched !== cell.rows || differing !== 0) {
      fail(
        `${rows} rows (expected ${cell.rows}), ${misplaced} out of order, ${matched} with an input id, ` +
          `${differing} with input columns changed`,
      );
    }
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

interface Measured {
  caseKey: string;
  model: string;
  data: string;
  contender: string;
  target?: number;
  run?: CellRun;
  /** CPU the rest of the machine used during the run, in cores. */
  otherCores?: number;
  status: string;
}

/** Above this much CPU of unrelated processes during a cell (in cores), the figures are flagged. */
const NOISY_CORES = 0.15;
/** The smoke run's files (20,000 rows) cut into four CSV shards, so two workers both get some. */
const SMOKE_SHARD_ROWS = 5_000;
/** Where each run makes its directory of models and outputs (see `run`). */
const WORK_DIR = path.join(repoRoot, "bench", "results", "cache", "batch");

/** Issue 8: every worker's peak RSS under 1 GB, whatever the file size. */
const RSS_TARGET_MIB = 1024;

const peaks = (r: CellRun) => r.peakRssMiB.map((m) => fmt(m, 0)).join(" / ");
const targets = (speed: number, ratio: number, r: CellRun) =>
  `>=${speed}x ${ratio >= speed ? "met" : "MISSED"}, RSS ${Math.max(...r.peakRssMiB) < RSS_TARGET_MIB ? "met" : "MISSED"}`;

export const batchBench: Bench = {
  name: "batch",
  description:
    "a file of rows scored into a file: MLP-S over 64 columns, a tree ensemble over 30, Parquet and CSV",
  baseline:
    "one process: DuckDB reads the file, ORT session.run (1 thread) in batches of 4,096 rows, DuckDB writes " +
    "input + prediction (bench/baseline/duckdb-onnx.ts)",
  async run({ smoke, log }) {
    const rows = smoke ? 20_000 : 1_000_000;
    // Under the repository (gitignored), beside the cached inputs: `switchyard up` runs from the repository
    // root, which is one of its data roots, so its jobs may read the inputs and write the outputs here.
    mkdirSync(WORK_DIR, { recursive: true });
    const dir = mkdtempSync(path.join(WORK_DIR, "run-"));
    const measured: Measured[] = [];
    const failures: string[] = [];
    const inputs: Record<string, string> = {};
    try {
      const modelFiles = new Map<BatchModel, string>();
      for (const m of [MLP, TREE]) {
        const file = path.join(dir, `${m.key}.onnx`);
        writeFileSync(file, m.bytes());
        modelFiles.set(m, file);
      }
      for (const c of cases(rows)) {
        const input = await ensureDataset(c.data, c.format, { log });
        const data = `${c.data.rows} x ${c.data.cols} ${c.format}`;
        inputs[data] = `${path.basename(input)}, ${fmt(statSync(input).size / 2 ** 20, 0)} MiB`;
        for (const contender of CONTENDERS) {
          if (smoke && !inSmoke(c, contender)) continue;
          const outDir = path.join(dir, `out-${measured.length}`);
          mkdirSync(outDir);
          const cell: BatchCell = {
            model: c.model.key,
            modelFile: modelFiles.get(c.model)!,
            features: featureColumns(c.data.cols),
            input,
            format: c.format,
            rows: c.data.rows,
            outDir,
            shardRows: smoke ? SMOKE_SHARD_ROWS : undefined,
            log,
          };
          const row: Measured = {
            caseKey: `${c.model.key} ${data}`,
            model: c.model.key,
            data,
            contender: contender.name,
            ...(contender.target === undefined ? {} : { target: contender.target }),
            status: "ok",
          };
          try {
            await contender.prepare?.(cell);
            const busy0 = machineBusySeconds();
            const self0 = process.cpuUsage();
            const t0 = performance.now();
            const run = await contender.run(cell);
            const wallS = (performance.now() - t0) / 1000;
            const self = process.cpuUsage(self0);
            const other = machineBusySeconds() - busy0 - run.cpuS - (self.user + self.system) / 1e6;
            row.otherCores = Math.max(0, other / wallS);
            await verifyOutput(cell, c.model, run.output);
            row.run = run;
            const p = run.phases;
            log(
              `${c.model.key} ${data} ${contender.name}: ${fmt(run.rows / run.totalS, 0)} rows/s, ${fmt(run.totalS, 2)} s ` +
                `(${PHASES.filter((k) => p[k] !== undefined)
                  .map((k) => `${k} ${fmt(p[k]!, 2)}`)
                  .join(", ")}), ` +
                `peak RSS ${peaks(run)} MiB, other processes ${fmt(row.otherCores, 2)} cores`,
            );
          } catch (err) {
            const msg = (err as Error).message ?? String(err);
            failures.push(`${c.model.key} ${data} ${contender.name}: ${msg}`);
            row.status = `FAILED: ${msg.split("\n")[0]!.slice(0, 120)}`;
            log(`${c.model.key} ${data} ${contender.name}: FAILED: ${msg}`);
          } finally {
            rmSync(outDir, { recursive: true, force: true });
          }
          measured.push(row);
        }
      }
    } finally {
      for (const c of CONTENDERS) await c.close?.();
      rmSync(dir, { recursive: true, force: true });
    }

    const base = new Map(
      measured.filter((m) => m.contender === BASELINE && m.run).map((m) => [m.caseKey, m.run!]),
    );
    const table: Record<string, Cell>[] = measured.map((m) => {
      const r = m.run;
      const b = base.get(m.caseKey);
      const phase = (k: Phase) => (r?.phases[k] === undefined ? "-" : fmt(r.phases[k]!, 2));
      return {
        model: m.model,
        data: m.data,
        contender: m.contender,
        "rows/s": r ? fmt(r.rows / r.totalS, 0) : "-",
        "vs baseline": r && b ? `${fmt(b.totalS / r.totalS, 2)}x` : "-",
        "total s": r ? fmt(r.totalS, 2) : "-",
        ...Object.fromEntries(PHASES.map((k) => [`${k} s`, phase(k)])),
        "CPU s": r ? fmt(r.cpuS, 1) : "-",
        "peak RSS MiB": r ? peaks(r) : "-",
        "other cores": m.otherCores === undefined ? "-" : fmt(m.otherCores, 2),
        targets: r && b && m.target !== undefined ? targets(m.target, b.totalS / r.totalS, r) : "-",
        status: m.status,
      };
    });
    const notes = [
      "Time: from the start of the contender's work (baseline: scoreFile entered, before the ORT session and DuckDB " +
        "are created) to the output file complete. setup = ORT session + DuckDB instance + opening the input (CSV: " +
        "dialect sniffing); read = streaming the feature columns (CAST to FLOAT) out of DuckDB into the batch " +
        "buffer; score = session.run; write = appending predictions to a DuckDB table + the final " +
        "COPY (SELECT * FROM input POSITIONAL JOIN predictions), which reads the input a second time.",
      "Phases of the baseline do not overlap (read, score, write per batch, one after another); DuckDB runs its own " +
        "threads (default: one per core) inside read and COPY, ORT one intra-op thread on the main thread.",
      `Correctness: each output has every input row in order (ids), the input columns unchanged (joined on id), and ` +
        `predictions of ${VERIFY_SAMPLE} rows spread over the file equal to the JS reference (testkit mlpPredict / ` +
        `treeEnsemblePredict) within ${TOLERANCE}.`,
      "Switchyard: from Date.now() before client.submitBatch to the job's finished_at, stamped by the coordinator " +
        "when it marks the job SUCCEEDED after writing the merged file and its manifest (no polling delay). Phases " +
        "from the manifest's shard results: setup = submit → first shard started (plan: inspect the input, CSV a " +
        "counting scan; place workers; start their processes; load the model); read/score/write = the busiest " +
        "worker's sums over its shards (the critical path); finish = last shard done → SUCCEEDED (the leader " +
        "notices, merges the parts into one file — Parquet parts are decoded and encoded again, CSV parts copied as bytes — and " +
        "writes the manifest; an output directory would skip the merge); coordination = the rest (between shards: " +
        "task pull, result to KV, ack; inside a shard outside its phases; the busiest worker waiting).",
      "Switchyard CPU s: the whole `switchyard up` tree (nats-server, coordinator + agent + bridge, batch workers) " +
        "from submit to the job's end; peak RSS: VmHWM of each batch worker process, sampled " +
        "every 100 ms. The idle `up` process stays running during baseline cells (its CPU counts as 'other').",
      "'other cores': busy CPU of the machine (/proc/stat) minus the contender's and the bench's, per second of the " +
        "run — unrelated load that disturbs the figures.",
    ];
    const noisy = measured.filter((m) => (m.otherCores ?? 0) > NOISY_CORES);
    if (noisy.length) {
      notes.push(
        `DISTURBED: in ${noisy.length} of ${measured.filter((m) => m.run).length} cells other processes used more ` +
          `than ${NOISY_CORES} cores (column 'other cores'): those figures are not clean, rerun on a quiet machine.`,
      );
    }
    if (failures.length) throw new Error(`batch: ${failures.length} cell(s) failed:\n${failures.join("\n")}`);
    return {
      config: {
        rows,
        inputs,
        values: `id = row number; f0… uniform in [-1, 1) rounded to ${VALUE_DECIMALS} decimals (DOUBLE)`,
        models: [MLP, TREE].map((m) => `${m.key}: ${m.describe}, ${m.features} features`),
        contenders: CONTENDERS.map((c) => c.name),
        baseline: {
          batchRows: BASELINE_BATCH_ROWS,
          ort: "intraOpNumThreads 1, interOpNumThreads 1",
          duckdbThreads: "default (one per core)",
        },
        switchyard: {
          cluster: `switchyard up --node-threads ${NODE_THREADS}: one coordinator, one node agent (thread budget ${NODE_THREADS})`,
          submit:
            "SDK client.submitBatch({model, input, output: <dir>/scored.<input ext>, columns, workers})",
          output: "one file in the input's format, like the baseline's: parts merged by the coordinator",
          shardRows: smoke ? SMOKE_SHARD_ROWS : `${DEFAULT_SHARD_ROWS} (product default)`,
          perWorker: `1 ORT intra-op thread (placement), DuckDB ${ENGINE_DEFAULTS.threads} thread and ${ENGINE_DEFAULTS.memoryMb} MiB, ${SHARD_DEFAULTS.batchRows} rows per session.run`,
        },
        duckdb: duckdbVersion(),
        node: process.version,
        cpus: os.availableParallelism(),
      },
      columns: [
        "model",
        "data",
        "contender",
        "rows/s",
        "vs baseline",
        "total s",
        ...PHASES.map((k) => `${k} s`),
        "CPU s",
        "peak RSS MiB",
        "other cores",
        "targets",
        "status",
      ],
      rows: table,
      notes,
    };
  },
};
