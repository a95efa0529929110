// The accuracy block of `switchyard endpoints metrics`: per served model and window (by request time), labelled
// requests and rows, accuracy, MAE and RMSE; then the endpoint's labels by how the join settled them.
import { ACCURACY_WINDOWS, type AccuracyWindowName, type EndpointAccuracy } from "@switchyard/protocol";
import { table } from "../output.js";

const num = (x: number | null, digits: number) => (x === null ? "-" : x.toFixed(digits));

export function accuracyTable(a: EndpointAccuracy): string {
  const rows: string[][] = [];
  for (const window of Object.keys(ACCURACY_WINDOWS) as AccuracyWindowName[]) {
    for (const s of a.served_models) {
      const w = s.windows[window];
      rows.push([
        window,
        s.name,
        String(w.labelled_requests),
        String(w.labelled_rows),
        w.accuracy === null ? "-" : `${(w.accuracy * 100).toFixed(2)}%`,
        num(w.mae, 4),
        num(w.rmse, 4),
      ]);
    }
  }
  const l = a.labels;
  return [
    `accuracy (feedback labels by request time) — labels received ${l.received}: joined ${l.joined}, ` +
      `unknown ${l.unknown}, duplicate ${l.duplicate}, invalid ${l.invalid}`,
    table(["WINDOW", "SERVED MODEL", "REQUESTS", "ROWS", "ACCURACY", "MAE", "RMSE"], rows),
  ].join("\n");
}
