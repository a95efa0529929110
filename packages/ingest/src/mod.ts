// @switchyard/ingest: registering models from local disk — ONNX graphs (signature read from the graph),
// MLflow model directories (MLmodel + signature), and custom models bundled with esbuild. Only the CLI and
// tools that register load it; serving processes never do.
export { BUNDLE_PATH, ENTRY_CANDIDATES, SIGNATURE_FILE } from "./bundle.js";
export { artifactDigest } from "./digest.js";
export { readOnnxSignature } from "./onnx.js";
export { type RegisterOptions, registerModel } from "./register.js";
