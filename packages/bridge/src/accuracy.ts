// Live accuracy in the bridge's metrics: the windows of feedback outcomes (AccuracyFeed) as Prometheus series and
// as the `accuracy` block of the JSON summary. Reads only; the join that writes outcomes runs in the coordinators.
import type { AccuracyWindows } from "@switchyard/autoscaler";
import { type EndpointMetrics, FEEDBACK_RESULTS } from "@switchyard/protocol";
import { Counter, Gauge, type Registry } from "prom-client";

/** The endpoint's metrics with its accuracy block, when it received labels. */
export function withAccuracy(m: EndpointMetrics, windows: AccuracyWindows): EndpointMetrics {
  const accuracy = windows.endpoint(m.name);
  return accuracy ? { ...m, accuracy } : m;
}

/** Accuracy, MAE, RMSE and labelled rows per served model and window; labels by result per endpoint. */
export function accuracySeries(registry: Registry, windows: AccuracyWindows, endpoint?: string): void {
  const registers = [registry];
  const labelNames = ["endpoint", "served_model", "window"];
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
  const accuracy = gauge(
    "switchyard_accuracy",
    "Share of labelled rows whose prediction equals the label, over requests of the window",
  );
  const mae = gauge("switchyard_mae", "Mean absolute error over labelled rows with numeric predictions");
  const rmse = gauge(
    "switchyard_rmse",
    "Root mean squared error over labelled rows with numeric predictions",
  );
  const rows = gauge("switchyard_labelled_rows", "Labelled rows of requests made in the window");
  const labels = new Counter({
    name: "switchyard_feedback_labels_total",
    help: "Feedback labels by result: joined to a capture, unknown request id, duplicate, invalid",
    labelNames: ["endpoint", "result"],
    registers,
  });
  for (const name of windows.endpointNames()) {
    if (endpoint !== undefined && name !== endpoint) continue;
    const a = windows.endpoint(name);
    if (!a) continue;
    for (const result of FEEDBACK_RESULTS) labels.inc({ endpoint: name, result }, a.labels[result]);
    for (const s of a.served_models) {
      for (const [window, w] of Object.entries(s.windows)) {
        const l = { endpoint: name, served_model: s.name, window };
        rows.set(l, w.labelled_rows);
        if (w.accuracy !== null) accuracy.set(l, w.accuracy);
        if (w.mae !== null) mae.set(l, w.mae);
        if (w.rmse !== null) rmse.set(l, w.rmse);
      }
    }
  }
}
