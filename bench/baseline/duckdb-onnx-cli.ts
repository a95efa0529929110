// The batch baseline as its own process, so its time, CPU and peak RSS are its alone:
//   node bench/dist/baseline/duckdb-onnx-cli.js --model m.onnx --input in.parquet --output out.parquet --features f0,f1,…
// Prints one JSON line: the timings of `scoreFile`, the process's CPU seconds and peak RSS in MiB.
import { parseArgs } from "node:util";
import { type BaselineReport, scoreFile } from "./duckdb-onnx.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    input: { type: "string" },
    output: { type: "string" },
    features: { type: "string" },
  },
});
const { model, input, output, features } = values;
if (!model || !input || !output || !features) {
  throw new Error(
    "usage: duckdb-onnx-cli --model <file.onnx> --input <file> --output <file> --features <a,b,…>",
  );
}
const timings = await scoreFile({ model, input, output, features: features.split(",") });
const cpu = process.cpuUsage();
const report: BaselineReport = {
  ...timings,
  cpuS: (cpu.user + cpu.system) / 1e6,
  peakRssMiB: process.resourceUsage().maxRSS / 1024,
};
console.log(JSON.stringify(report));
