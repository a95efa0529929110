import { fileURLToPath } from "node:url";
import { configDefaults, defineConfig } from "vitest/config";

// Tests import the workspace packages from source, so no build is needed for in-process tests;
// tests that spawn processes (switchyard up, replicas) run the built dist/ that `npm test` builds first.
const src = (name: string, file: string) =>
  fileURLToPath(new URL(`./packages/${name}/src/${file}.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      // Subpath entries (`@switchyard/data/codec`, `@switchyard/model/link`…) are files of the same name.
      { find: /^@switchyard\/([a-z-]+)\/([a-z-]+)$/, replacement: src("$1", "$2") },
      { find: /^@switchyard\/([a-z-]+)$/, replacement: src("$1", "mod") },
    ],
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // The container tier needs a Docker engine: vitest.containers.config.ts runs it.
    exclude: [...configDefaults.exclude, "test/containers/**"],
    globalSetup: ["test/setup/global-nats.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
