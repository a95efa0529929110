// The one error catalog: every error a user can see has a stable code, an HTTP status, a retryable flag
// and a description. Errors cross NATS as data (code + message) and are rebuilt on arrival; never a stack.

export interface ErrorSpec {
  /** HTTP status the bridge answers with. */
  status: number;
  /** Whether the router (or a client) may retry the same request elsewhere. */
  retryable: boolean;
  description: string;
}

/** MLflow/Databricks error codes plus Switchyard's own, keyed by stable code. */
export const ERROR_CATALOG = {
  BAD_REQUEST: {
    status: 400,
    retryable: false,
    description: "The request body is malformed: not JSON, not an object, or not exactly one input key.",
  },
  INVALID_PARAMETER_VALUE: {
    status: 400,
    retryable: false,
    description: "A field has a value that is not allowed: a missing, extra or ill-typed column, a bad name.",
  },
  MALFORMED_MODEL: {
    status: 400,
    retryable: false,
    description: "A model file or directory could not be read as a model (not ONNX, bad MLmodel, no flavor).",
  },
  UNAUTHENTICATED: {
    status: 401,
    retryable: false,
    description: "No valid credentials were given.",
  },
  PERMISSION_DENIED: {
    status: 403,
    retryable: false,
    description: "The credentials do not allow this operation.",
  },
  RESOURCE_DOES_NOT_EXIST: {
    status: 404,
    retryable: false,
    description: "The named model, version, alias, endpoint or job does not exist.",
  },
  RESOURCE_ALREADY_EXISTS: {
    status: 409,
    retryable: false,
    description: "A resource with that name already exists.",
  },
  RESOURCE_CONFLICT: {
    status: 409,
    retryable: false,
    description: "A concurrent change conflicts with this one (e.g. an update already in progress).",
  },
  REQUEST_TIMEOUT: {
    status: 408,
    retryable: false,
    description:
      "The request body did not arrive before the bridge's body-read deadline; the connection is closed.",
  },
  REQUEST_TOO_LARGE: {
    status: 413,
    retryable: false,
    description: "The request body exceeds the size limit.",
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    description: "The Content-Type is not one the endpoint accepts.",
  },
  REQUEST_LIMIT_EXCEEDED: {
    status: 429,
    retryable: true,
    description: "A rate limit was exceeded; retry later.",
  },
  INTEGRITY_ERROR: {
    status: 500,
    retryable: false,
    description: "Stored data failed verification (an artifact whose SHA-256 digest does not match).",
  },
  INTERNAL_ERROR: {
    status: 500,
    retryable: false,
    description: "An unexpected error inside Switchyard; details are in the server logs.",
  },
  TEMPORARILY_UNAVAILABLE: {
    status: 503,
    retryable: true,
    description: "The service is overloaded or starting; retry after the Retry-After interval.",
  },
  DEADLINE_EXCEEDED: {
    status: 504,
    retryable: true,
    description: "The request's deadline passed before it could be answered.",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(ERROR_CATALOG, code);
}

/** The MLflow error body, as it goes over HTTP and in JSON replies on NATS. */
export interface ErrorBody {
  error_code: ErrorCode;
  message: string;
}

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SwitchyardError";
    this.code = code;
    const spec: ErrorSpec = ERROR_CATALOG[code];
    this.status = spec.status;
    this.retryable = spec.retryable;
  }

  toBody(): ErrorBody {
    return { error_code: this.code, message: this.message };
  }

  /** Rebuilds an error that crossed the wire; an unknown code becomes INTERNAL_ERROR. */
  static fromBody(body: { error_code?: unknown; message?: unknown }): SwitchyardError {
    const message = typeof body.message === "string" ? body.message : "unknown error";
    return new SwitchyardError(isErrorCode(body.error_code) ? body.error_code : "INTERNAL_ERROR", message);
  }

  /** Any thrown value as a SwitchyardError; unexpected errors keep their message off the wire. */
  static from(err: unknown): SwitchyardError {
    if (err instanceof SwitchyardError) return err;
    return new SwitchyardError("INTERNAL_ERROR", "internal error", { cause: err });
  }
}

export const invalid = (message: string) => new SwitchyardError("INVALID_PARAMETER_VALUE", message);
export const notFound = (message: string) => new SwitchyardError("RESOURCE_DOES_NOT_EXIST", message);
