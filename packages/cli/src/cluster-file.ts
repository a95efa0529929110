// Finds the local cluster a command should talk to: --nats, then SWITCHYARD_NATS_URL, then the
// cluster.json that `switchyard up` wrote into the data dir. Never guesses a server that might be someone else's.
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import type { NatsOptions } from "@switchyard/nats";
import { ClusterFile, DEFAULT_CLUSTER, SwitchyardError } from "@switchyard/protocol";
import { writePrivateJson } from "./private-file.js";

export const CLUSTER_FILE = "cluster.json";

export function defaultDataDir(): string {
  return process.env.SWITCHYARD_DATA_DIR ?? ".switchyard";
}

/** Where a node caches model artifacts unless told: `<data dir>/models` (`switchyard up` and `switchyard node`). */
export const defaultCacheDir = (dataDir: string) => path.join(dataDir, "models");

export async function readClusterFile(dataDir: string): Promise<ClusterFile | undefined> {
  const file = path.join(dataDir, CLUSTER_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const parsed = ClusterFile.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new SwitchyardError(
      "INVALID_PARAMETER_VALUE",
      `${file} is not a valid cluster file: ${parsed.error.message}`,
    );
  }
  return parsed.data;
}

/** It holds credentials: written like secrets.json (whole, then renamed, mode 0600). */
export async function writeClusterFile(dataDir: string, content: ClusterFile): Promise<string> {
  const file = path.join(dataDir, CLUSTER_FILE);
  await writePrivateJson(file, content);
  return file;
}

export async function removeClusterFile(dataDir: string): Promise<void> {
  await rm(path.join(dataDir, CLUSTER_FILE), { force: true });
}

export interface Target {
  natsUrl: string;
  /** A NATS credentials file (`--creds`, `$SWITCHYARD_NATS_CREDS`), for clusters run with decentralised auth. */
  creds?: string;
  cluster: string;
}

/** How a command connects to the target's NATS. */
export const natsOptionsOf = (t: Target, name: string): NatsOptions => ({
  servers: t.natsUrl,
  name,
  ...(t.creds ? { creds: t.creds } : {}),
});

/** Where a CLI command connects. The error says exactly how to get a cluster when none is found. */
export async function resolveTarget(opts: {
  nats?: string;
  creds?: string;
  dataDir?: string;
  cluster?: string;
}): Promise<Target> {
  const cluster = opts.cluster ?? process.env.SWITCHYARD_CLUSTER;
  const explicit = opts.nats ?? process.env.SWITCHYARD_NATS_URL;
  const creds = opts.creds ?? process.env.SWITCHYARD_NATS_CREDS;
  if (explicit)
    return { natsUrl: explicit, cluster: cluster ?? DEFAULT_CLUSTER, ...(creds ? { creds } : {}) };
  const dataDir = opts.dataDir ?? defaultDataDir();
  const file = await readClusterFile(dataDir);
  if (!file) {
    throw new SwitchyardError(
      "TEMPORARILY_UNAVAILABLE",
      `no local cluster found (${path.join(dataDir, CLUSTER_FILE)} does not exist): start one with ` +
        "`npm start` or `npx switchyard up`, or pass --nats <url> / set SWITCHYARD_NATS_URL",
    );
  }
  return { natsUrl: file.natsUrl, cluster: cluster ?? file.cluster, ...(creds ? { creds } : {}) };
}
