// Starts the one nats-server a test run shares (no auth, JetStream, temp store) and hands its URL to tests.
// It must never leave the server or its store behind: the returned teardown stops it and removes the data.

import type { TestProject } from "vitest/node";
import { NatsServer } from "../../packages/natsd/src/mod.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** `nats://127.0.0.1:<port>` of the shared server; read it with `inject("natsUrl")`. */
    natsUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await NatsServer.start({});
  project.provide("natsUrl", server.url);
  return async () => {
    await server.stop({ removeData: true });
  };
}
