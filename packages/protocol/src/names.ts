// Name rules (DESIGN.md "Names"): what endpoints, served models, jobs and models may be called, and how a
// name becomes a NATS subject token. Every entry point validates names here, so the rules live once.
import { invalid } from "./errors.js";

const PART = /^[A-Za-z0-9_-]{1,63}$/;

/** Endpoint, served-model and job names: `[A-Za-z0-9_-]{1,63}`. */
export function isResourceName(name: string): boolean {
  return PART.test(name);
}

/** Model names: one to three parts joined by dots (`catalog.schema.model`). */
export function isModelName(name: string): boolean {
  const parts = name.split(".");
  return parts.length >= 1 && parts.length <= 3 && parts.every((p) => PART.test(p));
}

export function assertResourceName(name: string, what = "name"): string {
  if (!isResourceName(name)) {
    throw invalid(`${what} '${name}' is invalid: expected 1-63 characters of letters, digits, '_' or '-'`);
  }
  return name;
}

export function assertModelName(name: string, what = "model name"): string {
  if (!isModelName(name)) {
    throw invalid(
      `${what} '${name}' is invalid: expected one to three parts joined by '.' (catalog.schema.model), ` +
        "each 1-63 characters of letters, digits, '_' or '-'",
    );
  }
  return name;
}

/** Aliases follow MLflow: letters, digits, '_' and '-', not starting with a digit-only 'v<N>' form. */
export function assertAlias(alias: string): string {
  if (!PART.test(alias) || /^v\d+$/i.test(alias) || alias === "latest") {
    throw invalid(
      `alias '${alias}' is invalid: expected 1-63 characters of letters, digits, '_' or '-', ` +
        "and not 'latest' or 'v<number>' (those name versions)",
    );
  }
  return alias;
}

/** The alias a served model's version names (`@champion` → `champion`), or undefined for a version number. */
export const aliasOf = (version: string): string | undefined =>
  version.startsWith("@") ? version.slice(1) : undefined;

/** A name as one NATS subject token (and KV key segment): dots become '_'. */
export function subjectToken(name: string): string {
  return name.replaceAll(".", "_");
}

/** The default served-model name, `<model>-<version>` with dots replaced. */
export function defaultServedName(model: string, version: string | number): string {
  return `${subjectToken(model)}-${version}`;
}

const RID = /^[A-Za-z0-9_-]{1,128}$/;
const FNV128_OFFSET = 0x6c62272e07bb014262b821756295c58dn;
const FNV128_PRIME = 0x0000000001000000000000000000013bn;
const MASK128 = (1n << 128n) - 1n;
const utf8 = new TextEncoder();

/**
 * A request id as one subject token: ids of 1-128 letters, digits, '_' or '-' (generated ids, UUIDs) as they
 * are, any other id as `h_` and its 128-bit FNV-1a hash in hex — deterministic, so a label finds its capture.
 */
export function ridToken(requestId: string): string {
  if (RID.test(requestId)) return requestId;
  let h = FNV128_OFFSET;
  for (const byte of utf8.encode(requestId)) h = ((h ^ BigInt(byte)) * FNV128_PRIME) & MASK128;
  return `h_${h.toString(16).padStart(32, "0")}`;
}
