// @switchyard/registry: the model registry on JetStream KV + Object Store (models, versions, aliases,
// verified artifacts), the ONNX signature reader and the custom-model bundler. Other packages import only from here.
export {
  BUNDLE_PATH,
  type CustomSource,
  ENTRY_CANDIDATES,
  linkModelPackage,
  MODEL_PACKAGE,
  MODEL_PACKAGE_DIR,
  readCustomSource,
  SIGNATURE_FILE,
} from "./custom.js";
export { readOnnxSignature } from "./onnx.js";
export { type RegisterOptions, Registry, type RegistryOptions } from "./registry.js";
