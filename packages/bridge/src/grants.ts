// Databricks permissions on serving endpoints: KV `<cluster>_cluster` key `grants.<endpoint>` holds the endpoint's
// access control list, whose principals are token names. PUT replaces the list, PATCH merges into it; a token's
// access is its scopes plus the grants naming it (protocol/access.ts). Mirrored in memory like the tokens.
import type { NatsConnection } from "@nats-io/transport-node";
import { casUpdate, openBucket, type Schema } from "@switchyard/nats";
import {
  clusterNames,
  type EndpointGrant,
  invalid,
  keys,
  PERMISSION_LEVELS,
  type PermissionLevel,
} from "@switchyard/protocol";
import { KvMirror } from "./kv-mirror.js";

/** The three ways Databricks names a principal; all three name a token here. */
export const PRINCIPAL_FIELDS = ["user_name", "service_principal_name", "group_name"] as const;
type PrincipalField = (typeof PRINCIPAL_FIELDS)[number];

export interface StoredGrant {
  principal_field: PrincipalField;
  principal: string;
  level: PermissionLevel;
}

const PREFIX = "grants.";

function parseStored(raw: unknown): StoredGrant[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  return raw.filter(
    (g): g is StoredGrant =>
      g !== null &&
      typeof g === "object" &&
      PRINCIPAL_FIELDS.includes(g.principal_field) &&
      typeof g.principal === "string" &&
      PERMISSION_LEVELS.includes(g.level),
  );
}

const GrantsSchema: Schema<StoredGrant[]> = {
  safeParse: (value) => {
    const data = parseStored(value);
    return data
      ? { success: true, data }
      : { success: false, error: { message: "expected an array of grants" } };
  },
};

/** `{"access_control_list": [...]}` as Databricks takes it → grants; INVALID_PARAMETER_VALUE naming the field. */
export function parseAccessControlList(body: Record<string, unknown>): StoredGrant[] {
  const list = body.access_control_list;
  if (!Array.isArray(list)) {
    throw invalid(
      "access_control_list: expected an array of {user_name|service_principal_name|group_name, permission_level}",
    );
  }
  return list.map((item, i) => {
    const at = `access_control_list[${i}]`;
    if (item === null || typeof item !== "object" || Array.isArray(item))
      throw invalid(`${at}: expected an object`);
    const entry = item as Record<string, unknown>;
    const named = PRINCIPAL_FIELDS.filter((f) => entry[f] !== undefined);
    if (named.length !== 1) {
      throw invalid(`${at}: expected exactly one of ${PRINCIPAL_FIELDS.join(", ")} (a token's name)`);
    }
    const field = named[0] as PrincipalField;
    const principal = entry[field];
    if (typeof principal !== "string" || principal.length === 0) {
      throw invalid(`${at}.${field}: expected a non-empty string (a token's name)`);
    }
    const level = entry.permission_level;
    if (typeof level !== "string" || !(PERMISSION_LEVELS as readonly string[]).includes(level)) {
      throw invalid(
        `${at}.permission_level: expected one of ${PERMISSION_LEVELS.join(", ")}, got ${JSON.stringify(level ?? null)}`,
      );
    }
    return { principal_field: field, principal, level: level as PermissionLevel };
  });
}

/** Merges `extra` into `base`: one entry per principal and level, as Databricks' PATCH does. */
function merge(base: StoredGrant[], extra: StoredGrant[]): StoredGrant[] {
  const out = [...base];
  for (const g of extra) {
    if (
      !out.some(
        (o) => o.principal === g.principal && o.principal_field === g.principal_field && o.level === g.level,
      )
    ) {
      out.push(g);
    }
  }
  return out;
}

export class GrantStore {
  private constructor(private readonly mirror: KvMirror<StoredGrant[]>) {}

  static async open(nc: NatsConnection, opts: { cluster?: string } = {}): Promise<GrantStore> {
    const kv = await openBucket(nc, clusterNames(opts.cluster), "cluster");
    return new GrantStore(await KvMirror.open(kv, PREFIX, parseStored, { follow: true }));
  }

  /** The grants on every endpoint that name `principal` (a token's name). */
  grantsOf(principal: string | undefined): EndpointGrant[] {
    if (principal === undefined) return [];
    const out: EndpointGrant[] = [];
    for (const [endpoint, e] of this.mirror.entries) {
      for (const g of e.value) if (g.principal === principal) out.push({ endpoint, level: g.level });
    }
    return out;
  }

  get(endpoint: string): StoredGrant[] {
    return this.mirror.entries.get(endpoint)?.value ?? [];
  }

  /** Replaces (PUT) or merges into (PATCH) an endpoint's list, compare-and-set against concurrent writers. */
  async write(endpoint: string, grants: StoredGrant[], mode: "replace" | "merge"): Promise<StoredGrant[]> {
    const stored = await casUpdate(
      this.mirror.kv,
      keys.grants(endpoint),
      GrantsSchema,
      (current) => (mode === "replace" ? grants : merge(current ?? [], grants)),
      { what: `permissions of endpoint '${endpoint}'` },
    );
    this.mirror.entries.set(endpoint, { value: stored.value, revision: stored.revision });
    return stored.value;
  }

  async delete(endpoint: string): Promise<void> {
    await this.mirror.kv.delete(keys.grants(endpoint));
    this.mirror.entries.delete(endpoint);
  }

  close(): void {
    this.mirror.close();
  }
}
