// Builds the workspace, then starts the one nats-server a test run shares (no auth, JetStream, temp store) and
// hands its URL to tests. It must never leave the server or its store behind: the returned teardown stops it
// and removes the data.

import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { NatsServer } from "../../packages/natsd/src/mod.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** `nats://127.0.0.1:<port>` of the shared server; read it with `inject("natsUrl")`. */
    natsUrl: string;
  }
}

/**
 * Tests import package sources, but worker threads, replica processes and role processes run the built
 * `dist/`: an edited worker or flavor would otherwise be tested as it was at the last build. `tsc -b` is
 * incremental (a few seconds when nothing changed), so every run — `npm test` or one file — builds first.
 */
export function build(): void {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const r = spawnSync(process.execPath, [tsc, "-b"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0)
    throw new Error(`tsc -b failed (exit ${r.status ?? r.signal}): the tests would run stale dist/`);
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  build();
  const server = await NatsServer.start({});
  project.provide("natsUrl", server.url);
  return async () => {
    await server.stop({ removeData: true });
  };
}
