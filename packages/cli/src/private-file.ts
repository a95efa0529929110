// Files that hold credentials (cluster.json, secrets.json): written whole then renamed, mode 0600 from the
// first byte, so a reader never sees half a file and nobody else can read it, like a kubeconfig.
import { chmod, rename, writeFile } from "node:fs/promises";

export async function writePrivateJson(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}
