import { defineConfig } from "vitest/config";
import base from "./vitest.config.js";

// The container tier (`npm run test:containers`): the compose file on a Docker engine, started by its own setup.
// Separate from the main suite, which never needs an engine.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ["test/containers/**/*.test.ts"],
    exclude: [],
    globalSetup: ["test/containers/setup.ts"],
    // Building an image and starting eight containers takes minutes on a two-core machine.
    testTimeout: 300_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    // Testcontainers copies every container's output to stderr (through `debug`), so a role that crashed or
    // restarted while the cluster came up is in the run's log, not lost with the containers.
    env: { ...base.test?.env, DEBUG: "testcontainers:containers" },
  },
});
