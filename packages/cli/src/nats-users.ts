// Who may connect to the nats-server of `switchyard up`, and what each may touch. The internal roles get
// their own users with deny rules (what they use is wide and changes with features; what they must never
// do is short and stable), external clients get allow-lists (request their endpoints, read their inbox).
// The data dir holds the source of truth — secrets.json for the roles, nats-users.json for the clients
// (bcrypt hashes only) — and nats-authorization.conf is rendered from both for nats-server to include.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { NatsPermissions, NatsUser } from "@switchyard/natsd";
import {
  type ClusterNames,
  globMatches,
  invalid,
  isEndpointGlob,
  isResourceName,
} from "@switchyard/protocol";
import { z } from "zod";
import { writePrivateJson } from "./private-file.js";
import type { RoleSecrets } from "./secrets.js";

export const NATS_USERS_FILE = "nats-users.json";
export const NATS_AUTHORIZATION_FILE = "nats-authorization.conf";

/** `--endpoints *`: every endpoint, now and later. */
export const ALL_ENDPOINTS = "*";

export const StoredNatsUser = z
  .object({
    user: z.string(),
    /** bcrypt (`$2a$`), which nats-server checks itself; the password is shown once, at creation. */
    password_hash: z.string(),
    endpoints: z.array(z.string()).min(1),
    created_at: z.number().int(),
    /** `apply`: created by `switchyard apply`, so its --prune may delete it. */
    managed: z.literal("apply").optional(),
  })
  .strict();
export type StoredNatsUser = z.infer<typeof StoredNatsUser>;

const UsersFile = z.object({ users: z.array(StoredNatsUser) }).strict();

export async function readNatsUsers(dataDir: string): Promise<StoredNatsUser[]> {
  const file = path.join(dataDir, NATS_USERS_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const parsed = UsersFile.safeParse(JSON.parse(text));
  if (!parsed.success) throw invalid(`${file} is not a valid NATS users file: ${parsed.error.message}`);
  return parsed.data.users;
}

export function saveNatsUsers(dataDir: string, users: StoredNatsUser[]): Promise<void> {
  return writePrivateJson(path.join(dataDir, NATS_USERS_FILE), { users });
}

/**
 * `--endpoints a,b`, globs like `fraud-*`, or `*`. nats-server wildcards are whole subject tokens, so a glob
 * is stored as given and expanded to the endpoints that exist (see clientPermissions); `switchyard up`
 * re-expands it whenever endpoints come and go.
 */
export function parseEndpointList(list: string): string[] {
  const items = list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0)
    throw invalid("--endpoints: expected a comma-separated list of endpoint names or globs, or '*'");
  if (items.includes(ALL_ENDPOINTS)) {
    if (items.length > 1) throw invalid("--endpoints: '*' already means every endpoint; give it alone");
    return [ALL_ENDPOINTS];
  }
  for (const e of items) {
    if (!isEndpointGlob(e)) {
      throw invalid(
        `--endpoints: '${e}' is not an endpoint name or glob (1-63 letters, digits, '_', '-' or '*')`,
      );
    }
  }
  return [...new Set(items)];
}

/** Whether a user's patterns hold a glob that only existing endpoints can expand (`*` alone needs none). */
export const hasGlob = (patterns: string[]) => patterns.some((p) => p !== ALL_ENDPOINTS && p.includes("*"));

/** The endpoints among `existing` that a user's patterns name; plain names count even before they exist. */
export function expandEndpoints(patterns: string[], existing: Iterable<string>): string[] {
  const named = new Set(patterns.filter((p) => !p.includes("*")));
  const globs = patterns.filter((p) => p.includes("*"));
  for (const e of existing) if (globs.some((g) => globMatches(g, e))) named.add(e);
  return [...named].sort();
}

/** A user name becomes the inbox prefix `_INBOX_<user>`, so it must be one subject token. */
export function assertNatsUserName(name: string, reserved: string[]): string {
  if (!isResourceName(name)) {
    throw invalid(`--name: '${name}' is invalid: expected 1-63 letters, digits, '_' or '-'`);
  }
  if (reserved.includes(name))
    throw invalid(`--name: '${name}' is the cluster's own user; choose another name`);
  return name;
}

export const inboxPrefixOf = (user: string) => `_INBOX_${user}`;

/** An external client: request the allowed endpoints' invoke subjects, receive on its own inbox prefix. */
export function clientPermissions(
  names: ClusterNames,
  user: string,
  endpoints: string[],
  existing: Iterable<string>,
): NatsPermissions {
  const invoke = endpoints.includes(ALL_ENDPOINTS)
    ? [`${names.cluster}.invoke.*`]
    : expandEndpoints(endpoints, existing).map((e) => names.subjects.invoke(e));
  return {
    // nats-server reads an empty allow-list as no restriction: a glob matching nothing denies every publish.
    publish: invoke.length > 0 ? { allow: invoke } : { deny: [">"] },
    subscribe: { allow: [`${inboxPrefixOf(user)}.>`] },
  };
}

/**
 * The internal roles' limits. Deny rules, not allow-lists: each role uses many subjects (KV, object store,
 * JetStream consumers, stats, replies to any client's inbox), and an allow-list missing one breaks a path.
 */
export function rolePermissions(names: ClusterNames): { node: NatsPermissions; bridge: NatsPermissions } {
  const endpointsStream = `KV_${names.buckets.endpoints}`;
  const streamDeletes = ["$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>"];
  return {
    node: {
      publish: {
        deny: [
          // The endpoints bucket: its keys, and every JetStream call that would change or replace its stream.
          `$KV.${names.buckets.endpoints}.>`,
          ...["CREATE", "UPDATE", "RESTORE", "MSG.DELETE"].map(
            (op) => `$JS.API.STREAM.${op}.${endpointsStream}`,
          ),
          ...streamDeletes,
          // The management API, through which the coordinator would write it on the node's behalf.
          `${names.cluster}.api.>`,
        ],
      },
    },
    bridge: { publish: { deny: streamDeletes } },
  };
}

/**
 * Everyone the cluster's nats-server lets in; the admin first, as nats-server's readiness probe uses it.
 * `endpoints`: the names that exist now, which clients' globs expand to.
 */
export function clusterAuthorization(
  names: ClusterNames,
  secrets: RoleSecrets,
  clients: StoredNatsUser[],
  endpoints: Iterable<string>,
): NatsUser[] {
  const roles = rolePermissions(names);
  return [
    secrets.admin,
    secrets.internal,
    { ...secrets.node, permissions: roles.node },
    { ...secrets.bridge, permissions: roles.bridge },
    ...clients.map((c) => ({
      user: c.user,
      password: c.password_hash,
      permissions: clientPermissions(names, c.user, c.endpoints, endpoints),
    })),
  ];
}

/** The names clients may not take. */
export const roleUserNames = (secrets: RoleSecrets) => [
  secrets.admin.user,
  secrets.internal.user,
  secrets.node.user,
  secrets.bridge.user,
];
