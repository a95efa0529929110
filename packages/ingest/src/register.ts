// Registration: a model on local disk (an `.onnx` file, an MLflow model directory, or a custom model directory)
// read, checked and bundled here, then stored by the registry as its next version. Everything that can refuse
// the model runs before any upload, so a refused model leaves nothing behind.
import { assertAlias, assertModelName, type Flavor, invalid, type ModelVersion } from "@switchyard/protocol";
import type { Registry } from "@switchyard/registry";
import { type CustomSource, readCustomSource } from "./bundle.js";
import { artifactDigest } from "./digest.js";
import { type ModelSource, readModelSource } from "./source.js";

export interface RegisterOptions {
  /** Point this alias at the new version once it is committed. */
  alias?: string;
  description?: string;
  tags?: Record<string, string>;
  /**
   * `onnx` (default): an `.onnx` file or an MLflow directory. `custom`: a directory whose entry module
   * default-exports a class with `predict`; it is bundled with esbuild and stored with every file.
   */
  flavor?: Flavor;
  /** `custom` only: the entry module, relative to the directory (default: model.ts, model.js, index.ts, index.js). */
  entry?: string;
}

/**
 * Registers `path` as the next version of `name`. Concurrent registrations of one name get distinct
 * consecutive versions.
 */
export async function registerModel(
  registry: Registry,
  name: string,
  path: string,
  opts: RegisterOptions = {},
): Promise<ModelVersion> {
  assertModelName(name);
  if (opts.alias !== undefined) assertAlias(opts.alias);
  const flavor = opts.flavor ?? "onnx";
  if (flavor !== "onnx" && flavor !== "custom") {
    throw invalid(`unknown flavor '${flavor}': expected 'onnx' or 'custom'`);
  }
  if (opts.entry !== undefined && flavor !== "custom") {
    throw invalid("an entry module (--entry) is only for the custom flavor");
  }
  const tags = opts.tags ?? {};
  for (const [k, v] of Object.entries(tags)) {
    if (typeof v !== "string") throw invalid(`tag '${k}' must be a string, got ${typeof v}`);
  }
  if (opts.description !== undefined && typeof opts.description !== "string") {
    throw invalid("description must be a string");
  }
  const src: ModelSource | CustomSource =
    flavor === "custom" ? await readCustomSource(path, opts.entry) : await readModelSource(path);
  try {
    const sourceDigest = await artifactDigest(path);
    const version = await registry.addVersion(
      name,
      {
        flavor,
        entry: src.entry,
        signature: src.signature,
        mlflow_signature: src.mlflowSignature,
        source: src.source,
        source_digest: sourceDigest,
        description: opts.description ?? "",
        tags,
      },
      src.files,
    );
    if (opts.alias !== undefined) await registry.setAlias(name, opts.alias, version.version);
    return version;
  } finally {
    if ("cleanup" in src) await src.cleanup().catch(() => undefined);
  }
}
