// Where this package is installed, and how a loader makes a custom model's bundle import this very copy:
// bundles leave `@switchyard/model` external, and whoever loads one (the runtime's workers, the registration
// check) links it first, so a model's `Frame` is the loader's `Frame` and `instanceof` holds. Node-only; the
// package's main entry never imports this.
import { randomUUID } from "node:crypto";
import { mkdir, rename, rm, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The one package a bundle leaves external, resolved at load time to the cluster's installed copy. */
export const MODEL_PACKAGE = "@switchyard/model";

/** The directory of the installed `@switchyard/model` package (this file is `<dir>/dist/link.js`). */
export const MODEL_PACKAGE_DIR = dirname(dirname(fileURLToPath(import.meta.url)));

/**
 * Makes `<dir>/node_modules/@switchyard/model` a symlink to the installed package, so a bundle stored under
 * `dir` imports the same module instances as the process loading it (one `Frame` class, `instanceof` works).
 * Atomic (a fresh link renamed over the old one), so concurrent callers never see a missing link.
 */
export async function linkModelPackage(dir: string): Promise<void> {
  const link = join(dir, "node_modules", ...MODEL_PACKAGE.split("/"));
  await mkdir(dirname(link), { recursive: true });
  const tmp = `${link}.${randomUUID()}.tmp`;
  await symlink(MODEL_PACKAGE_DIR, tmp, "dir");
  try {
    await rename(tmp, link);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
