import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Tests import the workspace packages from source, so no build is needed for in-process tests;
// tests that spawn processes (switchyard up, replicas) run the built dist/ that `npm test` builds first.
const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/mod.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [{ find: /^@switchyard\/([a-z-]+)$/, replacement: pkg("$1") }],
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["test/setup/global-nats.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
