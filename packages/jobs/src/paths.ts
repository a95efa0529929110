// Data roots: a batch job reads and writes only under the cluster's data roots. A path is judged by where it
// really is — `..` resolved, every symlink of its existing part followed — so neither `root/../etc` nor a link
// inside a root that points out of it gets through. Checked before a job starts, by the coordinator.
import { realpath } from "node:fs/promises";
import path from "node:path";
import { SwitchyardError } from "@switchyard/protocol";

/** The real location of `p`: its deepest existing ancestor's realpath joined with the rest. */
async function realLocation(p: string): Promise<string> {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return path.join(await realpath(cur), ...rest.reverse());
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      const parent = path.dirname(cur);
      if (parent === cur) return abs;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

const inside = (child: string, root: string) => {
  const rel = path.relative(root, child);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
};

/**
 * `p` as a real absolute path, when it lies under one of `roots`; else INVALID_PARAMETER_VALUE naming `field`
 * and the roots. `p` must be absolute: relative paths mean nothing to a cluster whose processes run elsewhere.
 */
export async function underDataRoots(p: string, roots: readonly string[], field: string): Promise<string> {
  if (!path.isAbsolute(p)) {
    throw new SwitchyardError("INVALID_PARAMETER_VALUE", `${field}: expected an absolute path, got '${p}'`);
  }
  const real = await realLocation(p);
  const realRoots = await Promise.all(roots.map(realLocation));
  if (!realRoots.some((r) => inside(real, r))) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      `${field}: '${p}' is outside the cluster's data roots (${roots.join(", ")})` +
        (real !== path.resolve(p) ? `; it resolves to '${real}'` : ""),
    );
  }
  // Keep a trailing slash: it says "a directory" for outputs.
  return p.endsWith("/") && !real.endsWith("/") ? `${real}/` : real;
}
