// What a bearer token may do: its scopes, plus the Databricks permission grants that name it, decide every HTTP
// request. Pure: the bridge's hook asks `allows` (and `endpointLevel`) with what it read from KV.
//
// Per endpoint, access is a level, as Databricks' CAN_VIEW ⊂ CAN_QUERY ⊂ CAN_MANAGE: `view:<glob>` gives view,
// `query:<glob>` gives query (so view too), `manage:endpoints` and `admin` give manage of every endpoint.
import { invalid } from "./errors.js";

/** The scopes a token may hold, as written on `tokens create --scope`. */
export const SCOPE_FORMS = [
  "query:<endpoint glob>",
  "view:<endpoint glob>",
  "manage:endpoints",
  "manage:models",
  "jobs",
  "read",
  "admin",
] as const;

const FIXED_SCOPES = new Set(["manage:endpoints", "manage:models", "jobs", "read", "admin"]);
/** An endpoint glob: endpoint-name characters and `*` (any run of them). */
const GLOB = /^[A-Za-z0-9_*-]{1,63}$/;

/** Whether `s` is an endpoint glob as scopes take it: endpoint-name characters and `*`. */
export const isEndpointGlob = (s: string): boolean => GLOB.test(s);

/** Databricks' permission levels for a serving endpoint, weakest first. */
export const PERMISSION_LEVELS = ["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"] as const;
export type PermissionLevel = (typeof PERMISSION_LEVELS)[number];

/** A grant of a level on one endpoint to a principal (a token's name). */
export interface EndpointGrant {
  endpoint: string;
  level: PermissionLevel;
}

/** What a request needs. Endpoint kinds name the endpoint the route addresses. */
export type AccessNeed =
  | { kind: "view"; endpoint: string }
  | { kind: "query"; endpoint: string }
  | { kind: "manage"; endpoint: string }
  | { kind: "manage:endpoints" }
  | { kind: "manage:models" }
  | { kind: "jobs" }
  | { kind: "read" }
  | { kind: "admin" };

/** 0 none (the endpoint is invisible), 1 view, 2 query, 3 manage. */
export type EndpointLevel = 0 | 1 | 2 | 3;
const LEVEL_OF: Record<PermissionLevel, EndpointLevel> = { CAN_VIEW: 1, CAN_QUERY: 2, CAN_MANAGE: 3 };

function isScope(scope: string): boolean {
  if (FIXED_SCOPES.has(scope)) return true;
  const colon = scope.indexOf(":");
  if (colon < 0) return false;
  const kind = scope.slice(0, colon);
  return (kind === "query" || kind === "view") && GLOB.test(scope.slice(colon + 1));
}

/**
 * A scope list from `a,b,c` or an array: trimmed, deduplicated, in order. INVALID_PARAMETER_VALUE naming every bad
 * scope and the expected forms; an empty list is refused too (a token that can do nothing is a mistake).
 */
export function parseScopes(input: string | readonly string[], field = "scope"): string[] {
  const items = (typeof input === "string" ? input.split(",") : [...input]).map((s) => s.trim());
  const expected = `expected a comma-separated list of ${SCOPE_FORMS.join(", ")} (globs use '*', e.g. query:fraud-*)`;
  if (items.every((s) => s === "")) throw invalid(`${field}: no scope given; ${expected}`);
  const bad = items.filter((s) => !isScope(s));
  if (bad.length > 0) {
    const which = bad.map((b) => `'${b}'`).join(", ");
    throw invalid(`${field}: ${which} ${bad.length > 1 ? "are not scopes" : "is not a scope"}; ${expected}`);
  }
  return [...new Set(items)];
}

/** Whether `glob` (with `*` for any run of characters) matches the whole of `name`. */
export function globMatches(glob: string, name: string): boolean {
  const parts = glob.split("*");
  if (parts.length === 1) return glob === name;
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (name.length < first.length + last.length || !name.startsWith(first) || !name.endsWith(last))
    return false;
  let at = first.length;
  const end = name.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const i = name.indexOf(middle, at);
    if (i < 0 || i + middle.length > end) return false;
    at = i + middle.length;
  }
  return true;
}

/** The level a token holds on one endpoint, from its scopes and the grants naming it. */
export function endpointLevel(
  scopes: readonly string[],
  endpoint: string,
  grants: readonly EndpointGrant[] = [],
): EndpointLevel {
  let level: EndpointLevel = 0;
  const raise = (l: EndpointLevel) => {
    if (l > level) level = l;
  };
  for (const s of scopes) {
    if (s === "admin" || s === "manage:endpoints") return 3;
    if (s.startsWith("query:") && globMatches(s.slice(6), endpoint)) raise(2);
    else if (s.startsWith("view:") && globMatches(s.slice(5), endpoint)) raise(1);
  }
  for (const g of grants) if (g.endpoint === endpoint) raise(LEVEL_OF[g.level]);
  return level;
}

const NEEDED: Record<"view" | "query" | "manage", EndpointLevel> = { view: 1, query: 2, manage: 3 };

/** Whether a token with `scopes` (and `grants`) may do what `need` describes. `admin` may do everything. */
export function allows(
  scopes: readonly string[],
  need: AccessNeed,
  grants: readonly EndpointGrant[] = [],
): boolean {
  if (scopes.includes("admin")) return true;
  switch (need.kind) {
    case "view":
    case "query":
    case "manage":
      return endpointLevel(scopes, need.endpoint, grants) >= NEEDED[need.kind];
    default:
      return scopes.includes(need.kind);
  }
}
