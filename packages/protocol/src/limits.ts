// Limits on what a request may hold, shared by the bridge, the invoke actor and the replicas' body parsers, so
// a hostile body gets a 4xx naming the limit instead of exhausting a stack or a heap. Leaf module: no imports.

/** Most dimensions a tensor may have (ONNX Runtime's kernels stop well before; numpy allows 64). */
export const MAX_TENSOR_DIMS = 32;
/** Deepest nesting of an invocation's `params` (or OIP `parameters`). */
export const MAX_PARAMS_DEPTH = 32;
/** Deepest nesting of a management API body (endpoint configs, batch and stream jobs nest a few levels). */
export const MAX_BODY_DEPTH = 64;
/** Most columns (or named inputs) one invocation may send. */
export const MAX_COLUMNS = 10_000;
/** Longest client-sent request id kept; a longer one is replaced (it goes into logs and NATS headers). */
export const MAX_REQUEST_ID_LENGTH = 200;

/**
 * Whether a decoded JSON value nests arrays or objects deeper than `limit` levels (a scalar is depth 0, `[1]`
 * depth 1). Iterative, so a 100,000-level body cannot overflow the stack here.
 */
export function deeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, depth] = top;
    if (typeof v !== "object" || v === null) continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * Whether a client-sent request id may travel on: 1-200 printable ASCII characters, no spaces. It is echoed in
 * a response header and copied into NATS headers and logs, where anything else is refused or misleads.
 */
export function isUsableRequestId(id: string | undefined | null): id is string {
  return (
    typeof id === "string" && id.length > 0 && id.length <= MAX_REQUEST_ID_LENGTH && /^[\x21-\x7e]+$/.test(id)
  );
}
