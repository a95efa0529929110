// The identity of a model on disk: sha256 of an `.onnx` file, or of a directory's files (custom models, MLflow
// directories) taken in a stable order, leaving out node_modules and .git as custom bundles do (a commit or
// an install there is not a new model). Stored with the version at registration (`source_digest`) so that
// `switchyard apply` registers a file again only when its content changed.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { invalid } from "@switchyard/protocol";
import { listFiles } from "./source.js";

/** `sha256:<hex>` of the file or directory at `p`. */
export async function artifactDigest(p: string): Promise<string> {
  const s = await stat(p).catch(() => undefined);
  if (!s) throw invalid(`'${p}' does not exist`);
  const hash = createHash("sha256");
  if (s.isFile()) {
    await feed(hash, p);
  } else {
    // Each file as its '/'-separated relative path, its size and its bytes, so renames and moves count.
    for (const file of await listFiles(p, { skip: ["node_modules", ".git"] })) {
      hash.update(`${file.path}\0${(await stat(file.abs)).size}\0`);
      await feed(hash, file.abs);
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
