// `npm run bench -- [names…] [--smoke]`: runs benchmarks, prints a table each, and writes one JSON file
// per bench (config, git SHA, machine, figures) under bench/results/.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { benches } from "./benches/index.js";
import type { BenchReport } from "./types.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");

function gitSha(): string {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "unknown";
  }
}

function render(report: BenchReport): string {
  const cells = [report.columns, ...report.rows.map((r) => report.columns.map((c) => String(r[c] ?? "")))];
  const widths = report.columns.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells
    .map((r) => r.map((c, i) => c.padStart(i === 0 ? 0 : widths[i]!).padEnd(widths[i]!)).join("  "))
    .join("\n");
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const smoke = args.includes("--smoke");
  const names = args.filter((a) => !a.startsWith("--"));
  const unknown = names.filter((n) => !benches.some((b) => b.name === n));
  if (unknown.length) {
    console.error(
      `unknown bench: ${unknown.join(", ")}; available: ${benches.map((b) => b.name).join(", ")}`,
    );
    return 2;
  }
  const selected = names.length ? benches.filter((b) => names.includes(b.name)) : benches;
  const outDir = path.join(root, "bench", "results");
  mkdirSync(outDir, { recursive: true });
  const sha = gitSha();
  const machine = {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
  };
  let failed = 0;
  for (const bench of selected) {
    console.log(
      `\n## ${bench.name}: ${bench.description}\nbaseline: ${bench.baseline}${smoke ? " (smoke run)" : ""}`,
    );
    try {
      const report = await bench.run({ smoke, log: (m) => console.log(`  ${m}`) });
      console.log(`config: ${JSON.stringify(report.config)}`);
      console.log(render(report));
      for (const n of report.notes ?? []) console.log(`note: ${n}`);
      for (const t of report.targets ?? []) console.log(t);
      const file = path.join(outDir, `${bench.name}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
      writeFileSync(
        file,
        `${JSON.stringify({ bench: bench.name, sha, smoke, machine, at: new Date().toISOString(), ...report }, null, 2)}\n`,
      );
      console.log(`wrote ${path.relative(root, file)}`);
    } catch (err) {
      failed++;
      console.error(`bench ${bench.name} failed: ${(err as Error).stack ?? err}`);
    }
  }
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code));
