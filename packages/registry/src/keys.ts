// Where registry records live in KV `<cluster>_models` and artifacts in object store `<cluster>_artifacts`.
// Every key and object name is spelled here and nowhere else.
//
// KV keys (legal characters: [-/_=.a-zA-Z0-9]; '.' separates tokens that key filters match):
//   model.<name>          RegisteredModel: latest_version (the version allocator, compare-and-set) and aliases
//   version.<name>.<N>    ModelVersion N (decimal, no padding), written once when version N is committed
// where <name> is the model name with '.' replaced by '/' ('/' is legal in keys but never in model names, so the
// mapping is one-to-one and every name is exactly one token). Hence `model.*` lists every model, and
// `version.<name>.*` lists one model's versions and never those of `<name>.x` (whose token is `<name>/x`).
//
// Objects: `<name>/<uuid>/<relative path>`, one fresh uuid per registration, so concurrent registrations of
// the same name and files never touch each other's objects.
import { randomUUID } from "node:crypto";

const nameToken = (name: string) => name.replaceAll(".", "/");
const tokenName = (token: string) => token.replaceAll("/", ".");

export const keys = {
  model: (name: string) => `model.${nameToken(name)}`,
  allModels: "model.*",
  version: (name: string, version: number) => `version.${nameToken(name)}.${version}`,
  versionsOf: (name: string) => `version.${nameToken(name)}.*`,
  /** The model name in a `model.<name>` key. */
  nameOfModelKey: (key: string) => tokenName(key.slice("model.".length)),
  /** The version number in a `version.<name>.<N>` key. */
  versionOfKey: (key: string) => Number(key.slice(key.lastIndexOf(".") + 1)),
};

/** A fresh object-name prefix for one registration: `<name>/<uuid>/`. */
export function objectPrefix(name: string): string {
  return `${name}/${randomUUID()}/`;
}
