// `switchyard users …`: NATS users for external clients of a cluster that `switchyard up` runs. They live in
// its data dir (bcrypt hashes only); every change rewrites nats-server's authorization file and reloads it.

import { randomBytes } from "node:crypto";
import { open, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { connectNats, splitNatsUrl } from "@switchyard/nats";
import { reloadNatsServer, writeAuthorizationFile } from "@switchyard/natsd";
import { type ClusterFile, clusterNames, notFound, SwitchyardError } from "@switchyard/protocol";
import bcrypt from "bcryptjs";
import type { Command } from "commander";
import { CLUSTER_FILE, defaultDataDir, readClusterFile } from "../cluster-file.js";
import {
  assertNatsUserName,
  clusterAuthorization,
  inboxPrefixOf,
  parseEndpointList,
  readNatsUsers,
  roleUserNames,
  StoredNatsUser,
  saveNatsUsers,
} from "../nats-users.js";
import { table, when } from "../output.js";
import { loadOrCreateSecrets } from "../secrets.js";
import type { GlobalOptions } from "./context.js";

/** bcrypt cost: nats-server checks it on every connect, so kept at bcrypt's usual 10 (~50 ms). */
const BCRYPT_ROUNDS = 10;
/** How long a change may take to show at the server after the reload signal. */
const RELOAD_TIMEOUT_MS = 15_000;
/** The user that proves a reload happened (see applyUsers); clients may not take its name. */
const RELOAD_WITNESS = "switchyard-reload";

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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs a read-change-write of the users file alone: two `users create` at once would otherwise each write
 * the list they read, and one printed password would belong to a user that was never saved.
 */
async function withUsersLock<T>(dataDir: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(dataDir, "nats-users.lock");
  const deadline = Date.now() + RELOAD_TIMEOUT_MS * 2;
  for (;;) {
    try {
      const h = await open(lock, "wx", 0o600);
      await h.writeFile(String(process.pid));
      await h.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      // A lock whose process is gone was left by a crash; an empty one is being written right now.
      const owner = Number(await readFile(lock, "utf8").catch(() => ""));
      if (owner > 0 && !alive(owner)) {
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new SwitchyardError("RESOURCE_CONFLICT", `another switchyard users command holds ${lock}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

/**
 * Renders every user into the authorization file and makes nats-server re-read it, returning once it has:
 * the file also holds a one-time witness user that may do nothing, and the reload is done when it connects.
 */
async function applyUsers(c: ManagedCluster, users: StoredNatsUser[]): Promise<void> {
  const names = clusterNames(c.file.cluster);
  const secrets = await loadOrCreateSecrets(c.dataDir);
  const witness = { user: RELOAD_WITNESS, password: randomBytes(24).toString("base64url") };
  await saveNatsUsers(c.dataDir, users);
  await writeAuthorizationFile(c.file.natsAuthorization, [
    ...clusterAuthorization(names, secrets, users),
    { ...witness, permissions: { publish: { deny: [">"] }, subscribe: { deny: [">"] } } },
  ]);
  try {
    reloadNatsServer(c.file.natsPid);
  } catch (err) {
    throw new SwitchyardError(
      "TEMPORARILY_UNAVAILABLE",
      `nats-server (pid ${c.file.natsPid}) did not take the reload signal: ${(err as Error).message}; ` +
        "the users are saved and apply at the next `switchyard up`",
    );
  }
  await awaitReload(c, witness.user, witness.password);
}

/** Resolves once the witness's new password is accepted: the server runs with the new file. */
async function awaitReload(c: ManagedCluster, user: string, pass: string): Promise<void> {
  const { server } = splitNatsUrl(c.file.natsUrl);
  const deadline = Date.now() + RELOAD_TIMEOUT_MS;
  for (;;) {
    const connected = await connectNats({
      servers: server,
      user,
      pass,
      reconnect: false,
      timeout: 2_000,
    }).then(
      async (nc) => {
        await nc.close();
        return true;
      },
      () => false,
    );
    if (connected) return;
    if (Date.now() > deadline) {
      throw new SwitchyardError(
        "TEMPORARILY_UNAVAILABLE",
        `nats-server did not apply the change within ${RELOAD_TIMEOUT_MS / 1000} s; see its log in ${c.dataDir}/logs`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
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
    await applyUsers(c, [...existing, created]);
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
    await applyUsers(
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
    await applyUsers(
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
      "endpoint names the user may invoke, comma-separated, or '*' for all",
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
    const all = (await readNatsUsers(c.dataDir)).map((u) => ({
      user: u.user,
      endpoints: u.endpoints,
      inbox_prefix: inboxPrefixOf(u.user),
      created_at: u.created_at,
    }));
    const json = globals().json ?? false;
    process.stdout.write(
      json
        ? `${JSON.stringify(all, null, 2)}\n`
        : `${table(
            ["USER", "ENDPOINTS", "CREATED"],
            all.map((u) => [u.user, u.endpoints.join(","), when(u.created_at)]),
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
