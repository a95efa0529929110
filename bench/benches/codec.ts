// Codec: what it costs to move one request's data between our own processes (msgpack with typed arrays
// kept binary) against the baseline, the JSON body an HTTP client sends (stringify + parse).

import { Frame } from "@switchyard/data";
import { decode, encode } from "@switchyard/data/codec";
import { parseJsonBody, parseRequestBody } from "@switchyard/formats";
import { type Bench, fmt, opsPerSecond } from "../types.js";

function frameOf(rows: number, cols: number, seed: number): Frame {
  const columns: Record<string, Float64Array> = {};
  let x = seed;
  for (let c = 0; c < cols; c++) {
    const col = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      col[r] = x / 2 ** 31;
    }
    columns[`f${c}`] = col;
  }
  return Frame.fromColumns(columns);
}

export const codecBench: Bench = {
  name: "codec",
  description: "request data round trip: msgpack Frame (internal wire) vs the MLflow JSON body",
  baseline: "JSON.stringify + JSON.parse of the same rows as a dataframe_split body",
  async run({ smoke }) {
    const ms = smoke ? 100 : 1500;
    const shapes = [
      { rows: 1, cols: 30 },
      { rows: 1, cols: 64 },
      { rows: 32, cols: 64 },
      { rows: 1024, cols: 256 },
    ];
    const rows = [];
    for (const { rows: n, cols } of shapes) {
      const frame = frameOf(n, cols, n * 31 + cols);
      const body = {
        dataframe_split: {
          columns: frame.columns,
          data: frame.rows().map((r) => frame.columns.map((c) => r[c])),
        },
      };
      const json = JSON.stringify(body);
      const packed = encode(frame);
      const jsonRt = await opsPerSecond(() => JSON.parse(JSON.stringify(body)), ms);
      const mlflowParse = await opsPerSecond(() => parseRequestBody(parseJsonBody(json)), ms);
      const msgpackRt = await opsPerSecond(() => decode(encode(frame)), ms);
      rows.push({
        shape: `${n}x${cols}`,
        "json bytes": json.length,
        "msgpack bytes": packed.byteLength,
        "json rt µs": fmt(jsonRt.perOpUs, 2),
        "mlflow parse µs": fmt(mlflowParse.perOpUs, 2),
        "msgpack rt µs": fmt(msgpackRt.perOpUs, 2),
        "msgpack vs json": `${fmt(jsonRt.perOpUs / msgpackRt.perOpUs, 2)}x`,
      });
    }
    return {
      config: { durationMsPerCase: ms, shapes, dtype: "float64 columns" },
      columns: [
        "shape",
        "json bytes",
        "msgpack bytes",
        "json rt µs",
        "mlflow parse µs",
        "msgpack rt µs",
        "msgpack vs json",
      ],
      rows,
      notes: [
        "'msgpack vs json' is the speed-up of the msgpack round trip over the JSON round trip (higher is better)",
      ],
    };
  },
};
