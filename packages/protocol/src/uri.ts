// Model URIs as MLflow writes them: models:/<name>/<version>, models:/<name>@<alias>, models:/<name>/latest.
import { invalid } from "./errors.js";
import { assertAlias, assertModelName } from "./names.js";

export type ModelRef =
  | { name: string; kind: "version"; version: number }
  | { name: string; kind: "alias"; alias: string }
  | { name: string; kind: "latest" };

const FORMS = "models:/<name>/<version>, models:/<name>@<alias> or models:/<name>/latest";

export function parseModelUri(uri: string): ModelRef {
  if (!uri.startsWith("models:/")) throw invalid(`model URI '${uri}' is malformed: expected ${FORMS}`);
  const rest = uri.slice("models:/".length);
  const at = rest.indexOf("@");
  if (at >= 0) {
    const name = rest.slice(0, at);
    const alias = rest.slice(at + 1);
    if (!name || !alias || name.includes("/")) {
      throw invalid(`model URI '${uri}' is malformed: expected ${FORMS}`);
    }
    return { name: assertModelName(name), kind: "alias", alias: assertAlias(alias) };
  }
  const slash = rest.indexOf("/");
  if (slash < 0 || rest.indexOf("/", slash + 1) >= 0) {
    throw invalid(`model URI '${uri}' is malformed: expected ${FORMS}`);
  }
  const name = assertModelName(rest.slice(0, slash));
  const v = rest.slice(slash + 1);
  if (v === "latest") return { name, kind: "latest" };
  return { name, kind: "version", version: parseVersion(v, `model URI '${uri}'`) };
}

/** A version number as users write it ("3"); anything else is refused with the field named. */
export function parseVersion(v: string | number, field = "version"): number {
  const n = typeof v === "number" ? v : /^[1-9]\d*$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw invalid(`${field}: version '${v}' is invalid: expected a positive integer`);
  }
  return n;
}

export function formatModelRef(ref: ModelRef): string {
  switch (ref.kind) {
    case "version":
      return `models:/${ref.name}/${ref.version}`;
    case "alias":
      return `models:/${ref.name}@${ref.alias}`;
    case "latest":
      return `models:/${ref.name}/latest`;
  }
}
