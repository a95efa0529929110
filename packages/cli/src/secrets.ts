// Credentials of a local cluster, generated on first start and kept in the data dir (mode 0600): one NATS
// user per internal role (the coordinator is `internal`), and the admin user the CLI embeds in natsUrl.
import { randomBytes } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { writePrivateJson } from "./private-file.js";

const Credential = z.object({ user: z.string(), password: z.string() }).strict();
export const ClusterSecrets = z
  .object({
    /** The coordinator's user. */
    internal: Credential,
    admin: Credential,
    /** Node agents with their replicas and workers; added to a data dir from before they had their own. */
    node: Credential.optional(),
    /** The bridge (HTTP, router, raw-NATS invoke actor). */
    bridge: Credential.optional(),
    /** The admin bearer token of the HTTP bridge (the cluster itself stores only its hash). */
    token: z.string().optional(),
  })
  .strict();
export type ClusterSecrets = z.infer<typeof ClusterSecrets>;

const FILE = "secrets.json";

const password = () => randomBytes(24).toString("base64url");

export function saveSecrets(dataDir: string, secrets: ClusterSecrets): Promise<void> {
  return writePrivateJson(path.join(dataDir, FILE), secrets);
}

export type RoleSecrets = ClusterSecrets & Required<Pick<ClusterSecrets, "node" | "bridge">>;

export async function loadOrCreateSecrets(dataDir: string): Promise<RoleSecrets> {
  const file = path.join(dataDir, FILE);
  try {
    const known = ClusterSecrets.parse(JSON.parse(await readFile(file, "utf8")));
    if (known.node && known.bridge) return { ...known, node: known.node, bridge: known.bridge };
    const completed: RoleSecrets = {
      ...known,
      node: known.node ?? { user: "switchyard-node", password: password() },
      bridge: known.bridge ?? { user: "switchyard-bridge", password: password() },
    };
    await saveSecrets(dataDir, completed);
    return completed;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const secrets: RoleSecrets = {
    internal: { user: "switchyard", password: password() },
    admin: { user: "admin", password: password() },
    node: { user: "switchyard-node", password: password() },
    bridge: { user: "switchyard-bridge", password: password() },
  };
  await writeFile(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  await chmod(file, 0o600);
  return secrets;
}
