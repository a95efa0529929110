// The dashboard: polls the bridge's JSON API and renders endpoints (state, served models, traffic split, replicas,
// live throughput and latency), models, batch jobs, streams and nodes. It only reads; it never changes the cluster.
import { renderAccuracy } from "./accuracy.js";
import { AuthError, getJson, token } from "./api.js";
import { canarySection, forgetCanary, refreshCanary } from "./canary.js";
import { EndpointCharts } from "./charts.js";
import * as fmt from "./format.js";
import { shadowBlock } from "./shadow.js";

const TICK_MS = 2000;
/** The metrics window the charts follow: the live one. The tables follow the window picked on the page. */
const CHART_WINDOW = "1m";

/** What the page reads, and every how many ticks: the live numbers each tick, slower-moving things less often. */
const SOURCES = {
  endpoints: { path: "/api/2.0/serving-endpoints", every: 1 },
  metrics: { path: "/api/2.0/switchyard/metrics", every: 1 },
  batch: { path: "/api/2.0/switchyard/batch/jobs", every: 2 },
  streams: { path: "/api/2.0/switchyard/streams", every: 2 },
  nodes: { path: "/api/2.0/switchyard/nodes", every: 2 },
  models: { path: "/api/2.0/switchyard/models", every: 5 },
};

/** The last answer and the last error of each source. */
const data = {};
const errors = {};
/** Charts per endpoint; their series outlive re-renders of the tables. */
const charts = new Map();
let tick = 0;
let timer;
/** Bumped on every start and sign-out, so an answer from an earlier session is dropped. */
let session = 0;

const $ = (selector) => document.querySelector(selector);

/** An element with attributes and children; strings become text nodes, never markup. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) el.append(typeof c === "object" ? c : String(c));
  }
  return el;
}

/** Column headers; a header written `#Name` heads a numeric (right-aligned) column. */
function headRow(headers) {
  return h(
    "thead",
    {},
    h(
      "tr",
      {},
      headers.map((x) => (x.startsWith("#") ? h("th", { class: "num" }, x.slice(1)) : h("th", {}, x))),
    ),
  );
}

function table(headers, rows, emptyText) {
  if (rows.length === 0) return h("p", { class: "empty" }, emptyText);
  return h("table", {}, headRow(headers), h("tbody", {}, rows));
}

function showError(section, err) {
  section.querySelector("[data-error]").textContent = err ? `Could not load: ${err.message}` : "";
}

// --- Sign-in ---

function showSignIn(message) {
  session++;
  clearTimeout(timer);
  $("#dashboard").hidden = true;
  $("#signout").hidden = true;
  $("#status").textContent = "";
  $("#signin").hidden = false;
  $("#signin-message").textContent = message;
  $("#signin-form").elements.token.focus();
}

function start() {
  session++;
  tick = 0;
  clearTimeout(timer);
  $("#signin").hidden = true;
  $("#status").textContent = "Connecting…";
  void poll(session);
}

$("#signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.currentTarget.elements.token;
  const value = input.value.trim();
  if (!value) return;
  token.set(value);
  input.value = "";
  start();
});

/** The summary window ("1m" or "5m") the endpoint tables show. */
const tableWindow = () => $("#window").value;

$("#window").addEventListener("change", () => renderEndpoints());

$("#signout").addEventListener("click", () => {
  token.clear();
  showSignIn("Signed out.");
});

// --- Polling ---

/** Each source's answer or error, in order. */
async function fetchAll(sources) {
  const results = await Promise.allSettled(sources.map(([, s]) => getJson(s.path)));
  return sources.map(([name], i) => [name, results[i]]);
}

async function poll(mine) {
  const due = Object.entries(SOURCES).filter(([, s]) => tick % s.every === 0);
  // A session's first poll asks one thing first: if the token is missing or wrong, that is the only request
  // refused, rather than one per section.
  const first = tick === 0 ? await fetchAll(due.slice(0, 1)) : [];
  const denied = (results) =>
    results.find(([, r]) => r.status === "rejected" && r.reason instanceof AuthError);
  let results = first;
  if (!denied(first)) results = [...first, ...(await fetchAll(due.slice(first.length)))];
  tick++;
  if (mine !== session) return;
  const refused = denied(results);
  if (refused) {
    const err = refused[1].reason;
    const sent = token.get() !== null;
    token.clear();
    // A first visit to a cluster with auth on is not an error: just the form.
    showSignIn(sent || err.status !== 401 ? err.message : "");
    return;
  }
  for (const [name, r] of results) {
    if (r.status === "fulfilled") {
      data[name] = r.value;
      delete errors[name];
    } else {
      errors[name] = r.reason instanceof TypeError ? new Error("the bridge did not answer") : r.reason;
    }
  }
  // Scheduled before rendering, so that one answer the page cannot render never stops the polling.
  timer = setTimeout(() => void poll(mine), TICK_MS);
  $("#dashboard").hidden = false;
  $("#signout").hidden = token.get() === null;
  if (results.some(([name]) => name === "metrics") && !errors.metrics) pushCharts();
  render();
  $("#status").textContent = `Updated ${new Date().toLocaleTimeString(undefined, { hour12: false })}`;
}

function pushCharts() {
  const at = data.metrics.at;
  for (const m of data.metrics.endpoints ?? []) charts.get(m.name)?.push(at, m.windows?.[CHART_WINDOW]);
}

function render() {
  renderEndpoints();
  renderModels();
  renderBatch();
  renderStreams();
  renderNodes();
}

// --- Endpoints ---

const METRIC_HEADERS = ["#Requests", "#Errors", "#Req/s", "#p50 ms", "#p95 ms", "#p99 ms"];

/** The metric cells of one row (an endpoint's total or a served model), from one metrics window. */
function metricCells(window) {
  // A window without requests reports percentiles of 0: shown as none, not as 0 ms.
  const latency = window?.requests > 0 ? window.latency_ms : {};
  const errorsTotal = window ? Object.values(window.errors ?? {}).reduce((a, b) => a + b, 0) : undefined;
  const errorsTitle = window
    ? Object.entries(window.errors ?? {})
        .map(([code, n]) => `${code}: ${n}`)
        .join(", ")
    : undefined;
  return [
    h("td", { class: "num", "data-metric": "requests" }, fmt.count(window?.requests)),
    h(
      "td",
      { class: errorsTotal ? "num bad" : "num", "data-metric": "errors", title: errorsTitle || undefined },
      window ? `${errorsTotal} (${fmt.percent(window.error_rate)})` : fmt.count(undefined),
    ),
    h("td", { class: "num", "data-metric": "rps" }, fmt.rate(window?.rps)),
    h("td", { class: "num", "data-metric": "p50" }, fmt.ms(latency.p50)),
    h("td", { class: "num", "data-metric": "p95" }, fmt.ms(latency.p95)),
    h("td", { class: "num", "data-metric": "p99" }, fmt.ms(latency.p99)),
  ];
}

function servedOf(config) {
  return config?.served_entities ?? config?.served_models ?? [];
}

/**
 * Ready/desired replicas when the endpoint reports them (else the replicas reporting stats), with the
 * autoscaler's last reason on hover and what limited it, when something did.
 */
function replicasCell(served, measured) {
  const decision = served.autoscaler;
  const text = served.replicas
    ? `${served.replicas.ready}/${served.replicas.desired}`
    : measured?.replicas
      ? String(measured.replicas.ready)
      : fmt.count(undefined);
  return h(
    "td",
    { class: "num", "data-metric": "replicas", title: decision?.reason || undefined },
    text,
    decision?.limited_by ? h("span", { class: "note" }, ` (limited by ${decision.limited_by})`) : null,
  );
}

function endpointTable(ep, metrics) {
  const routes = ep.config?.traffic_config?.routes ?? [];
  const measuredBy = new Map((metrics?.served_models ?? []).map((s) => [s.name, s]));
  const rows = servedOf(ep.config).map((s) => {
    const model = s.entity_name ?? s.model_name;
    const version = s.entity_version ?? s.model_version;
    const alias = s.entity_alias ?? s.model_alias;
    const traffic = routes.find((r) => r.served_model_name === s.name)?.traffic_percentage;
    const measured = measuredBy.get(s.name);
    return h(
      "tr",
      { "data-served": s.name },
      h("td", {}, s.name),
      h("td", {}, `${model} v${version}`, alias ? h("span", { class: "alias" }, `@${alias}`) : null),
      h("td", { class: "num", "data-metric": "traffic" }, traffic === undefined ? "–" : `${traffic}%`),
      replicasCell(s, measured),
      h(
        "td",
        { class: "num", "data-metric": "in_flight" },
        fmt.count(measured?.in_flight),
        measured?.held ? h("span", { class: "note" }, ` +${measured.held} held`) : null,
      ),
      metricCells(measured?.windows?.[tableWindow()]),
    );
  });
  const total = h(
    "tr",
    { class: "total" },
    h("td", { colspan: 4 }, "Endpoint"),
    h(
      "td",
      { class: "num", "data-metric": "in_flight" },
      metrics ? String((metrics.served_models ?? []).reduce((a, s) => a + (s.in_flight ?? 0), 0)) : "–",
    ),
    metricCells(metrics?.windows?.[tableWindow()]),
  );
  return h(
    "table",
    {},
    headRow(["Served model", "Model", "#Traffic", "#Replicas", "#In flight", ...METRIC_HEADERS]),
    h("tbody", {}, rows),
    h("tfoot", {}, total),
  );
}

function endpointHeader(ep) {
  const updating = ep.state?.config_update && ep.state.config_update !== "NOT_UPDATING";
  return h(
    "header",
    {},
    h("h3", {}, ep.name),
    h(
      "span",
      { class: `state ${ep.state?.ready === "READY" ? "ok" : "warn"}`, "data-field": "state" },
      ep.state?.ready,
    ),
    updating ? h("span", { class: "state warn" }, ep.state.config_update) : null,
    ep.pending_config
      ? h("span", { class: "note" }, `updating to config ${ep.pending_config.config_version}`)
      : null,
    ep.state?.message ? h("span", { class: "note bad" }, ep.state.message) : null,
  );
}

function renderEndpoints() {
  const section = $("#endpoints");
  showError(
    section,
    errors.endpoints ?? (errors.metrics && { message: `metrics: ${errors.metrics.message}` }),
  );
  const list = section.querySelector(".list");
  const endpoints = data.endpoints?.endpoints ?? [];
  const metricsBy = new Map((data.metrics?.endpoints ?? []).map((m) => [m.name, m]));
  const existing = new Map(
    [...list.querySelectorAll("article[data-endpoint]")].map((el) => [el.dataset.endpoint, el]),
  );
  const ordered = endpoints.map((ep) => {
    let el = existing.get(ep.name);
    if (!el) {
      el = h(
        "article",
        { class: "endpoint", "data-endpoint": ep.name },
        h("header"),
        h("table"),
        h("div", { class: "canary" }),
        h("div", { class: "shadow" }),
        h("div", { class: "charts" }),
      );
      list.append(el);
      charts.set(ep.name, new EndpointCharts(el.querySelector(".charts")));
    }
    existing.delete(ep.name);
    const metrics = metricsBy.get(ep.name);
    el.querySelector(":scope > header").replaceWith(endpointHeader(ep));
    el.querySelector(":scope > table, :scope > p").replaceWith(endpointTable(ep, metrics));
    el.querySelector(":scope > .canary").replaceWith(canarySection(ep.name, h));
    // Only endpoints that say they have a canary are asked for it (no 404 per endpoint and tick).
    if (ep.canary) refreshCanary(ep.name, renderEndpoints);
    else forgetCanary(ep.name);
    el.querySelector(":scope > div.shadow").replaceWith(shadowBlock(metrics, tableWindow(), h));
    renderAccuracy(el, metrics?.accuracy);
    return el;
  });
  for (const [name, el] of existing) {
    forgetCanary(name);
    charts.get(name)?.destroy();
    charts.delete(name);
    el.remove();
  }
  list.append(...ordered);
  section.querySelector("[data-empty]").hidden = endpoints.length > 0 || !data.endpoints;
}

// --- Models, batch jobs, streams, nodes ---

function renderModels() {
  const section = $("#models");
  showError(section, errors.models);
  if (!data.models) return;
  const rows = data.models.models.flatMap((m) =>
    [...m.versions].reverse().map((v, i) =>
      h(
        "tr",
        { "data-model": m.name, "data-version": v.version },
        h("td", {}, i === 0 ? m.name : ""),
        h("td", { class: "num" }, v.version),
        h("td", {}, v.flavor),
        h(
          "td",
          {},
          v.aliases.map((a) => h("span", { class: "alias" }, `@${a}`)),
        ),
        h("td", { class: "num" }, fmt.bytes(v.size_bytes)),
        h("td", {}, fmt.time(v.created_at)),
      ),
    ),
  );
  section
    .querySelector(".list")
    .replaceChildren(
      table(["Model", "#Version", "Flavor", "Aliases", "#Size", "Registered"], rows, "No models registered."),
    );
}

function renderBatch() {
  const section = $("#batch");
  showError(section, errors.batch);
  if (!data.batch) return;
  const jobs = [...data.batch.jobs].sort((a, b) => b.created_at - a.created_at);
  const rows = jobs.map((j) => {
    const p = j.progress;
    const seconds = j.started_at ? ((j.finished_at ?? Date.now()) - j.started_at) / 1000 : 0;
    return h(
      "tr",
      { "data-job": j.id },
      h("td", { class: "mono" }, j.id),
      h("td", {}, `${j.model.name} v${j.model.version}`),
      h("td", {}, h("span", { class: `state ${stateClass(j.state)}` }, j.state)),
      h(
        "td",
        { class: "progress" },
        h("progress", { max: Math.max(j.total_rows, 1), value: p.rows_done }),
        ` ${p.rows_done}/${j.total_rows} rows · ${p.shards_done}/${j.shards} shards`,
        p.shards_failed ? h("span", { class: "bad" }, ` · ${p.shards_failed} failed`) : null,
        p.error_rows ? h("span", { class: "bad" }, ` · ${p.error_rows} rows skipped`) : null,
      ),
      h("td", { class: "num" }, seconds > 0 ? fmt.rate(p.rows_done / seconds) : "–"),
      h("td", {}, fmt.time(j.created_at)),
    );
  });
  section
    .querySelector(".list")
    .replaceChildren(
      table(["Job", "Model", "State", "Progress", "#Rows/s", "Created"], rows, "No batch jobs."),
    );
}

function stateClass(state) {
  if (["READY", "RUNNING", "SUCCEEDED"].includes(state)) return "ok";
  if (["FAILED", "CANCELLED", "NOT_READY"].includes(state)) return "bad";
  return "warn";
}

function renderStreams() {
  const section = $("#streams");
  showError(section, errors.streams);
  if (!data.streams) return;
  const rows = data.streams.streams.map((s) => {
    const st = s.status;
    const scorer = st.model
      ? `${st.model.name} v${st.model.version}`
      : (s.request.model ?? s.request.endpoint ?? "–");
    const sink = s.sink.kind === "subject" ? s.sink.subject : s.sink.dir;
    return h(
      "tr",
      { "data-stream": s.name },
      h("td", {}, s.name),
      h("td", {}, h("span", { class: `state ${stateClass(s.state)}` }, s.state)),
      h("td", {}, scorer),
      h("td", { class: "mono" }, `${s.source.stream} → ${sink}`),
      h("td", { class: "num", "data-metric": "lag" }, fmt.count(st.lag)),
      h("td", { class: "num" }, fmt.rate(st.events_per_s)),
      h("td", { class: "num" }, fmt.ms(st.latency_ms.p50)),
      h("td", { class: "num" }, fmt.ms(st.latency_ms.p99)),
      h("td", { class: "num" }, `${st.results} / ${st.dlq} / ${st.late}`),
    );
  });
  section
    .querySelector(".list")
    .replaceChildren(
      table(
        [
          "Stream",
          "State",
          "Scores with",
          "Source → sink",
          "#Lag",
          "#Events/s",
          "#p50 ms",
          "#p99 ms",
          "#Results / DLQ / late",
        ],
        rows,
        "No streams.",
      ),
    );
}

function workText(w) {
  if (w.kind === "replica")
    return `replica ${w.endpoint}/${w.served_model} (${w.model_name} v${w.model_version})`;
  if (w.kind === "batch_worker") return `batch worker ${w.job_id} (${w.model_name} v${w.model_version})`;
  return `stream scorer ${w.job_id}`;
}

function renderNodes() {
  const section = $("#nodes");
  showError(section, errors.nodes);
  if (!data.nodes) return;
  const rows = data.nodes.nodes.map((n) =>
    h(
      "tr",
      { "data-node": n.node_id },
      h("td", { class: "mono" }, n.node_id),
      h("td", {}, n.host ?? "–"),
      h("td", {}, h("span", { class: `state ${n.live ? "ok" : "bad"}` }, n.live ? "LIVE" : "GONE")),
      h("td", { class: "num" }, `${n.threads.assigned}/${n.threads.budget ?? "–"}`),
      h(
        "td",
        {},
        n.work.length === 0
          ? "idle"
          : h(
              "ul",
              { class: "work" },
              n.work.map((w) =>
                h(
                  "li",
                  { title: w.message || undefined },
                  h("span", { class: `state ${stateClass(w.state)}` }, w.state),
                  ` ${workText(w)} · ${w.threads} thr`,
                ),
              ),
            ),
      ),
    ),
  );
  section
    .querySelector(".list")
    .replaceChildren(table(["Node", "Host", "Heartbeat", "#Threads", "Runs"], rows, "No nodes."));
}

start();
