// Feedback labels as parsed from callers (every bad entry by index and field), predictions read from the reply
// bodies formats/reply.ts and OIP write, scoring against labels, request ids as subject tokens, and records
// stored before shadows were captured or scored.
import {
  CaptureRecord,
  clusterNames,
  OutcomeRecord,
  parseFeedbackLabels,
  predictionsOf,
  RoutesCapture,
  ridToken,
  SwitchyardError,
  scoreLabel,
} from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

const messageOf = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(SwitchyardError);
    expect((err as SwitchyardError).code).toBe("INVALID_PARAMETER_VALUE");
    return (err as Error).message;
  }
  throw new Error("expected an error");
};

describe("feedback labels", () => {
  it("accepts an array, {records}, and one label; names the index and field of every bad entry", () => {
    const ok = [
      { request_id: "r1", label: 1 },
      { request_id: "r2", label: ["a", "b"] },
    ];
    expect(parseFeedbackLabels(ok)).toEqual(ok);
    expect(parseFeedbackLabels({ records: ok })).toEqual(ok);
    expect(parseFeedbackLabels({ request_id: "r3", label: true })).toEqual([
      { request_id: "r3", label: true },
    ]);
    const msg = messageOf(() =>
      parseFeedbackLabels([
        { request_id: "r1", label: 1 },
        { request_id: "", label: 1 },
        { request_id: "r3", label: { x: 1 } },
        { request_id: "r4" },
        { request_id: "r5", label: 1, extra: 2 },
      ]),
    );
    expect(msg).toContain("[1].request_id: expected a non-empty string");
    expect(msg).toContain("[2].label: expected a number, string or boolean, or an array of them");
    expect(msg).toContain("[3].label: expected a number, string or boolean");
    expect(msg).toContain("[4]: ");
    expect(msg).toContain("extra");
    expect(messageOf(() => parseFeedbackLabels("x"))).toContain(
      'expected a JSON array of {"request_id", "label"}',
    );
  });
});

describe("predictions of captured replies", () => {
  it("reads MLflow scalars, records (label, else the single field), the dict form and OIP outputs", () => {
    expect(predictionsOf('{"predictions":[1.5,2,3]}')).toEqual([1.5, 2, 3]);
    expect(predictionsOf('{"predictions":[[0.5],[1]]}')).toEqual([0.5, 1]);
    expect(
      predictionsOf(
        '{"predictions":[{"label":"cat","probabilities":[0.9,0.1]},{"label":"dog","probabilities":[0.2,0.8]}]}',
      ),
    ).toEqual(["cat", "dog"]);
    expect(predictionsOf('{"predictions":[{"y":1},{"y":0}]}')).toEqual([1, 0]);
    expect(predictionsOf('{"predictions":{"label":[1,0],"probabilities":[[0.1,0.9],[0.8,0.2]]}}')).toEqual([
      1, 0,
    ]);
    expect(
      predictionsOf(
        '{"outputs":[{"name":"label","shape":[2],"datatype":"INT64","data":[1,0]},{"name":"p","shape":[2,2],"data":[0,1,1,0]}]}',
      ),
    ).toEqual([1, 0]);
    expect(
      predictionsOf('{"outputs":[{"name":"y","shape":[2,1],"datatype":"FP32","data":[0.5,1.5]}]}'),
    ).toEqual([0.5, 1.5]);
    // No scalar per row: nothing to compare with.
    expect(predictionsOf('{"predictions":[[1,2],[3,4]]}')).toBeUndefined();
    expect(predictionsOf('{"error_code":"BAD_REQUEST"}')).toBeUndefined();
    expect(predictionsOf("not json")).toBeUndefined();
  });

  it("scores exact matches and numeric errors row by row; a row count mismatch is a reason", () => {
    expect(scoreLabel([1, 2.5, "a"], [1, 2, "a"])).toEqual({
      rows: 3,
      correct: 2,
      numeric_rows: 2,
      abs_err_sum: 0.5,
      sq_err_sum: 0.25,
    });
    expect(scoreLabel([true], true)).toEqual({
      rows: 1,
      correct: 1,
      numeric_rows: 0,
      abs_err_sum: 0,
      sq_err_sum: 0,
    });
    expect(scoreLabel([1, 2], 1)).toBe("the label has 1 row(s) and the request 2 prediction(s)");
  });
});

describe("capture subjects", () => {
  it("keeps subject-safe request ids and hashes others deterministically", () => {
    expect(ridToken("4f1c-9a_Z")).toBe("4f1c-9a_Z");
    const odd = ridToken("order 17/a.b");
    expect(odd).toMatch(/^h_[0-9a-f]{32}$/);
    expect(ridToken("order 17/a.b")).toBe(odd);
    expect(ridToken("order 17/a.c")).not.toBe(odd);
    expect(ridToken("x".repeat(129))).toMatch(/^h_/);
    const n = clusterNames("sy");
    expect(n.subjects.capture("ep", "r1")).toBe("sy.capture.ep.r1");
    expect(n.subjects.captureOf("ep")).toBe("sy.capture.ep.>");
    expect(n.subjects.captureShadow("ep", "r1", "b")).toBe("sy.capture.ep.r1.b");
    expect(n.subjects.outcome("ep", "a", "a.b")).toMatch(/^sy\.outcome\.ep\.a\.h_[0-9a-f]{32}$/);
  });
});

describe("routes' capture settings", () => {
  it("reads routes stored with the endpoint's one capture subject as its prefix", () => {
    expect(RoutesCapture.parse({ subject: "sy.capture.ep", sampling_rate: 1 })).toEqual({
      subject_prefix: "sy.capture.ep",
      sampling_rate: 1,
    });
    expect(RoutesCapture.parse({ subject_prefix: "sy.capture.ep", sampling_rate: 0.5 })).toEqual({
      subject_prefix: "sy.capture.ep",
      sampling_rate: 0.5,
    });
  });
});

describe("records stored before shadow traffic was captured", () => {
  it("read as the primary's: shadow false", () => {
    const capture = {
      request_id: "r1",
      client_request_id: null,
      date: "2026-12-02",
      timestamp_ms: 1,
      status_code: 200,
      error_code: null,
      sampling_fraction: 1,
      execution_time_ms: 1.5,
      request: "{}",
      response: '{"predictions":[1]}',
      endpoint_name: "ep",
      served_model_name: "a",
      model_name: "m",
      model_version: 1,
    };
    expect(CaptureRecord.parse(capture).shadow).toBe(false);
    expect(CaptureRecord.parse({ ...capture, shadow: true }).shadow).toBe(true);
    const outcome = {
      result: "joined",
      request_id: "r1",
      endpoint_name: "ep",
      served_model_name: "a",
      model_name: "m",
      model_version: 1,
      request_ms: 1,
      label_ms: 2,
      feedback_seq: 3,
      rows: 1,
      correct: 1,
      numeric_rows: 1,
      abs_err_sum: 0,
      sq_err_sum: 0,
    };
    expect(OutcomeRecord.parse(outcome).shadow).toBe(false);
  });
});
