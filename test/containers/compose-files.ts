import path from "node:path";

/** The repository's compose file and the tier's override (images only), relative to the repository root. */
export const COMPOSE_FILES = ["docker-compose.yml", path.join("test", "containers", "compose.local.yml")];
