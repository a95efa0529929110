// The shadow block of `switchyard endpoints metrics`: per shadow served model and window, the mirrors sent and
// dropped, their errors and latency, and how often the shadow's predictions agreed with the primary's.
import { type EndpointMetrics, METRICS_WINDOWS } from "@switchyard/protocol";
import { table } from "../output.js";

/** The block's lines (none when nothing is mirrored to any shadow of the endpoint); `ms` formats milliseconds. */
export function shadowLines(m: EndpointMetrics, ms: (x: number) => string): string[] {
  if (!m.shadow?.length) return [];
  const rows: string[][] = [];
  for (const window of Object.keys(METRICS_WINDOWS) as (keyof typeof METRICS_WINDOWS)[]) {
    for (const s of m.shadow) {
      const w = s.windows[window];
      const errors = Object.entries(w.errors)
        .map(([code, n]) => `${code}:${n}`)
        .join(" ");
      const a = w.agreement;
      rows.push([
        window,
        s.served_model_name,
        String(w.mirrored),
        String(w.dropped),
        errors || "0",
        ms(w.latency_ms.p50),
        ms(w.latency_ms.p99),
        a.compared ? `${(a.rate * 100).toFixed(2)}% (${a.agreed}/${a.compared} rows)` : "-",
      ]);
    }
  }
  return [
    "shadow traffic (mirrored requests; replies discarded after comparison with the primary's):",
    table(["WINDOW", "SHADOW", "MIRRORED", "DROPPED", "ERRORS", "P50 MS", "P99 MS", "AGREEMENT"], rows),
  ];
}
