// Live charts of one endpoint: throughput and p50/p95/p99 latency over the last minutes, one point per poll of
// the metrics summary. The series live in the page only (a reload starts them again).
import uPlot from "./uPlot.esm.js";

/** Ten minutes of points at one poll every two seconds. */
const MAX_POINTS = 300;
const HEIGHT = 150;

const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString(undefined, { hour12: false });

const axes = (unit) => [
  // Ticks at whole seconds at the least: polls are two seconds apart.
  {
    stroke: "#666",
    grid: { stroke: "#eee" },
    incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600],
    values: (_u, ticks) => ticks.map(clock),
  },
  {
    stroke: "#666",
    grid: { stroke: "#eee" },
    size: 60,
    values: (_u, ticks) => ticks.map((t) => `${t} ${unit}`),
  },
];

function chart(title, unit, series, target) {
  return new uPlot(
    {
      title,
      width: Math.max(target.clientWidth, 280),
      height: HEIGHT,
      series: [{}, ...series.map((s) => ({ ...s, width: 2, spanGaps: false }))],
      axes: axes(unit),
      scales: { y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    },
    [[], ...series.map(() => [])],
    target,
  );
}

export class EndpointCharts {
  constructor(container) {
    this.container = container;
    this.x = [];
    this.rps = [];
    this.p50 = [];
    this.p95 = [];
    this.p99 = [];
    const left = document.createElement("div");
    const right = document.createElement("div");
    left.className = "chart";
    right.className = "chart";
    container.append(left, right);
    this.throughput = chart("Throughput (1 min)", "/s", [{ label: "requests/s", stroke: "#2563eb" }], left);
    this.latency = chart(
      "Latency (1 min)",
      "ms",
      [
        { label: "p50", stroke: "#16a34a" },
        { label: "p95", stroke: "#d97706" },
        { label: "p99", stroke: "#dc2626" },
      ],
      right,
    );
    this.resize = new ResizeObserver(() => {
      this.throughput.setSize({ width: Math.max(left.clientWidth, 280), height: HEIGHT });
      this.latency.setSize({ width: Math.max(right.clientWidth, 280), height: HEIGHT });
    });
    this.resize.observe(container);
  }

  /** One point: the summary's time and the endpoint's one-minute window. */
  push(at, window) {
    // No requests in the window: a gap in the latency lines, not a drop to 0 ms.
    const latency = window?.requests > 0 ? window.latency_ms : {};
    this.x.push(at / 1000);
    this.rps.push(window?.rps ?? null);
    this.p50.push(latency.p50 ?? null);
    this.p95.push(latency.p95 ?? null);
    this.p99.push(latency.p99 ?? null);
    for (const s of [this.x, this.rps, this.p50, this.p95, this.p99]) {
      if (s.length > MAX_POINTS) s.shift();
    }
    // How many points the charts hold, for people and tests inspecting the page.
    this.container.dataset.points = String(this.x.length);
    this.throughput.setData([this.x, this.rps]);
    this.latency.setData([this.x, this.p50, this.p95, this.p99]);
  }

  destroy() {
    this.resize.disconnect();
    this.throughput.destroy();
    this.latency.destroy();
  }
}
