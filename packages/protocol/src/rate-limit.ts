// Databricks' `rate_limits` of a serving endpoint (calls per renewal period, per user or for the whole
// endpoint), the error a request over the limit gets, and the counter keys routers share in KV
// `<cluster>_ratelimits`. Pure: no I/O, and no import of config.ts (it would close an import cycle).
import { z } from "zod";
import { SwitchyardError } from "./errors.js";
import { type ConfigProblem, zodProblems } from "./problems.js";

export const RATE_LIMIT_KEYS = ["user", "endpoint"] as const;
export const RENEWAL_PERIODS = ["minute"] as const;
/** Length of a `minute` window: every router counts in the same wall-clock minutes. */
export const RATE_LIMIT_WINDOW_MS = 60_000;
/** Counters outlive their window by this much in KV, then expire with the bucket's age limit. */
export const RATE_LIMIT_COUNTER_TTL_MS = 2 * RATE_LIMIT_WINDOW_MS;

export const RateLimit = z
  .object({
    calls: z
      .number({ message: "expected a positive integer of calls" })
      .int("expected a positive integer of calls")
      .positive("expected a positive integer of calls"),
    /** As Databricks: `endpoint` when absent. */
    key: z.enum(RATE_LIMIT_KEYS, { message: "expected 'user' or 'endpoint'" }).default("endpoint"),
    renewal_period: z.enum(RENEWAL_PERIODS, { message: "expected 'minute'" }),
  })
  .strict();
export type RateLimit = z.infer<typeof RateLimit>;
export type RateLimitInput = z.input<typeof RateLimit>;

export const RateLimits = z.array(RateLimit);

/** Validates a `rate_limits` value: the limits with defaults filled in, or every problem under `field`. */
export function parseRateLimits(
  value: unknown,
  field = "rate_limits",
): { limits: RateLimit[]; problems: [] } | { limits: undefined; problems: ConfigProblem[] } {
  const parsed = RateLimits.safeParse(value);
  if (!parsed.success) return { limits: undefined, problems: zodProblems(parsed.error, field) };
  return { limits: parsed.data, problems: [] };
}

/** Who a `key: user` limit counts for, when nothing identifies the caller (auth off, default inbox). */
export const ANONYMOUS_PRINCIPAL = "anonymous";

/**
 * The principal of a raw NATS request: the custom inbox prefix of its reply subject (`_INBOX_<user>.…` →
 * `<user>`, what a client created with `switchyard users create` must use), else `_INBOX`, one principal
 * shared by every client on the default prefix.
 */
export function principalOfReply(reply: string | undefined): string {
  if (!reply) return "_INBOX";
  const dot = reply.indexOf(".");
  const prefix = dot < 0 ? reply : reply.slice(0, dot);
  return prefix.startsWith("_INBOX_") && prefix.length > 7 ? prefix.slice(7) : "_INBOX";
}

/** The window a time falls in, and when it ends (epoch ms). */
export function rateWindow(now: number, windowMs = RATE_LIMIT_WINDOW_MS): { index: number; endsAt: number } {
  const index = Math.floor(now / windowMs);
  return { index, endsAt: (index + 1) * windowMs };
}

/** A KV key token for any principal: other characters than [A-Za-z0-9_-] as `=` and their UTF-16 code in hex. */
function principalToken(principal: string): string {
  return principal.replace(/[^A-Za-z0-9_-]/g, (c) => `=${c.charCodeAt(0).toString(16)}`) || "=";
}

/** The counter of one limit in one window: `<endpoint>.endpoint.<window>` or `<endpoint>.user.<principal>.<window>`. */
export function rateCounterKey(
  endpoint: string,
  limit: RateLimit,
  principal: string,
  window: number,
): string {
  return limit.key === "user"
    ? `${endpoint}.user.${principalToken(principal)}.${window}`
    : `${endpoint}.endpoint.${window}`;
}

/** A counter's value in KV. */
export const RateCounter = z.object({ calls: z.number().int().nonnegative() }).strict();
export type RateCounter = z.infer<typeof RateCounter>;

/** 429 REQUEST_LIMIT_EXCEEDED, with the seconds until the window renews (HTTP `Retry-After`, NATS header). */
export class RateLimitExceeded extends SwitchyardError {
  constructor(
    readonly endpoint: string,
    readonly limit: RateLimit,
    readonly retryAfterSeconds: number,
  ) {
    super(
      "REQUEST_LIMIT_EXCEEDED",
      `endpoint '${endpoint}' allows ${limit.calls} calls per ${limit.renewal_period}` +
        `${limit.key === "user" ? " per user" : ""}; retry in ${retryAfterSeconds} s`,
    );
  }
}

/** Seconds a client waits before retrying an error, when the error says (rate limits, overload). */
export function retryAfterOf(err: SwitchyardError): number | undefined {
  return err instanceof RateLimitExceeded ? err.retryAfterSeconds : undefined;
}
