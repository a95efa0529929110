// The identity of a model on disk: sha256 of an `.onnx` file, or of a directory's files (custom models, MLflow
// directories) taken in a stable order. Stored with the version at registration (`source_digest`) so that
// `switchyard apply` registers a file again only when its content changed.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { invalid } from "@switchyard/protocol";

/** `sha256:<hex>` of the file or directory at `p`. */
export async function artifactDigest(p: string): Promise<string> {
  const s = await stat(p).catch(() => undefined);
  if (!s) throw invalid(`'${p}' does not exist`);
  const hash = createHash("sha256");
  if (s.isFile()) {
    await feed(hash, p);
  } else {
    // Each file as its '/'-separated relative path, its size and its bytes, so renames and moves count.
    for (const rel of await filesUnder(p)) {
      const abs = path.join(p, ...rel.split("/"));
      hash.update(`${rel}\0${(await stat(abs)).size}\0`);
      await feed(hash, abs);
    }
  }
  return `sha256:${hash.digest("hex")}`;
}

function feed(hash: ReturnType<typeof createHash>, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .on("end", () => resolve())
      .on("error", reject);
  });
}

/** Every regular file under `dir`, relative and '/'-separated, sorted by code unit (locale-independent). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
