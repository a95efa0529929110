// A model's identity on disk: the same bytes give the same digest wherever they are; any change to a file's
// content, a directory's file names or its set of files gives another.
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import { artifactDigest } from "../src/mod.js";

function modelDir(files: Record<string, string>): string {
  const dir = tempDir("sy-digest-");
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

describe("artifactDigest", () => {
  it("is the sha256 of a file's bytes", async () => {
    const file = path.join(modelDir({ "m.onnx": "graph bytes" }), "m.onnx");
    const want = createHash("sha256").update("graph bytes").digest("hex");
    expect(await artifactDigest(file)).toBe(`sha256:${want}`);
  });

  it("is stable for a directory wherever it lives, and changes with any name or content", async () => {
    const files = {
      "model.ts": "export default class {}",
      "lib/util.ts": "export const x = 1",
      "b.json": "{}",
    };
    const a = await artifactDigest(modelDir(files));
    expect(await artifactDigest(modelDir(files))).toBe(a);
    expect(await artifactDigest(modelDir({ ...files, "b.json": "{ }" }))).not.toBe(a);
    const { "lib/util.ts": util, ...rest } = files;
    expect(await artifactDigest(modelDir({ ...rest, "lib/util2.ts": util }))).not.toBe(a);
    expect(await artifactDigest(modelDir({ ...files, "extra.txt": "" }))).not.toBe(a);
    // What custom bundles leave out is not part of the model either.
    expect(
      await artifactDigest(modelDir({ ...files, "node_modules/x/index.js": "1", ".git/HEAD": "ref" })),
    ).toBe(a);
  });

  it("refuses a path that does not exist, naming it", async () => {
    await expect(artifactDigest("/nonexistent/model.onnx")).rejects.toThrow(
      "'/nonexistent/model.onnx' does not exist",
    );
  });
});
