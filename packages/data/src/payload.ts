// Payload: the data of one request or reply — a Frame (named columns) or a list of Tensors — and the structural
// check every receiver runs on a decoded payload before touching it.
import { Frame } from "./frame.js";
import { type Tensor, tensorProblem } from "./tensor.js";

/**
 * Request or response data: a Frame (named columns: `dataframe_split`, `dataframe_records`, lists of records,
 * CSV) or tensors (`instances`/`inputs` lists and named-tensor objects; a bare list is one tensor named
 * `UNNAMED`). Tell them apart with `instanceof Frame`. The same type crosses NATS and reaches custom models.
 */
export type Payload = Frame | Tensor[];

/** Why `value` is not a Payload (a Frame, or a list of well-formed tensors), or null. */
export function payloadProblem(value: unknown): string | null {
  if (value instanceof Frame) return null;
  if (!Array.isArray(value)) return "must be a Frame or a list of tensors";
  const names = new Set<string>();
  for (let i = 0; i < value.length; i++) {
    const problem = tensorProblem(value[i], `tensor ${i}`);
    if (problem) return problem;
    const name = (value[i] as { name: string }).name;
    if (names.has(name)) return `tensor '${name}' appears twice`;
    names.add(name);
  }
  return null;
}
