// Prints the path of a usable nats-server (provisioning one into the project cache if needed); used by bootstrap.
// It must never print anything but the path on stdout: scripts capture it. Progress goes to stderr.

import { findNatsServer } from "./provision.js";

const args = process.argv.slice(2);
const quiet = args.includes("--quiet");
const cacheDirIndex = args.indexOf("--cache-dir");
const cacheDir = cacheDirIndex >= 0 ? args[cacheDirIndex + 1] : undefined;
const noDownload = args.includes("--no-download");

try {
  const path = await findNatsServer({
    cacheDir,
    download: !noDownload,
    log: quiet ? undefined : (msg) => process.stderr.write(`natsd: ${msg}\n`),
  });
  process.stdout.write(`${path}\n`);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
}
