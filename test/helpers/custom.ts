// Custom-model fixtures (test/fixtures/custom/) copied to temp dirs outside the repo before they are registered,
// so no node_modules is anywhere above them; the ensemble's ONNX artifacts are written from testkit builders.
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildLinear, buildMlp, tempDir } from "@switchyard/testkit";

export const CUSTOM_FIXTURES = fileURLToPath(new URL("../fixtures/custom/", import.meta.url));

export function copyFixture(name: string): string {
  const dir = join(tempDir("sy-custom-"), name);
  cpSync(join(CUSTOM_FIXTURES, name), dir, { recursive: true });
  return dir;
}

/** The ensemble's two members: a logistic regression and an MLP over the same 3 features. */
export const ENSEMBLE_LR = buildLinear({ inputs: 3, sigmoid: true, bias: [-0.25] });
export const ENSEMBLE_MLP = buildMlp([3, 8, 1], { seed: 11, inputName: "features", outputName: "prob" });

/** The ensemble fixture with `lr.onnx` and `models/mlp.onnx` written next to its model.ts. */
export function ensembleDir(): string {
  const dir = copyFixture("ensemble");
  writeFileSync(join(dir, "lr.onnx"), ENSEMBLE_LR);
  mkdirSync(join(dir, "models"));
  writeFileSync(join(dir, "models", "mlp.onnx"), ENSEMBLE_MLP);
  return dir;
}
