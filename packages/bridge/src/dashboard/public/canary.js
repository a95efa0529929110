// The endpoint view's staged canary: where it stands on its stages, each guard against its limit, and the
// history with its reasons, from `GET /api/2.0/switchyard/endpoints/{name}/rollout`. An endpoint without a
// canary (404) shows nothing. Read-only, as the rest of the page.
import { ApiError, getJson } from "./api.js";
import * as fmt from "./format.js";

/** How often one endpoint's canary is asked for again (the page re-renders more often than that). */
const REFRESH_MS = 2000;

/** endpoint → { view (null: none), error, at }: the last answer, kept across re-renders. */
const known = new Map();
const asking = new Set();

const rolloutPath = (endpoint) => `/api/2.0/switchyard/endpoints/${encodeURIComponent(endpoint)}/rollout`;

/** Asks for the endpoint's canary unless it was asked for lately; `changed` runs when an answer arrives. */
export function refreshCanary(endpoint, changed) {
  const last = known.get(endpoint);
  if (asking.has(endpoint) || (last && Date.now() - last.at < REFRESH_MS)) return;
  asking.add(endpoint);
  getJson(rolloutPath(endpoint))
    .then(
      (view) => known.set(endpoint, { view, error: undefined, at: Date.now() }),
      (err) => {
        const none = err instanceof ApiError && err.status === 404;
        known.set(endpoint, {
          view: none ? null : last?.view,
          error: none ? undefined : err,
          at: Date.now(),
        });
      },
    )
    .finally(() => {
      asking.delete(endpoint);
      changed();
    });
}

/** Forgets an endpoint that went away. */
export function forgetCanary(endpoint) {
  known.delete(endpoint);
}

const GUARD_NAMES = {
  retryable_error_rate: "Retryable errors",
  non_retryable_error_rate: "Non-retryable errors",
  p95_latency_ratio: "p95 vs champion",
  p99_latency_ratio: "p99 vs champion",
  accuracy_ratio: "Accuracy vs champion",
};

const PHASE_CLASS = { running: "ok", paused: "warn", promoted: "ok", rolled_back: "bad", aborted: "warn" };

/** A guard's value as people read it: rates as percentages, ratios as `1.05×`. */
function guardValue(guard, value) {
  if (value === null || value === undefined) return "–";
  return guard.endsWith("_error_rate") ? fmt.percent(value) : `${value}×`;
}

/** The stages as a bar: passed ones filled, the current one marked, a rollback's stage flagged. */
function stageBar(v, h) {
  const over = v.phase === "promoted" || v.phase === "rolled_back" || v.phase === "aborted";
  return h(
    "ol",
    { class: "stages", "data-field": "stages" },
    v.stages.map((p, i) => {
      let state = "todo";
      if (i < v.stage || (v.phase === "promoted" && i === v.stage)) state = "done";
      else if (i === v.stage) state = over ? (v.phase === "rolled_back" ? "failed" : "stopped") : "current";
      return h("li", { class: state, title: `stage ${i + 1}: ${p}%` }, `${p}%`);
    }),
  );
}

/** The canary of one endpoint, or an empty placeholder when it has none (or it is not known yet). */
export function canarySection(endpoint, h) {
  const entry = known.get(endpoint);
  const v = entry?.view;
  if (!v) {
    return entry?.error
      ? h("div", { class: "canary" }, h("p", { class: "error" }, `canary: ${entry.error.message}`))
      : h("div", { class: "canary", hidden: true });
  }
  const active = v.phase === "running" || v.phase === "paused";
  const guards = v.guards.map((g) =>
    h(
      "tr",
      { "data-guard": g.guard },
      h("td", {}, GUARD_NAMES[g.guard] ?? g.guard),
      h(
        "td",
        {},
        h(
          "span",
          { class: `state ${g.state === "ok" ? "ok" : g.state === "failed" ? "bad" : "warn"}` },
          g.state,
        ),
      ),
      h("td", { class: "num", "data-field": "value" }, guardValue(g.guard, g.value)),
      h(
        "td",
        { class: "num", "data-field": "limit" },
        `${g.guard === "accuracy_ratio" ? "≥" : "≤"} ${guardValue(g.guard, g.limit)}`,
      ),
      h("td", { class: "note" }, g.note),
    ),
  );
  const history = [...v.history]
    .reverse()
    .map((e) =>
      h(
        "li",
        { "data-event": e.event },
        h("span", { class: "note" }, fmt.time(e.at)),
        " ",
        h(
          "span",
          { class: `state ${e.event === "rolled_back" ? "bad" : e.event === "promoted" ? "ok" : "warn"}` },
          e.event,
        ),
        " ",
        e.message,
      ),
    );
  return h(
    "div",
    { class: "canary", "data-phase": v.phase },
    h(
      "div",
      { class: "heading" },
      h("h4", {}, "Canary"),
      h(
        "span",
        { class: `state ${PHASE_CLASS[v.phase] ?? "warn"}`, "data-field": "phase" },
        v.phase.replace("_", " "),
      ),
      h("span", {}, `${v.challenger} at ${v.percent}% against ${v.champion}`),
      active
        ? h(
            "span",
            { class: "note" },
            `hold ${Math.round(v.hold.elapsed_ms / 1000)} s of ${Math.round(v.hold.duration_ms / 1000)} s, ` +
              `${v.hold.requests} of ${v.hold.min_requests} requests`,
          )
        : null,
    ),
    stageBar(v, h),
    h("p", { class: "note", "data-field": "message" }, v.message),
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Guard"),
          h("th", {}, "State"),
          h("th", { class: "num" }, "Value"),
          h("th", { class: "num" }, "Limit"),
          h("th", {}, "From"),
        ),
      ),
      h("tbody", {}, guards),
    ),
    h("ul", { class: "history" }, history),
  );
}
