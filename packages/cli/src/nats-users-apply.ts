// Making nats-server enforce the users in the data dir: render the authorization file, reload the server, and
// wait until it has. Both `switchyard users` and the endpoint watch of `switchyard up` (glob users follow the
// endpoints that exist) change it, one at a time under the same lock file.
import { randomBytes } from "node:crypto";
import { open, readFile, rm } from "node:fs/promises";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, listKeys, openBucket } from "@switchyard/nats";
import { reloadNatsServer, writeAuthorizationFile } from "@switchyard/natsd";
import { clusterNames, SwitchyardError } from "@switchyard/protocol";
import { clusterAuthorization, type StoredNatsUser } from "./nats-users.js";
import { loadOrCreateSecrets } from "./secrets.js";

/** How long a change may take to show at the server after the reload signal. */
const RELOAD_TIMEOUT_MS = 15_000;
/** The user that proves a reload happened (see applyUsers); clients may not take its name. */
export const RELOAD_WITNESS = "switchyard-reload";

/** The running nats-server whose authorization file a data dir holds. */
export interface UsersTarget {
  dataDir: string;
  cluster: string;
  /** Without credentials: only the witness connects through it. */
  natsServer: string;
  natsPid: number;
  authorizationFile: string;
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
 * the list they read, and one printed password would belong to a user that was never saved; and a glob
 * re-expansion could render a list without the user a concurrent `users create` just saved.
 */
export async function withUsersLock<T>(dataDir: string, fn: () => Promise<T>): Promise<T> {
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

/** The endpoints that exist: keys of the endpoints bucket, less those whose latest entry is a delete. */
export async function liveEndpointNames(nc: NatsConnection, cluster: string): Promise<string[]> {
  const kv = await openBucket(nc, clusterNames(cluster), "endpoints");
  const live: string[] = [];
  for (const key of await listKeys(kv)) {
    if ((await kv.get(key))?.operation === "PUT") live.push(key);
  }
  return live;
}

/**
 * Renders every user (globs expanded to `endpoints`) into the authorization file and makes nats-server
 * re-read it, returning once it has: the file also holds a one-time witness user that may do nothing, and
 * the reload is done when it connects.
 */
export async function applyUsers(
  t: UsersTarget,
  users: StoredNatsUser[],
  endpoints: string[],
): Promise<void> {
  const secrets = await loadOrCreateSecrets(t.dataDir);
  const witness = { user: RELOAD_WITNESS, password: randomBytes(24).toString("base64url") };
  await writeAuthorizationFile(t.authorizationFile, [
    ...clusterAuthorization(clusterNames(t.cluster), secrets, users, endpoints),
    { ...witness, permissions: { publish: { deny: [">"] }, subscribe: { deny: [">"] } } },
  ]);
  try {
    reloadNatsServer(t.natsPid);
  } catch (err) {
    throw new SwitchyardError(
      "TEMPORARILY_UNAVAILABLE",
      `nats-server (pid ${t.natsPid}) did not take the reload signal: ${(err as Error).message}; ` +
        "the users are saved and apply at the next `switchyard up`",
    );
  }
  await awaitReload(t, witness.user, witness.password);
}

/** Resolves once the witness's new password is accepted: the server runs with the new file. */
async function awaitReload(t: UsersTarget, user: string, pass: string): Promise<void> {
  const deadline = Date.now() + RELOAD_TIMEOUT_MS;
  for (;;) {
    const connected = await connectNats({
      servers: t.natsServer,
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
        `nats-server did not apply the change within ${RELOAD_TIMEOUT_MS / 1000} s; see its log in ${t.dataDir}/logs`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
