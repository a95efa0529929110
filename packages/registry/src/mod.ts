// @switchyard/registry: the model registry client on JetStream KV + Object Store — registered models, versions,
// aliases, and artifacts verified against their digests. Reading it loads no ingestion code (no esbuild, no
// ONNX parser): registering a model from files is `@switchyard/ingest`.
export { type LocalFile, Registry, type RegistryOptions, type VersionDraft } from "./registry.js";
