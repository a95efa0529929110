import { describe, expect, it } from "vitest";
import { ERROR_CATALOG, type ErrorCode, SwitchyardError } from "../src/mod.js";

describe("error catalog", () => {
  const codes = Object.keys(ERROR_CATALOG) as ErrorCode[];

  it.each(codes)("%s has an HTTP status, a retryable flag and a description", (code) => {
    const spec = ERROR_CATALOG[code];
    expect(Number.isInteger(spec.status)).toBe(true);
    expect(spec.status).toBeGreaterThanOrEqual(400);
    expect(spec.status).toBeLessThan(600);
    expect(typeof spec.retryable).toBe("boolean");
    expect(spec.description.length).toBeGreaterThan(10);
  });

  it("maps the MLflow codes to MLflow's statuses", () => {
    expect(ERROR_CATALOG.BAD_REQUEST.status).toBe(400);
    expect(ERROR_CATALOG.INVALID_PARAMETER_VALUE.status).toBe(400);
    expect(ERROR_CATALOG.UNAUTHENTICATED.status).toBe(401);
    expect(ERROR_CATALOG.PERMISSION_DENIED.status).toBe(403);
    expect(ERROR_CATALOG.RESOURCE_DOES_NOT_EXIST.status).toBe(404);
    expect(ERROR_CATALOG.RESOURCE_CONFLICT.status).toBe(409);
    expect(ERROR_CATALOG.REQUEST_TIMEOUT.status).toBe(408);
    expect(ERROR_CATALOG.REQUEST_TOO_LARGE.status).toBe(413);
    expect(ERROR_CATALOG.UNSUPPORTED_MEDIA_TYPE.status).toBe(415);
    expect(ERROR_CATALOG.REQUEST_LIMIT_EXCEEDED.status).toBe(429);
    expect(ERROR_CATALOG.INTERNAL_ERROR.status).toBe(500);
    expect(ERROR_CATALOG.TEMPORARILY_UNAVAILABLE.status).toBe(503);
    expect(ERROR_CATALOG.DEADLINE_EXCEEDED.status).toBe(504);
  });

  it("retries only overload, rate limits and deadlines", () => {
    expect(codes.filter((c) => ERROR_CATALOG[c].retryable).sort()).toEqual([
      "DEADLINE_EXCEEDED",
      "REQUEST_LIMIT_EXCEEDED",
      "TEMPORARILY_UNAVAILABLE",
    ]);
  });

  it("crosses the wire as an MLflow body and is rebuilt with its code", () => {
    const err = new SwitchyardError("TEMPORARILY_UNAVAILABLE", "replica overloaded");
    const wire = JSON.parse(JSON.stringify(err.toBody()));
    expect(wire).toEqual({ error_code: "TEMPORARILY_UNAVAILABLE", message: "replica overloaded" });
    const back = SwitchyardError.fromBody(wire);
    expect(back.code).toBe("TEMPORARILY_UNAVAILABLE");
    expect(back.status).toBe(503);
    expect(back.retryable).toBe(true);
  });

  it("turns unknown codes and foreign errors into INTERNAL_ERROR without leaking their message", () => {
    expect(SwitchyardError.fromBody({ error_code: "NOPE", message: "x" }).code).toBe("INTERNAL_ERROR");
    const wrapped = SwitchyardError.from(new Error("secret stack detail"));
    expect(wrapped.code).toBe("INTERNAL_ERROR");
    expect(wrapped.message).toBe("internal error");
  });
});
