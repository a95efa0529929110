// Reads what a user registers from local disk: an `.onnx` file, or an MLflow model directory whose MLmodel has
// an `onnx` flavor. It only reads and validates; it never writes to NATS, so bad input leaves nothing behind.
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { invalid, MlflowSignature, notFound, type Signature, SwitchyardError } from "@switchyard/protocol";
import { parse as parseYaml } from "yaml";
import { readOnnxSignature } from "./onnx.js";

export interface SourceFile {
  /** Relative to the model directory, '/'-separated. */
  path: string;
  abs: string;
}

export interface ModelSource {
  /** Absolute path of what was registered. */
  source: string;
  /** Relative path of the ONNX file the flavor loads. */
  entry: string;
  /** Every file to store, sorted by path. */
  files: SourceFile[];
  signature: Signature;
  mlflowSignature: MlflowSignature | null;
}

const malformed = (message: string) => new SwitchyardError("MALFORMED_MODEL", message);
const MLMODEL = "MLmodel";

export async function readModelSource(path: string): Promise<ModelSource> {
  if (typeof path !== "string" || path === "")
    throw invalid("path is required: an .onnx file or an MLflow model directory");
  const info = await statOrThrow(path);
  if (info.isDirectory()) return readMlflowDir(path);
  if (!info.isFile()) throw invalid(`path '${path}' is neither a file nor a directory`);
  // `register ./model/MLmodel` means the directory.
  if (basename(path) === MLMODEL) return readMlflowDir(dirname(path));
  const abs = resolve(path);
  const entry = basename(abs);
  return {
    source: abs,
    entry,
    files: [{ path: entry, abs }],
    signature: readOnnxSignature(await readFile(abs), path),
    mlflowSignature: null,
  };
}

async function readMlflowDir(dir: string): Promise<ModelSource> {
  const abs = resolve(dir);
  const mlmodelPath = join(dir, MLMODEL);
  let text: string;
  try {
    text = await readFile(join(abs, MLMODEL), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw malformed(
        `'${dir}' is a directory without an MLmodel file: register an .onnx file or an MLflow model directory`,
      );
    }
    throw invalid(`'${mlmodelPath}' cannot be read: ${(err as Error).message}`);
  }
  let mlmodel: unknown;
  try {
    mlmodel = parseYaml(text);
  } catch (err) {
    throw malformed(`'${mlmodelPath}' is not valid YAML: ${firstLine((err as Error).message)}`);
  }
  if (!isObject(mlmodel) || !isObject(mlmodel.flavors)) {
    throw malformed(`'${mlmodelPath}' has no 'flavors' mapping`);
  }
  const onnxFlavor = mlmodel.flavors.onnx;
  if (!isObject(onnxFlavor)) {
    const flavors = Object.keys(mlmodel.flavors).join(", ") || "none";
    throw malformed(
      `'${dir}' has no onnx flavor in its MLmodel (flavors: ${flavors}); Switchyard serves MLflow models saved with mlflow.onnx`,
    );
  }
  const data = onnxFlavor.data ?? "model.onnx";
  if (typeof data !== "string" || data === "" || data.startsWith("/") || data.split("/").includes("..")) {
    throw malformed(
      `'${mlmodelPath}': flavors.onnx.data must be a relative path inside the directory, got ${JSON.stringify(data)}`,
    );
  }

  const files = await listFiles(abs);
  const entry = files.find((f) => f.path === data);
  if (!entry) throw malformed(`'${mlmodelPath}' names onnx data file '${data}', which is not in '${dir}'`);
  return {
    source: abs,
    entry: entry.path,
    files,
    signature: readOnnxSignature(await readFile(entry.abs), join(dir, data)),
    mlflowSignature: readMlflowSignature(mlmodel.signature, mlmodelPath),
  };
}

/** MLmodel keeps each side of the signature as a JSON string; absent sides are null. */
function readMlflowSignature(sig: unknown, where: string): MlflowSignature | null {
  if (sig === undefined || sig === null) return null;
  if (!isObject(sig)) throw malformed(`'${where}': signature must be a mapping`);
  const side = (key: "inputs" | "outputs" | "params"): unknown => {
    const v = sig[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== "string") return v;
    try {
      return JSON.parse(v);
    } catch (err) {
      throw malformed(`'${where}': signature.${key} is not valid JSON: ${(err as Error).message}`);
    }
  };
  const parsed = MlflowSignature.safeParse({
    inputs: side("inputs"),
    outputs: side("outputs"),
    params: side("params"),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(`'${where}': signature.${issue?.path.join(".")} is invalid: ${issue?.message}`);
  }
  return parsed.data;
}

/**
 * Every regular file under `root` (symlinks followed), as sorted '/'-separated relative paths. Directories
 * named in `skip` (e.g. node_modules) are left out at any depth.
 */
export async function listFiles(
  root: string,
  opts: { skip?: readonly string[] } = {},
): Promise<SourceFile[]> {
  const out: SourceFile[] = [];
  const skip = new Set(opts.skip ?? []);
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > 32) throw invalid(`'${dir}' is nested too deeply (a symlink loop?)`);
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      if (skip.has(ent.name)) continue;
      const abs = join(dir, ent.name);
      const kind = ent.isSymbolicLink() ? await stat(abs).catch(() => null) : ent;
      if (kind?.isDirectory()) await walk(abs, depth + 1);
      else if (kind?.isFile()) out.push({ path: relative(root, abs).split(sep).join("/"), abs });
    }
  };
  await walk(root, 0);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function statOrThrow(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw notFound(`path '${path}' does not exist`);
    throw invalid(`path '${path}' cannot be read: ${(err as Error).message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const firstLine = (s: string) => s.split("\n", 1)[0] ?? s;
