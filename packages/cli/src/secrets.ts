// Credentials of a local cluster, generated on first start and kept in the data dir (mode 0600): the
// internal user the cluster's own components connect as, and the admin user the CLI embeds in natsUrl.
import { randomBytes } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { writePrivateJson } from "./private-file.js";

const Credential = z.object({ user: z.string(), password: z.string() }).strict();
export const ClusterSecrets = z
  .object({
    internal: Credential,
    admin: Credential,
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

export async function loadOrCreateSecrets(dataDir: string): Promise<ClusterSecrets> {
  const file = path.join(dataDir, FILE);
  try {
    return ClusterSecrets.parse(JSON.parse(await readFile(file, "utf8")));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const secrets: ClusterSecrets = {
    internal: { user: "switchyard", password: password() },
    admin: { user: "admin", password: password() },
  };
  await writeFile(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  await chmod(file, 0o600);
  return secrets;
}
