// The shadow traffic block of an endpoint: per shadow served model, the mirrors sent and dropped, their errors
// and latency, and how often its predictions agreed with the primary's, over the window picked on the page.
import * as fmt from "./format.js";

const HEADERS = ["Shadow", "#Mirrored", "#Dropped", "#Errors", "#p50 ms", "#p99 ms", "#Agreement"];

/**
 * The block for an endpoint's metrics (`h` builds elements as the page does); an empty placeholder when nothing
 * is mirrored, so the page can replace it on the next tick.
 */
export function shadowBlock(metrics, window, h) {
  const shadows = metrics?.shadow ?? [];
  if (shadows.length === 0) return h("div", { class: "shadow" });
  const rows = shadows.map((s) => {
    const w = s.windows?.[window];
    const errors = w ? Object.values(w.errors ?? {}).reduce((a, b) => a + b, 0) : undefined;
    const errorsTitle = w
      ? Object.entries(w.errors ?? {})
          .map(([code, n]) => `${code}: ${n}`)
          .join(", ")
      : undefined;
    const a = w?.agreement;
    return h(
      "tr",
      { "data-shadow": s.served_model_name },
      h("td", {}, s.served_model_name),
      h("td", { class: "num", "data-metric": "mirrored" }, fmt.count(w?.mirrored)),
      h("td", { class: w?.dropped ? "num bad" : "num", "data-metric": "dropped" }, fmt.count(w?.dropped)),
      h(
        "td",
        { class: errors ? "num bad" : "num", "data-metric": "errors", title: errorsTitle || undefined },
        w ? `${errors} (${fmt.percent(w.error_rate)})` : fmt.count(undefined),
      ),
      h("td", { class: "num", "data-metric": "p50" }, w?.mirrored ? fmt.ms(w.latency_ms.p50) : fmt.ms()),
      h("td", { class: "num", "data-metric": "p99" }, w?.mirrored ? fmt.ms(w.latency_ms.p99) : fmt.ms()),
      h(
        "td",
        {
          class: "num",
          "data-metric": "agreement",
          title: a ? `${a.agreed} of ${a.compared} rows` : undefined,
        },
        a?.compared ? fmt.percent(a.rate) : fmt.count(undefined),
      ),
    );
  });
  return h(
    "div",
    { class: "shadow" },
    h("h4", {}, "Shadow traffic"),
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          HEADERS.map((x) => (x.startsWith("#") ? h("th", { class: "num" }, x.slice(1)) : h("th", {}, x))),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}
