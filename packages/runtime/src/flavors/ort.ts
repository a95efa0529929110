// onnxruntime's output tensors as protocol Tensors, shared by the flavors that run ONNX sessions.
import type { Tensor } from "@switchyard/data";
import type ort from "onnxruntime-node";

export function fromOrt(name: string, t: ort.Tensor): Tensor {
  return { name, dtype: t.type as Tensor["dtype"], shape: [...t.dims], data: t.data as Tensor["data"] };
}
