// Every error the bridge answers, as MLflow's body `{"error_code","message"}` with the catalog's status: ours
// (SwitchyardError), Fastify's own (body too large, unknown route), and unexpected ones (500, no stack).
import {
  ERROR_CATALOG,
  type ErrorCode,
  H,
  isErrorCode,
  retryAfterOf,
  SwitchyardError,
} from "@switchyard/protocol";

/** Seconds a client should wait after a 503 before retrying. */
export const RETRY_AFTER_SECONDS = "1";

export function statusOf(code: string): number {
  return isErrorCode(code) ? ERROR_CATALOG[code].status : 500;
}

const BY_STATUS: Record<number, ErrorCode> = {
  400: "BAD_REQUEST",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "RESOURCE_DOES_NOT_EXIST",
  408: "REQUEST_TIMEOUT",
  409: "RESOURCE_CONFLICT",
  413: "REQUEST_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  429: "REQUEST_LIMIT_EXCEEDED",
  503: "TEMPORARILY_UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message?: string;
}

/**
 * The client-facing error for anything thrown while serving a request, and whether it is unexpected (to be
 * logged). Unexpected errors keep their message off the wire.
 */
export function toClientError(
  err: unknown,
  ctx: { bodyLimit: number },
): { error: SwitchyardError; unexpected: boolean } {
  if (err instanceof SwitchyardError) return { error: err, unexpected: err.status >= 500 && !err.retryable };
  const e = (err ?? {}) as FastifyLikeError;
  // The one Fastify body error that can happen: every body is read as a buffer by one catch-all parser, so
  // media types and JSON are judged by our own code (415, 400 with MLflow's wording), never by Fastify.
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
    return {
      error: new SwitchyardError(
        "REQUEST_TOO_LARGE",
        `the request body is larger than the limit of ${ctx.bodyLimit} bytes`,
      ),
      unexpected: false,
    };
  }
  const status = e.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return {
      error: new SwitchyardError(BY_STATUS[status] ?? "BAD_REQUEST", e.message || "bad request"),
      unexpected: false,
    };
  }
  return { error: new SwitchyardError("INTERNAL_ERROR", "internal error", { cause: err }), unexpected: true };
}

export function unsupportedMediaType(contentType: string | undefined): SwitchyardError {
  return new SwitchyardError(
    "UNSUPPORTED_MEDIA_TYPE",
    `Content-Type '${contentType ?? "(none)"}' is not supported: send application/json` +
      " (or text/csv for invocations)",
  );
}

/** Headers of an error response. */
export function errorHeaders(error: SwitchyardError): Record<string, string> {
  const h: Record<string, string> = { "content-type": "application/json", [H.errorCode]: error.code };
  const retryAfter = retryAfterOf(error);
  if (retryAfter !== undefined) h[H.retryAfter] = String(retryAfter);
  else if (error.status === 503) h[H.retryAfter] = RETRY_AFTER_SECONDS;
  return h;
}
