// Fuzzing the invocation route and the NATS invoke subject with random and mutated bodies for a bounded time.
// Every answer must be a clean 4xx with a JSON Databricks error body (or a 200 when a mutation happens to be
// valid), never a 5xx and never a hang; afterwards the same replica process still serves its reference.
// The PRNG is seeded: the seed is printed, and SWITCHYARD_FUZZ_SEED=<seed> replays the same bodies.
import path from "node:path";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { connectNats } from "@switchyard/nats";
import { clusterNames, ERROR_CATALOG, isErrorCode } from "@switchyard/protocol";
import { buildLinear, linearPredict, tempDir, writeTempModel } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, startUp, type Up } from "./helpers/up.js";

const LINEAR = { inputs: 3, sigmoid: false, bias: [0.5] };
const MODEL = buildLinear(LINEAR);
const ROWS = [
  [1, 2, 3],
  [-0.5, 0.25, 8],
];
/** How long each target is fuzzed. */
const FUZZ_MS = 10_000;
/** Requests in flight at once against each target. */
const CONCURRENCY = 4;
/** No single request may take longer than this: a hang fails the test instead of stalling it. */
const REQUEST_TIMEOUT_MS = 20_000;

const seed = Number(process.env.SWITCHYARD_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`fuzz seed ${seed} (replay with SWITCHYARD_FUZZ_SEED=${seed})`);

/** mulberry32: a small, well-mixed 32-bit PRNG, so a seed replays the same run. */
function prng(s: number) {
  let a = s >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof prng>;

const VALID_BODIES: string[] = [
  JSON.stringify({ dataframe_split: { columns: ["a", "b", "c"], data: ROWS } }),
  JSON.stringify({ dataframe_split: { index: [0, 1], columns: ["a", "b", "c"], data: ROWS } }),
  JSON.stringify({ dataframe_records: ROWS.map(([a, b, c]) => ({ a, b, c })) }),
  JSON.stringify({ instances: ROWS }),
  JSON.stringify({ inputs: ROWS }),
  JSON.stringify({ inputs: { input: ROWS } }),
  JSON.stringify({ instances: ROWS.map((r) => ({ input: r })) }),
  JSON.stringify({ inputs: ROWS, params: { temperature: 0.5, tags: ["x"], nested: { k: 1 } } }),
];

const WEIRD_VALUES = [
  "1e309",
  "-1e309",
  "1e-400",
  "123456789012345678901234567890123456789",
  '"NaN"',
  '"Infinity"',
  "NaN",
  "null",
  "true",
  "{}",
  "[]",
  '"\\ud800"',
  '"\\u0000"',
  '"\u202e\u200b🙂"',
  `"${"x".repeat(10_000)}"`,
  "-0",
  "0.1e",
  "[[[[[[[[[[]]]]]]]]]]",
];
const UNICODE = ["\u0000", "\ud800", "\udfff", "\u202e", "\u200b", "🙂", "é", "\uffff", "\u2028", '"', "\\"];

/** A random JSON-ish value built from scratch, with bounded depth and size. */
function randomValue(rng: Rng, depth = 0): unknown {
  const k = rng.int(depth > 4 ? 5 : 8);
  switch (k) {
    case 0:
      return rng.next() * 10 ** rng.int(40) * (rng.next() < 0.5 ? -1 : 1);
    case 1:
      return rng.pick(["", "a", "NaN", "dataframe_split", "inputs", rng.pick(UNICODE)]);
    case 2:
      return rng.next() < 0.5;
    case 3:
      return null;
    case 4:
      return rng.int(1000) - 500;
    case 5:
    case 6:
      return Array.from({ length: rng.int(5) }, () => randomValue(rng, depth + 1));
    default: {
      const keys = [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
        "params",
        "columns",
        "data",
        "index",
        "input",
        "a",
      ];
      return Object.fromEntries(
        Array.from({ length: rng.int(4) }, () => [rng.pick(keys), randomValue(rng, depth + 1)]),
      );
    }
  }
}

/** A valid body mutated once or a few times, or a random one. */
function fuzzBody(rng: Rng): string {
  if (rng.next() < 0.15) return JSON.stringify(randomValue(rng));
  let body = rng.pick(VALID_BODIES);
  const rounds = 1 + rng.int(3);
  for (let i = 0; i < rounds; i++) {
    const at = rng.int(body.length + 1);
    switch (rng.int(9)) {
      case 0: {
        // Flip a byte to a random printable character.
        body = body.slice(0, at) + String.fromCharCode(32 + rng.int(95)) + body.slice(at + 1);
        break;
      }
      case 1:
        body = body.slice(0, at);
        break;
      case 2: {
        // A duplicate key: the same input key twice, or params twice.
        const key = rng.pick(['"inputs"', '"instances"', '"params"', '"dataframe_split"', '"columns"']);
        body = body.replace(/^\{/, `{${key}: ${rng.pick(WEIRD_VALUES)}, `);
        break;
      }
      case 3: {
        // Replace a number with a huge one, a NaN string, a wrong type or odd unicode.
        const numbers = [...body.matchAll(/-?\d+(\.\d+)?/g)];
        if (numbers.length === 0) break;
        const m = rng.pick(numbers);
        // Now and then a value nested 100,000 deep, which once overflowed the replica's stack.
        const d = rng.pick([2, 33, 100_000]);
        const value = rng.next() < 0.2 ? `${"[".repeat(d)}1${"]".repeat(d)}` : rng.pick(WEIRD_VALUES);
        body = body.slice(0, m.index) + value + body.slice(m.index! + m[0].length);
        break;
      }
      case 4:
        body = body.slice(0, at) + rng.pick(UNICODE) + body.slice(at);
        break;
      case 5: {
        // Swap a key name for another input key or an unknown one.
        const keys = [...body.matchAll(/"[a-z_]+"(?=:)/g)];
        if (keys.length === 0) break;
        const m = rng.pick(keys);
        const to = rng.pick([
          '"inputs"',
          '"instances"',
          '"dataframe_records"',
          '"params"',
          '"data"',
          '"__proto__"',
          '"x"',
        ]);
        body = body.slice(0, m.index) + to + body.slice(m.index! + m[0].length);
        break;
      }
      case 6: {
        // Nesting: wrap a slice of the body in many brackets.
        const d = rng.next() < 0.05 ? 100_000 : 1 + rng.int(64);
        body = body.slice(0, at) + "[".repeat(d) + "1" + "]".repeat(d) + body.slice(at);
        break;
      }
      case 7: {
        // Duplicate a run of bytes.
        const len = rng.int(40);
        body = body.slice(0, at + len) + body.slice(at, at + len) + body.slice(at + len);
        break;
      }
      default: {
        // Random bytes, including control characters.
        const junk = Array.from({ length: 1 + rng.int(8) }, () => String.fromCharCode(rng.int(256))).join("");
        body = body.slice(0, at) + junk + body.slice(at);
      }
    }
  }
  return body;
}

interface Outcome {
  status: number;
  body: string;
}

/** Why an answer is not acceptable, or null when it is a 200 or a clean 4xx with a Databricks error body. */
function problemOf(o: Outcome): string | null {
  let json: any;
  try {
    json = JSON.parse(o.body);
  } catch {
    return `status ${o.status} with a body that is not JSON: ${o.body.slice(0, 200)}`;
  }
  if (o.status === 200)
    return Array.isArray(json?.predictions) ? null : `200 without predictions: ${o.body.slice(0, 200)}`;
  if (o.status < 400 || o.status >= 500) return `status ${o.status}: ${o.body.slice(0, 300)}`;
  const code: unknown = json?.error_code;
  if (!isErrorCode(code) || typeof json.message !== "string" || json.message === "") {
    return `status ${o.status} without a Databricks error body: ${o.body.slice(0, 300)}`;
  }
  if (ERROR_CATALOG[code].status !== o.status) return `status ${o.status} with error_code ${code}`;
  return null;
}

/** Runs `one` with CONCURRENCY workers until FUZZ_MS has passed; returns counts by status and the failures. */
async function fuzz(rng: Rng, one: (body: string, rng: Rng) => Promise<Outcome>) {
  const until = Date.now() + FUZZ_MS;
  const statuses: Record<number, number> = {};
  const failures: string[] = [];
  const worker = async () => {
    while (Date.now() < until) {
      const body = fuzzBody(rng);
      let outcome: Outcome;
      try {
        outcome = await one(body, rng);
      } catch (err) {
        failures.push(`${(err as Error).message} for body ${JSON.stringify(body.slice(0, 300))}`);
        continue;
      }
      statuses[outcome.status] = (statuses[outcome.status] ?? 0) + 1;
      const problem = problemOf(outcome);
      if (problem) failures.push(`${problem} for body ${JSON.stringify(body.slice(0, 300))}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { statuses, failures };
}

describe(`fuzzing invocations (seed ${seed})`, () => {
  let up: Up;
  let c: ReturnType<typeof clusterClient>;
  let pid: number;
  const reference = linearPredict(LINEAR, ROWS).map((r) => r[0]!);

  /** The replica that served before the fuzzing still serves, in the same process, the reference values. */
  const stillServing = async () => {
    const r = await c.invoke("fz", { inputs: ROWS });
    expect(r.status).toBe(200);
    const got = r.json.predictions as number[];
    expect(got).toHaveLength(reference.length);
    got.forEach((v, i) => {
      expect(Math.abs(v - reference[i]!)).toBeLessThan(1e-5);
    });
    expect(await c.replicaPids("fz")).toEqual([pid]);
  };

  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-fuzz-"), "data"));
    c = clusterClient(up);
    const reg = await cli(["models", "register", "fz", writeTempModel(MODEL), "--json"], {
      SWITCHYARD_DATA_DIR: up.dataDir,
    });
    expect(reg.stderr).toBe("");
    const created = await c.call("POST", "/api/2.0/serving-endpoints", {
      name: "fz",
      config: { served_entities: [{ entity_name: "fz", entity_version: "1", workload_size: "Small" }] },
    });
    expect(created.status).toBe(200);
    await c.waitReady("fz");
    const pids = await c.replicaPids("fz");
    expect(pids).toHaveLength(1);
    pid = pids[0]!;
    await stillServing();
  });

  afterAll(async () => {
    if (up) expect(await up.stop()).toBe(0);
  });

  it("answers every mutated body on /serving-endpoints/<n>/invocations with a 200 or a clean 4xx", async () => {
    const rng = prng(seed);
    const { statuses, failures } = await fuzz(rng, async (body, r) => {
      const csv = r.next() < 0.1;
      const res = await fetch(`${c.http}/serving-endpoints/fz/invocations`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${c.token}`,
          "content-type": csv ? "text/csv" : "application/json",
        },
        body: csv ? `a,b,c\n${body}\n` : body,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      return { status: res.status, body: await res.text() };
    });
    console.log(`HTTP fuzz (seed ${seed}): answers by status ${JSON.stringify(statuses)}`);
    expect(failures.slice(0, 5)).toEqual([]);
    // The run did something: bodies were answered, and both refusals and some valid mutations were seen.
    expect(Object.values(statuses).reduce((a, b) => a + b, 0)).toBeGreaterThan(20);
    expect(Object.keys(statuses).some((s) => Number(s) >= 400)).toBe(true);
    await stillServing();
  }, 60_000);

  it("answers every mutated body on the NATS invoke subject with a reply or a clean 4xx error", async () => {
    const rng = prng(seed ^ 0x5bd1e995);
    const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
    const subject = clusterNames(up.info().cluster).subjects.invoke("fz");
    try {
      const { statuses, failures } = await fuzz(rng, async (body, r) => {
        // Without a content type the replica tells JSON from msgpack by the first byte: fuzz that path too.
        const h = natsHeaders();
        if (r.next() < 0.7) h.set("content-type", "application/json");
        const reply = await nc.request(subject, body, { timeout: REQUEST_TIMEOUT_MS, headers: h });
        const code = reply.headers?.get("x-switchyard-error-code");
        const status = !code ? 200 : isErrorCode(code) ? ERROR_CATALOG[code].status : 500;
        return { status, body: reply.string() };
      });
      console.log(`NATS fuzz (seed ${seed}): answers by status ${JSON.stringify(statuses)}`);
      expect(failures.slice(0, 5)).toEqual([]);
      expect(Object.values(statuses).reduce((a, b) => a + b, 0)).toBeGreaterThan(20);
    } finally {
      await nc.close();
    }
    await stillServing();
  }, 60_000);
});
