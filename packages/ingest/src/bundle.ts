// Reads a custom model directory for registration: bundles its entry module with esbuild into one ESM file,
// proves the bundle imports and default-exports a class with `predict` (in a throwaway child process with a
// timeout, never in this process), and lists every file with the optional signature.json. Writes nothing to NATS.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { mlflowColumnSignature } from "@switchyard/formats";
import { linkModelPackage, MODEL_PACKAGE } from "@switchyard/model/link";
import { invalid, MlflowSignature, notFound, type Signature, SwitchyardError } from "@switchyard/protocol";
import { build, type Message } from "esbuild";
import { listFiles, type SourceFile } from "./source.js";

export const BUNDLE_PATH = "__switchyard__/bundle.mjs";
export const SIGNATURE_FILE = "signature.json";
export const ENTRY_CANDIDATES = ["model.ts", "model.js", "index.ts", "index.js"] as const;
/** How long importing a bundle at registration may take before it is refused. */
export const CHECK_TIMEOUT_MS = 20_000;

export interface CustomSource {
  source: string;
  /** The bundle's relative path (`BUNDLE_PATH`). */
  entry: string;
  /** The bundle first (a temp file), then every file of the directory. */
  files: SourceFile[];
  signature: Signature | null;
  mlflowSignature: MlflowSignature | null;
  /** Removes the temp directory holding the bundle. */
  cleanup(): Promise<void>;
}

const malformed = (message: string) => new SwitchyardError("MALFORMED_MODEL", message);

/** Bundles and checks `dir`; throws MALFORMED_MODEL with esbuild's (or the import check's) message. */
export async function readCustomSource(dir: string, entryOption?: string): Promise<CustomSource> {
  if (typeof dir !== "string" || dir === "") throw invalid("path is required: a custom model directory");
  const root = resolve(dir);
  const info = await stat(root).catch(() => null);
  if (!info) throw notFound(`path '${dir}' does not exist`);
  if (!info.isDirectory()) throw invalid(`'${dir}' is not a directory; a custom model is a directory`);
  const files = await listFiles(root, { skip: ["node_modules", ".git"] });
  if (files.some((f) => f.path.startsWith("__switchyard__/"))) {
    throw invalid(`'${dir}' has a __switchyard__ directory; that name is reserved for the bundle`);
  }
  const entry = await findEntry(root, files, entryOption);
  const { signature, mlflowSignature } = await readSignature(root, files);

  const tmp = await mkdtemp(join(tmpdir(), "sy-bundle-"));
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  try {
    const bundle = join(tmp, ...BUNDLE_PATH.split("/"));
    await mkdir(dirname(bundle), { recursive: true });
    await writeFile(bundle, await bundleEntry(root, entry));
    await linkModelPackage(tmp);
    await checkBundle(bundle, entry);
    return {
      source: root,
      entry: BUNDLE_PATH,
      files: [{ path: BUNDLE_PATH, abs: bundle }, ...files],
      signature,
      mlflowSignature,
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function findEntry(root: string, files: SourceFile[], entryOption?: string): Promise<string> {
  if (entryOption !== undefined) {
    const want = entryOption.replaceAll("\\", "/").replace(/^\.\//, "");
    if (!files.some((f) => f.path === want)) {
      throw invalid(`--entry '${entryOption}' is not a file of '${root}'`);
    }
    return want;
  }
  const found = ENTRY_CANDIDATES.find((c) => files.some((f) => f.path === c));
  if (!found) {
    throw malformed(
      `'${root}' has no entry module: add one of ${ENTRY_CANDIDATES.join(", ")} or name it with --entry`,
    );
  }
  return found;
}

async function readSignature(
  root: string,
  files: SourceFile[],
): Promise<{ signature: Signature | null; mlflowSignature: MlflowSignature | null }> {
  const file = files.find((f) => f.path === SIGNATURE_FILE);
  if (!file) return { signature: null, mlflowSignature: null };
  const where = join(root, SIGNATURE_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file.abs, "utf8"));
  } catch (err) {
    throw malformed(`'${where}' is not valid JSON: ${(err as Error).message}`);
  }
  // Either side may be left out, as MLflow allows a signature without outputs.
  const withSides =
    typeof json === "object" && json !== null && !Array.isArray(json)
      ? { inputs: null, outputs: null, ...json }
      : json;
  const parsed = MlflowSignature.safeParse(withSides);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(
      `'${where}' is not an MLflow signature ({"inputs": [{"name", "type"}], "outputs": [...]}): ` +
        `${issue?.path.join(".") || "(root)"}: ${issue?.message}`,
    );
  }
  return { signature: mlflowColumnSignature(parsed.data, where), mlflowSignature: parsed.data };
}

// CommonJS dependencies bundled into ESM call `require` for Node builtins; give them a real one.
const BANNER =
  'import { createRequire as __switchyardCreateRequire } from "node:module";\n' +
  "const require = __switchyardCreateRequire(import.meta.url);";

/** One ESM file: the entry and everything it imports, except Node builtins and `@switchyard/model`. */
async function bundleEntry(root: string, entry: string): Promise<Uint8Array> {
  try {
    const result = await build({
      absWorkingDir: root,
      entryPoints: [join(root, entry)],
      outfile: join(root, "__switchyard__", "bundle.mjs"),
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      write: false,
      external: [MODEL_PACKAGE],
      banner: { js: BANNER },
      logLevel: "silent",
    });
    const out = result.outputFiles[0];
    if (!out) throw malformed(`esbuild produced no output for '${entry}'`);
    return out.contents;
  } catch (err) {
    if (err instanceof SwitchyardError) throw err;
    const errors = (err as { errors?: Message[] }).errors;
    const text = errors?.length ? errors.map(describeMessage).join("; ") : (err as Error).message;
    throw malformed(`bundling '${entry}' of '${root}' failed: ${text}`);
  }
}

function describeMessage(m: Message): string {
  const loc = m.location ? `${m.location.file}:${m.location.line}:${m.location.column + 1}: ` : "";
  return `${loc}${m.text}`;
}

// Runs in a child process: import the bundle, check its default export, print one JSON line.
const CHECK_SCRIPT = `
const done = (r) => process.stdout.write(JSON.stringify(r) + "\\n", () => process.exit(0));
try {
  const m = await import(process.argv[1]);
  const C = m.default;
  if (C === undefined) done({ ok: false, message: "the entry module has no default export; export default a class with a predict method" });
  else if (typeof C !== "function") done({ ok: false, message: "the default export is " + (C === null ? "null" : typeof C) + ", not a class with a predict method" });
  else {
    let has = typeof C.prototype?.predict === "function";
    if (!has) {
      try { has = typeof new C().predict === "function"; }
      catch (e) { done({ ok: false, message: "constructing the default export threw: " + (e?.message ?? String(e)) }); }
    }
    if (has) done({ ok: true });
    else done({ ok: false, message: "the default export has no predict method" });
  }
} catch (e) {
  done({ ok: false, message: "importing the bundle failed: " + String(e?.message ?? e).split("\\n")[0] });
}
`;

/** Imports the bundle in a child process with a timeout; refuses a bundle that fails to import or has no
 * default-exported class with `predict`. */
async function checkBundle(bundle: string, entry: string): Promise<void> {
  const out = await new Promise<{ stdout: string; stderr: string; timedOut: boolean }>((done) => {
    execFile(
      process.execPath,
      ["--input-type=module", "-e", CHECK_SCRIPT, pathToFileURL(bundle).href],
      { timeout: CHECK_TIMEOUT_MS, killSignal: "SIGKILL", maxBuffer: 1 << 20, env: process.env },
      (err, stdout, stderr) => done({ stdout, stderr, timedOut: Boolean(err?.killed) }),
    );
  });
  if (out.timedOut) {
    throw malformed(
      `importing the bundle of '${entry}' did not finish within ${CHECK_TIMEOUT_MS / 1000} s (top-level code that never ends?)`,
    );
  }
  const line = out.stdout.trim().split("\n").at(-1) ?? "";
  let result: { ok: boolean; message?: string } | undefined;
  try {
    result = JSON.parse(line);
  } catch {
    result = undefined;
  }
  if (!result) {
    const why =
      out.stderr
        .trim()
        .split("\n")
        .find((l) => /error/i.test(l)) ?? out.stderr.trim().split("\n")[0];
    throw malformed(`importing the bundle of '${entry}' failed${why ? `: ${why}` : ""}`);
  }
  if (!result.ok) throw malformed(`'${entry}': ${result.message}`);
}
