import { describe, expect, it } from "vitest";
import { decode, encode } from "../src/codec.js";
import { SwitchyardError } from "../src/errors.js";
import { Frame } from "../src/frame.js";
import { errorReply, parseInferenceReply, parseInferenceRequest, replyOutput } from "../src/messages.js";

const request = () => ({
  request_id: "r-1",
  endpoint: "fraud",
  served_model: "fraud-3",
  deadline_ms: 1_700_000_000_000,
  input: Frame.fromColumns({ amount: new Float32Array([1, 2]) }),
});

const bad = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    expect((e as SwitchyardError).code).toBe("BAD_REQUEST");
    return (e as SwitchyardError).message;
  }
  throw new Error("expected an error");
};

describe("InferenceRequest", () => {
  it("survives the codec and keeps its data by reference after validation", () => {
    const wire = decode(encode(request()));
    const req = parseInferenceRequest(wire);
    expect(req.params).toEqual({});
    expect(req.input).toBe((wire as { input: Frame }).input);
    expect((req.input as Frame).column("amount")).toEqual(new Float32Array([1, 2]));
  });

  it("refuses unknown keys, bad names and malformed tensors naming the field", () => {
    expect(bad(() => parseInferenceRequest({ ...request(), extra: 1 }))).toMatch(
      /^invalid inference request: .*extra/,
    );
    expect(bad(() => parseInferenceRequest({ ...request(), endpoint: "a.b" }))).toBe(
      "invalid inference request: endpoint: must be 1-63 letters, digits, '_' or '-'",
    );
    const input = [{ name: "x", dtype: "float32", shape: [2], data: new Float64Array(2) }];
    expect(bad(() => parseInferenceRequest({ ...request(), input }))).toBe(
      "invalid inference request: input: tensor 0 'x' data must be Float32Array for dtype float32, got Float64Array",
    );
    expect(bad(() => parseInferenceRequest({ ...request(), input: { a: 1 } }))).toBe(
      "invalid inference request: input: must be a Frame or a list of tensors",
    );
  });
});

describe("InferenceReply", () => {
  it("accepts outputs with timings and rebuilds errors", () => {
    const ok = parseInferenceReply(
      decode(
        encode({
          request_id: "r-1",
          output: [{ name: "y", dtype: "float32", shape: [1], data: new Float32Array([0.5]) }],
          timings: { queue_us: 120, compute_us: 900 },
          batch_size: 4,
        }),
      ),
    );
    expect(replyOutput(ok).batch_size).toBe(4);
    const failed = parseInferenceReply(
      decode(encode(errorReply("r-2", new SwitchyardError("DEADLINE_EXCEEDED", "late")))),
    );
    try {
      replyOutput(failed);
      expect.unreachable();
    } catch (e) {
      expect((e as SwitchyardError).code).toBe("DEADLINE_EXCEEDED");
      expect((e as SwitchyardError).retryable).toBe(true);
    }
    expect(errorReply("r-3", new Error("secret path /x"))).toEqual({
      request_id: "r-3",
      error: { error_code: "INTERNAL_ERROR", message: "internal error" },
    });
    expect(
      bad(() => parseInferenceReply({ request_id: "r", error: { error_code: "NOPE", message: "" } })),
    ).toMatch(/invalid inference reply/);
  });
});
