import { encode } from "@switchyard/data/codec";
import { decodeEvent, modelInput, planInputs, resultFields, rowOf } from "@switchyard/jobs";
import type { Signature } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";

const oneInput: Signature = { inputs: [{ name: "input", dtype: "float32", shape: [-1, 3] }], outputs: [] };
const named: Signature = {
  inputs: [
    { name: "amount", dtype: "float32", shape: [-1] },
    { name: "country", dtype: "string", shape: [-1] },
  ],
  outputs: [],
};
const event = { card: "c1", ts: "2026-01-01T00:00:00Z", a: 1, label: "x", b: 2, c: 3 };

describe("stream events", () => {
  it("decodes JSON, and msgpack when the Content-Type says so; anything else is a poison event naming the problem", () => {
    const bytes = new TextEncoder().encode(JSON.stringify(event));
    expect(decodeEvent(bytes, undefined)).toEqual(event);
    expect(decodeEvent(encode(event), "application/msgpack")).toEqual(event);
    expect(() => decodeEvent(new TextEncoder().encode("[1]"), undefined)).toThrow(
      "payload: expected a JSON object of fields, got [1]",
    );
    expect(() => decodeEvent(new Uint8Array([0xff, 0xfe]), undefined)).toThrow(
      "payload: not valid UTF-8 text",
    );
    expect(() => decodeEvent(new TextEncoder().encode("{"), undefined)).toThrow(/^payload: not valid JSON/);
  });

  it("gives a one-input model every numeric field but the key and event time, in event order, unless --columns says", () => {
    const ctx = { signature: oneInput, frames: false, reserved: ["card", "ts"] };
    expect(planInputs(ctx, event)).toEqual({
      kind: "matrix",
      input: "input",
      dtype: "float32",
      fields: ["a", "b", "c"],
    });
    expect(planInputs({ ...ctx, columns: ["c", "a", "b"] }, event)).toMatchObject({
      fields: ["c", "a", "b"],
    });
    expect(planInputs({ signature: named, frames: false, reserved: [] }, event)).toEqual({
      kind: "columns",
      columns: [
        { name: "amount", text: false },
        { name: "country", text: true },
      ],
    });
  });

  it("checks each row's fields and builds one tensor per batch", () => {
    const plan = planInputs({ signature: oneInput, frames: false, reserved: ["card", "ts"] }, event);
    const rows = [rowOf(plan, event), rowOf(plan, { ...event, a: 4, b: 5, c: 6 })];
    expect(() => rowOf(plan, { ...event, b: "2" })).toThrow('field "b": expected a number, got "2"');
    expect(() => rowOf(plan, { a: 1, c: 3 })).toThrow('field "b": expected a number, got nothing');
    const [t] = modelInput(plan, rows) as unknown as [{ shape: number[]; data: Float32Array }];
    expect(t.shape).toEqual([2, 3]);
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("names a single output prediction, several by their names, and k values per row as an array", () => {
    const single = [
      { name: "y", dtype: "float32" as const, shape: [2, 1], data: Float32Array.from([0.5, 1.5]) },
    ];
    expect(resultFields(single, 2)).toEqual([{ prediction: 0.5 }, { prediction: 1.5 }]);
    const two = [
      { name: "label", dtype: "int64" as const, shape: [2], data: BigInt64Array.from([1n, 0n]) },
      {
        name: "probabilities",
        dtype: "float32" as const,
        shape: [2, 2],
        data: Float32Array.from([0.25, 0.75, 0.5, 0.5]),
      },
    ];
    expect(resultFields(two, 2)).toEqual([
      { label: 1, probabilities: [0.25, 0.75] },
      { label: 0, probabilities: [0.5, 0.5] },
    ]);
  });
});
