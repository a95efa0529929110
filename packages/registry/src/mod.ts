// @switchyard/registry: the model registry on JetStream KV + Object Store (models, versions, aliases,
// verified artifacts) and the ONNX signature reader. Other packages import only from here.
export { readOnnxSignature } from "./onnx.js";
export { type RegisterOptions, Registry, type RegistryOptions } from "./registry.js";
