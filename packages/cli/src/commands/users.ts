// `switchyard users …`: NATS users for external clients of a cluster that `switchyard up` runs. They live in
// its data dir (bcrypt hashes only); every change rewrites nats-server's authorization file and reloads it
// (nats-users-apply.ts), expanding globs to the endpoints that exist now.

import { randomBytes } from "node:crypto";
import path from "node:path";
import { connectNats, splitNatsUrl } from "@switchyard/nats";
import { type ClusterFile, notFound, SwitchyardError } from "@switchyard/protocol";
import bcrypt from "bcryptjs";
import type { Command } from "commander";
import { CLUSTER_FILE, defaultDataDir, readClusterFile } from "../cluster-file.js";
import {
  ALL_ENDPOINTS,
  assertNatsUserName,
  expandEndpoints,
  inboxPrefixOf,
  parseEndpointList,
  readNatsUsers,
  roleUserNames,
  StoredNatsUser,
  saveNatsUsers,
} from "../nats-users.js";
import {
  applyUsers,
  liveEndpointNames,
  RELOAD_WITNESS,
  type UsersTarget,
  withUsersLock,
} from "../nats-users-apply.js";
import { table, when } from "../output.js";
import { loadOrCreateSecrets } from "../secrets.js";
import type { GlobalOptions } from "./context.js";

/** bcrypt cost: nats-server checks it on every connect, so kept at bcrypt's usual 10 (~50 ms). */
const BCRYPT_ROUNDS = 10;

export interface ManagedCluster {
  dataDir: string;
  file: ClusterFile & { natsPid: number; natsAuthorization: string };
}

/** The local cluster whose users this data dir holds; any other cluster is not ours to change. */
export async function managedCluster(g: GlobalOptions): Promise<ManagedCluster> {
  if (g.nats ?? process.env.SWITCHYARD_NATS_URL) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      "switchyard users manages the NATS users of a cluster started by `switchyard up` through its data dir; " +
        "it cannot change a server given by --nats / SWITCHYARD_NATS_URL (configure that server's authorization yourself)",
    );
  }
  const dataDir = path.resolve(g.dataDir ?? defaultDataDir());
  const file = await readClusterFile(dataDir);
  if (!file) {
    throw new SwitchyardError(
      "TEMPORARILY_UNAVAILABLE",
      `no local cluster found (${path.join(dataDir, CLUSTER_FILE)} does not exist): switchyard users works on ` +
        "the cluster `switchyard up` runs from that data dir (--data-dir)",
    );
  }
  if (file.natsPid === undefined || file.natsAuthorization === undefined) {
    throw new SwitchyardError(
      "TEMPORARILY_UNAVAILABLE",
      `${path.join(dataDir, CLUSTER_FILE)} names no nats-server process: restart \`switchyard up\` with this version`,
    );
  }
  return { dataDir, file: { ...file, natsPid: file.natsPid, natsAuthorization: file.natsAuthorization } };
}

/** Where applyUsers acts for this cluster. */
function targetOf(c: ManagedCluster): UsersTarget {
  return {
    dataDir: c.dataDir,
    cluster: c.file.cluster,
    natsServer: splitNatsUrl(c.file.natsUrl).server,
    natsPid: c.file.natsPid,
    authorizationFile: c.file.natsAuthorization,
  };
}

/** Saves `users` and makes the server enforce them, globs expanded to the endpoints that exist now. */
async function saveAndApply(c: ManagedCluster, users: StoredNatsUser[]): Promise<void> {
  // As the admin (its credentials are in the cluster file's URL): it may read the endpoints bucket.
  const nc = await connectNats({ servers: c.file.natsUrl, name: "switchyard-users" });
  let endpoints: string[];
  try {
    endpoints = await liveEndpointNames(nc, c.file.cluster);
  } finally {
    await nc.close();
  }
  await saveNatsUsers(c.dataDir, users);
  await applyUsers(targetOf(c), users, endpoints);
}

/** How many existing endpoints a user's patterns reach now, for `users list` (`*`: all of them). */
async function matchedCounts(c: ManagedCluster, users: StoredNatsUser[]): Promise<Map<string, number>> {
  const nc = await connectNats({ servers: c.file.natsUrl, name: "switchyard-users" });
  try {
    const live = await liveEndpointNames(nc, c.file.cluster);
    return new Map(
      users.map((u) => [
        u.user,
        u.endpoints.includes(ALL_ENDPOINTS)
          ? live.length
          : expandEndpoints(u.endpoints, live).filter((e) => live.includes(e)).length,
      ]),
    );
  } finally {
    await nc.close();
  }
}

/**
 * Creates a client user (endpoints already checked) and returns its password, the only time it is available.
 * `managed` marks users `switchyard apply` created, the only ones its --prune deletes.
 */
export async function createNatsUser(
  c: ManagedCluster,
  opts: { name?: string; endpoints: string[]; managed?: "apply" },
): Promise<{ user: string; password: string }> {
  const secrets = await loadOrCreateSecrets(c.dataDir);
  const user = assertNatsUserName(opts.name ?? `client-${randomBytes(4).toString("hex")}`, [
    ...roleUserNames(secrets),
    RELOAD_WITNESS,
  ]);
  const password = randomBytes(24).toString("base64url");
  // nats-server recognises a bcrypt password by its `$2a$` prefix (same hash as `$2b$` for this password).
  const hash = bcrypt.hashSync(password, bcrypt.genSaltSync(BCRYPT_ROUNDS).replace(/^\$2b\$/, "$2a$"));
  const created = StoredNatsUser.parse({
    user,
    password_hash: hash,
    endpoints: opts.endpoints,
    created_at: Date.now(),
    ...(opts.managed ? { managed: opts.managed } : {}),
  });
  await withUsersLock(c.dataDir, async () => {
    const existing = await readNatsUsers(c.dataDir);
    if (existing.some((u) => u.user === user)) {
      throw new SwitchyardError("RESOURCE_ALREADY_EXISTS", `NATS user '${user}' already exists`);
    }
    await saveAndApply(c, [...existing, created]);
  });
  return { user, password };
}

/** Rewrites a user's permissions to `endpoints` (its password stays) and reloads the server. */
export async function setNatsUserEndpoints(
  c: ManagedCluster,
  user: string,
  endpoints: string[],
): Promise<void> {
  await withUsersLock(c.dataDir, async () => {
    const existing = await readNatsUsers(c.dataDir);
    if (!existing.some((u) => u.user === user)) throw notFound(`NATS user '${user}' does not exist`);
    await saveAndApply(
      c,
      existing.map((u) => (u.user === user ? { ...u, endpoints } : u)),
    );
  });
}

/** Deletes a user; the server closes its connections itself when it reloads. */
export async function deleteNatsUser(c: ManagedCluster, user: string): Promise<void> {
  await withUsersLock(c.dataDir, async () => {
    const existing = await readNatsUsers(c.dataDir);
    const gone = existing.find((u) => u.user === user);
    if (!gone) throw notFound(`NATS user '${user}' does not exist`);
    await saveAndApply(
      c,
      existing.filter((u) => u !== gone),
    );
  });
}

export function usersCommand(program: Command, globals: () => GlobalOptions): void {
  const users = program
    .command("users")
    .description("NATS users for external clients of the local cluster (request sy.invoke.<endpoint> only)");

  users
    .command("create")
    .requiredOption(
      "--endpoints <list>",
      "endpoints the user may invoke, comma-separated names or globs (fraud-*), or '*' for all",
    )
    .option("--name <name>", "user name (also its inbox prefix _INBOX_<name>); default client-<random>")
    .action(async (opts: { endpoints: string; name?: string }) => {
      const endpoints = parseEndpointList(opts.endpoints);
      const c = await managedCluster(globals());
      const { user, password } = await createNatsUser(c, { name: opts.name, endpoints });
      const json = globals().json ?? false;
      process.stdout.write(
        json
          ? `${JSON.stringify({ user, password })}\n`
          : `user ${user}\npassword ${password}\n(shown once; connect with inbox prefix ${inboxPrefixOf(user)})\n`,
      );
    });

  users.command("list").action(async () => {
    const c = await managedCluster(globals());
    const stored = await readNatsUsers(c.dataDir);
    const counts = await matchedCounts(c, stored);
    const all = stored.map((u) => ({
      user: u.user,
      endpoints: u.endpoints,
      matching_endpoints: counts.get(u.user) ?? 0,
      inbox_prefix: inboxPrefixOf(u.user),
      created_at: u.created_at,
    }));
    const json = globals().json ?? false;
    process.stdout.write(
      json
        ? `${JSON.stringify(all, null, 2)}\n`
        : `${table(
            ["USER", "ENDPOINTS", "MATCHING", "CREATED"],
            all.map((u) => [u.user, u.endpoints.join(","), String(u.matching_endpoints), when(u.created_at)]),
          )}\n`,
    );
  });

  users
    .command("delete")
    .argument("<user>", "user name (from `users list`)")
    .action(async (user: string) => {
      await deleteNatsUser(await managedCluster(globals()), user);
      // The server closes the deleted user's connections itself when it reloads.
      const json = globals().json ?? false;
      process.stdout.write(json ? `${JSON.stringify({ user })}\n` : `deleted NATS user ${user}\n`);
    });
}
