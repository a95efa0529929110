// A steady request load for fault tests: loops that send one request after another until stopped and sort every
// outcome the way a client must: ok (the reference answer), retryable (an error the catalog marks retryable, or a
// connection refused or reset before any answer: a client sends those again, inference being idempotent), or
// failed (anything else: a wrong answer, a non-retryable error, no answer by the client's own timeout).
import type { SwitchyardClient } from "@switchyard/client";
import { ERROR_CATALOG, isErrorCode, SwitchyardError } from "@switchyard/protocol";
import { eventually } from "@switchyard/testkit";

export interface Outcomes {
  ok: number;
  retryable: number;
  failed: number;
  /** What failed, for the assertion's message. */
  failures: string[];
  /** Retryable outcomes by error code (`CONNECTION` for a refused or reset connection). */
  retryableCodes: Record<string, number>;
  /** The longest time one request took, ok or not. */
  slowestMs: number;
}

export const noOutcomes = (): Outcomes => ({
  ok: 0,
  retryable: 0,
  failed: 0,
  failures: [],
  retryableCodes: {},
  slowestMs: 0,
});

/** What happened between two snapshots of the same counters. */
export function since(before: Outcomes, now: Outcomes): Outcomes {
  const codes: Record<string, number> = {};
  for (const [k, v] of Object.entries(now.retryableCodes)) {
    const d = v - (before.retryableCodes[k] ?? 0);
    if (d > 0) codes[k] = d;
  }
  return {
    ok: now.ok - before.ok,
    retryable: now.retryable - before.retryable,
    failed: now.failed - before.failed,
    failures: now.failures.slice(before.failures.length),
    retryableCodes: codes,
    slowestMs: now.slowestMs,
  };
}

export const snapshot = (o: Outcomes): Outcomes => ({
  ...o,
  failures: [...o.failures],
  retryableCodes: { ...o.retryableCodes },
});

export const describeOutcomes = (o: Outcomes): string =>
  `ok=${o.ok} retryable=${o.retryable}${o.retryable ? ` ${JSON.stringify(o.retryableCodes)}` : ""} failed=${o.failed}`;

/** Connection errors a client retries: nothing was answered, and the request is idempotent. */
const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "EHOSTUNREACH"]);

function connectionCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: string } }).cause;
  return cause?.code && CONNECTION_CODES.has(cause.code) ? cause.code : undefined;
}

export interface Load {
  readonly outcomes: Outcomes;
  /** Resolves once `n` more requests were answered correctly. */
  answered(n: number, what: string, ms?: number): Promise<void>;
  stop(): Promise<void>;
}

type Accept = (predictions: unknown) => boolean;

function record(
  out: Outcomes,
  startedAt: number,
  verdict: { ok: true } | { retryable: string } | { failed: string },
) {
  out.slowestMs = Math.max(out.slowestMs, Date.now() - startedAt);
  if ("ok" in verdict) out.ok++;
  else if ("retryable" in verdict) {
    out.retryable++;
    out.retryableCodes[verdict.retryable] = (out.retryableCodes[verdict.retryable] ?? 0) + 1;
  } else {
    out.failed++;
    out.failures.push(verdict.failed);
  }
}

function verdictOf(status: number, json: { predictions?: unknown; error_code?: string }, accept: Accept) {
  if (status === 200 && accept(json.predictions)) return { ok: true } as const;
  if (isErrorCode(json.error_code) && ERROR_CATALOG[json.error_code].retryable) {
    return { retryable: json.error_code } as const;
  }
  return { failed: `${status} ${JSON.stringify(json).slice(0, 300)}` } as const;
}

export interface LoadOptions {
  /** `POST …/invocations` URL through a bridge, and its headers (the bearer token). */
  http?: { url: string; headers: Record<string, string>; loops: number };
  /** SDK loops: `client.invoke(endpoint, …)` over NATS. */
  sdk?: { client: SwitchyardClient; endpoint: string; loops: number };
  /** The MLflow body every request sends. */
  body: unknown;
  /** Whether a reply's `predictions` is a right answer (more than one may be, during a rollout). */
  accept: Accept;
  /** Each request's deadline, sent to the cluster; the client gives up 15 s after it. */
  deadlineMs: number;
}

/** Starts the loops at once; `stop()` lets every request in flight end and resolves when all have. */
export function startLoad(opts: LoadOptions): Load {
  const out = noOutcomes();
  let stopped = false;
  const text = JSON.stringify(opts.body);
  const viaHttp = async (http: NonNullable<LoadOptions["http"]>) => {
    while (!stopped) {
      const t0 = Date.now();
      try {
        const res = await fetch(http.url, {
          method: "POST",
          headers: {
            ...http.headers,
            "content-type": "application/json",
            "x-switchyard-timeout-ms": String(opts.deadlineMs),
          },
          body: text,
          signal: AbortSignal.timeout(opts.deadlineMs + 15_000),
        });
        record(out, t0, verdictOf(res.status, (await res.json()) as { predictions?: unknown }, opts.accept));
      } catch (err) {
        const code = connectionCode(err);
        record(
          out,
          t0,
          code
            ? { retryable: "CONNECTION" }
            : { failed: `${String(err)} ${String((err as Error).cause ?? "")}` },
        );
        // Nothing listens (the bridge restarting): try again shortly rather than spin on refusals.
        if (code) await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const viaSdk = async (sdk: NonNullable<LoadOptions["sdk"]>) => {
    while (!stopped) {
      const t0 = Date.now();
      try {
        const reply = await sdk.client.invoke(sdk.endpoint, opts.body as never, {
          timeoutMs: opts.deadlineMs,
        });
        record(out, t0, verdictOf(200, reply as { predictions?: unknown }, opts.accept));
      } catch (err) {
        const code = err instanceof SwitchyardError ? err.code : undefined;
        record(out, t0, code ? verdictOf(0, { error_code: code }, opts.accept) : { failed: String(err) });
      }
    }
  };
  const loops = [
    ...Array.from({ length: opts.http?.loops ?? 0 }, () => viaHttp(opts.http!)),
    ...Array.from({ length: opts.sdk?.loops ?? 0 }, () => viaSdk(opts.sdk!)),
  ];
  return {
    outcomes: out,
    async answered(n, what, ms = 60_000) {
      const target = out.ok + n;
      await eventually(() => (out.ok >= target ? true : undefined), what, ms).catch((err: Error) => {
        throw new Error(
          `${err.message}; so far ${describeOutcomes(out)}; ${out.failures.slice(-3).join("; ")}`,
        );
      });
    },
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}
