// Model outputs as table columns, for the modes that hand users rows (scripts, batch files): an output of one
// value per row is one column; an output of k values per row (`probabilities [N, 2]`) is k columns
// `probabilities[0]`, `probabilities[1]`, because a table column holds one value per row in every format.
import {
  allocate,
  elementCount,
  Frame,
  type FrameColumn,
  type Tensor,
  type TensorData,
} from "@switchyard/data";

/** Whether an output has one value per row (`[N]` or `[N, 1]`). */
export const isPerRowScalar = (t: Tensor) =>
  t.shape.length <= 1 || (t.shape.length === 2 && t.shape[1] === 1);

/** One column for an output of one value per row; else one column per element of a row, `name[i]…`. */
export function outputColumns(t: Tensor, rows: number, name = t.name): FrameColumn[] {
  if (isPerRowScalar(t)) return [{ name, kind: t.dtype, data: t.data }];
  const inner = t.shape.slice(1);
  const width = elementCount(inner);
  return Array.from({ length: width }, (_, j) => {
    const data = allocate(t.dtype, rows) as unknown[];
    for (let r = 0; r < rows; r++) data[r] = t.data[r * width + j];
    return { name: `${name}${indexSuffix(j, inner)}`, kind: t.dtype, data: data as TensorData };
  });
}

/**
 * Every output as columns of one Frame of `rows` rows. `single` names the only output's column(s) when there is
 * just one (batch output calls it `prediction`, as MLflow's spark_udf does); several keep their names.
 */
export function outputFrame(outputs: readonly Tensor[], rows: number, single?: string): Frame {
  const columns = outputs.flatMap((t) =>
    outputColumns(t, rows, outputs.length === 1 && single ? single : t.name),
  );
  return Frame.of(columns, rows);
}

/** Flat index `j` in a row of shape `inner` → `[a][b]…`. */
function indexSuffix(j: number, inner: readonly number[]): string {
  let rest = j;
  let out = "";
  for (let d = inner.length - 1; d >= 0; d--) {
    const n = inner[d]!;
    out = `[${rest % n}]${out}`;
    rest = Math.floor(rest / n);
  }
  return out;
}
