// Global setup of the container tier: builds the workspace, provisions the engine, Compose and the local base
// image (scripts/containers.mjs), and builds the Switchyard image from the repository's Dockerfile on that base
// through Compose.
// A machine where no engine can start fails the tier with the script's one line; it never skips. Teardown
// stops the dockerd the setup started (the tests' own `down` already removed their containers and volumes).

import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { build } from "../setup/global-nats.js";
import { COMPOSE_FILES } from "./compose-files.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The Docker CLI config holding the Compose plugin; tests set DOCKER_CONFIG to it. */
    dockerConfig: string;
    /** SWITCHYARD_IMAGE, SWITCHYARD_BASE_IMAGE and SWITCHYARD_NATS_IMAGE for docker-compose.yml. */
    images: Record<string, string>;
  }
}

const root = fileURLToPath(new URL("../..", import.meta.url));
const script = path.join(root, "scripts", "containers.mjs");
const SWITCHYARD_TEST_IMAGE = "switchyard:container-tier";

function containers(command: "up" | "down"): string {
  const r = spawnSync(process.execPath, [script, command], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
  });
  if (r.status !== 0)
    throw new Error(`scripts/containers.mjs ${command} failed (exit ${r.status ?? r.signal})`);
  return r.stdout;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  build();
  const provisioned = JSON.parse(containers("up")) as {
    dockerConfig: string;
    baseImage: string;
    startedDockerd: boolean;
    seconds: number;
  };
  console.log(
    `container tier: engine, Compose and ${provisioned.baseImage} ready in ${provisioned.seconds} s`,
  );
  // The images are the only difference from what a user runs: the local base stands in for node:20 and nats:2.10.
  const images = {
    SWITCHYARD_IMAGE: SWITCHYARD_TEST_IMAGE,
    SWITCHYARD_BASE_IMAGE: provisioned.baseImage,
    SWITCHYARD_NATS_IMAGE: provisioned.baseImage,
  };
  const started = Date.now();
  // Built as `docker compose up` would build it (BuildKit, the one service with a build section), once for the run.
  const built = spawnSync("docker", ["compose", ...COMPOSE_FILES.flatMap((f) => ["-f", f]), "build"], {
    cwd: root,
    env: { ...process.env, DOCKER_CONFIG: provisioned.dockerConfig, ...images },
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (built.status !== 0) {
    if (provisioned.startedDockerd) containers("down");
    throw new Error(`docker compose build failed (exit ${built.status ?? built.signal}):\n${built.stderr}`);
  }
  // Each build that changed leaves the previous image dangling (about 500 MB): only Switchyard's go.
  spawnSync(
    "docker",
    ["image", "prune", "--force", "--filter", "label=org.opencontainers.image.title=switchyard"],
    {
      stdio: "ignore",
    },
  );
  const size = spawnSync("docker", ["image", "inspect", "--format", "{{.Size}}", SWITCHYARD_TEST_IMAGE], {
    encoding: "utf8",
  }).stdout;
  console.log(
    `container tier: ${SWITCHYARD_TEST_IMAGE} built in ${((Date.now() - started) / 1000).toFixed(1)} s, ` +
      `${(Number(size) / 1e6).toFixed(0)} MB`,
  );
  project.provide("dockerConfig", provisioned.dockerConfig);
  project.provide("images", images);
  return async () => {
    if (provisioned.startedDockerd) containers("down");
  };
}
