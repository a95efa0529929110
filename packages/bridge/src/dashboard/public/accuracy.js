// Live accuracy on an endpoint's card: per served model, labelled requests and rows, accuracy, MAE and RMSE over
// the windows by request time, and the endpoint's labels by how the join settled them (unknown ids, duplicates).
// It only renders what the metrics summary carries (`accuracy`); without labels the block is absent.
import * as fmt from "./format.js";

const WINDOWS = ["1h", "24h"];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(typeof c === "object" ? c : String(c));
  return e;
}

const num = (v) => (v === null || v === undefined ? "–" : v.toPrecision(4).replace(/\.?0+$/, ""));

function block(accuracy) {
  const head = el(
    "tr",
    {},
    ...["Window", "Served model"].map((x) => el("th", {}, x)),
    ...["Requests", "Rows", "Accuracy", "MAE", "RMSE"].map((x) => el("th", { class: "num" }, x)),
  );
  const rows = [];
  for (const window of WINDOWS) {
    for (const s of accuracy.served_models) {
      const w = s.windows[window];
      rows.push(
        el(
          "tr",
          { "data-served": s.name, "data-window": window },
          el("td", {}, window),
          el("td", {}, s.name),
          el("td", { class: "num" }, fmt.count(w.labelled_requests)),
          el("td", { class: "num" }, fmt.count(w.labelled_rows)),
          el("td", { class: "num", "data-metric": "accuracy" }, fmt.percent(w.accuracy)),
          el("td", { class: "num", "data-metric": "mae" }, num(w.mae)),
          el("td", { class: "num", "data-metric": "rmse" }, num(w.rmse)),
        ),
      );
    }
  }
  const l = accuracy.labels;
  return el(
    "section",
    { class: "accuracy" },
    el(
      "p",
      { class: "note" },
      `Accuracy from feedback labels (by request time): ${l.received} labels, ${l.joined} joined, ` +
        `${l.unknown} unknown request ids, ${l.duplicate} duplicates, ${l.invalid} not comparable`,
    ),
    el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)),
  );
}

/** Puts the accuracy block on an endpoint's card before its charts, replaces it, or removes it. */
export function renderAccuracy(card, accuracy) {
  const old = card.querySelector(":scope > section.accuracy");
  if (!accuracy) {
    old?.remove();
    return;
  }
  const next = block(accuracy);
  if (old) old.replaceWith(next);
  else card.querySelector(":scope > .charts").before(next);
}
