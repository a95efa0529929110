// Flavor loaders by `ModelVersion.flavor`, imported lazily so a worker loads only the runtime it needs.
import type { Flavor } from "@switchyard/protocol";
import { type FlavorLoader, type FlavorTable, ModelLoadError } from "./flavor.js";

export { type FlavorLoader, type LoadedModel, ModelLoadError, runFailure, timedRun } from "./flavor.js";

const FLAVORS: FlavorTable = {
  onnx: async () => (await import("./onnx.js")).loadOnnx,
  custom: async () => (await import("./custom.js")).loadCustom,
};

export function flavorLoader(flavor: Flavor): Promise<FlavorLoader> {
  const get = FLAVORS[flavor];
  if (!get) return Promise.reject(new ModelLoadError(`unknown model flavor '${flavor}'`));
  return get();
}
