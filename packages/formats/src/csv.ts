// `text/csv` bodies and files ↔ Frame, read the way pandas.read_csv reads what MLflow's scoring server
// accepts (header row, numeric and boolean columns detected, NA tokens as null). No per-row objects kept.

import { Frame, type FrameColumn } from "@switchyard/data";
import { invalid, SwitchyardError } from "@switchyard/protocol";
import { parse } from "csv-parse/sync";

const utf8 = new TextDecoder();

/** Cells pandas reads as missing by default. */
const NA = new Set([
  "",
  "NA",
  "N/A",
  "n/a",
  "NaN",
  "nan",
  "-NaN",
  "-nan",
  "NULL",
  "null",
  "None",
  "<NA>",
  "#N/A",
  "#NA",
]);
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const INF = /^([+-]?)(?:inf|infinity)$/i;
const TRUE = new Set(["true", "True", "TRUE"]);
const FALSE = new Set(["false", "False", "FALSE"]);

/**
 * A CSV document with a header row → Frame. A column whose cells are all numbers (or NA) is float64 (NA →
 * NaN); all true/false → bool; anything else is a string column (NA → null). Empty header cells are named
 * `Unnamed: <i>` as pandas does. Rows with another field count than the header → INVALID_PARAMETER_VALUE.
 */
export function parseCsv(body: string | Uint8Array): Frame {
  const text = typeof body === "string" ? body : utf8.decode(body);
  let records: string[][];
  try {
    records = parse(text, { bom: true, relax_column_count: true, skip_empty_lines: true }) as string[][];
  } catch (err) {
    throw new SwitchyardError(
      "BAD_REQUEST",
      `Failed to parse input as CSV. Ensure the input is valid CSV with a header row. Error: '${(err as Error).message}'`,
    );
  }
  const header = records[0];
  if (!header)
    throw new SwitchyardError("BAD_REQUEST", "Failed to parse input as CSV: no header row (empty input)");
  const names = header.map((h, i) => (h === "" ? `Unnamed: ${i}` : h));
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw invalid(`CSV header names column '${n}' twice`);
    seen.add(n);
  }
  const rows = records.length - 1;
  for (let r = 1; r <= rows; r++) {
    const len = records[r]!.length;
    if (len !== names.length) {
      throw invalid(
        `CSV data row ${r} has ${len} fields; the header has ${names.length} (${names.join(", ")})`,
      );
    }
  }
  return Frame.of(
    names.map((name, c) => csvColumn(name, rows, (r) => records[r + 1]![c]!)),
    rows,
  );
}

function csvColumn(name: string, n: number, cell: (r: number) => string): FrameColumn {
  let numeric = true;
  let bool = true;
  let hasNull = false;
  for (let r = 0; r < n && (numeric || bool); r++) {
    const s = cell(r);
    if (NA.has(s)) {
      hasNull = true;
      continue;
    }
    const t = s.trim();
    if (numeric && !NUMBER.test(t) && !INF.test(t)) numeric = false;
    if (bool && !TRUE.has(t) && !FALSE.has(t)) bool = false;
  }
  if (numeric) {
    const out = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      const s = cell(r);
      if (NA.has(s)) out[r] = Number.NaN;
      else {
        const inf = INF.exec(s.trim());
        out[r] = inf ? (inf[1] === "-" ? -1 : 1) * Number.POSITIVE_INFINITY : Number(s);
      }
    }
    return { name, kind: "float64", data: out };
  }
  if (bool && !hasNull) {
    const out = new Uint8Array(n);
    for (let r = 0; r < n; r++) out[r] = TRUE.has(cell(r).trim()) ? 1 : 0;
    return { name, kind: "bool", data: out };
  }
  const out = new Array<string | null>(n);
  for (let r = 0; r < n; r++) {
    const s = cell(r);
    out[r] = NA.has(s) ? null : s;
  }
  return { name, kind: "string", data: out };
}
