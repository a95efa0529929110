// Finds a nats-server ≥ 2.10 binary: $SWITCHYARD_NATS_SERVER, PATH, the project cache, or Debian trixie's package
// from the mirror the machine's apt sources already name.
// It must never change the system: no apt sources added, nothing installed or upgraded, only the project cache written.

import { execFile } from "node:child_process";
import { constants, existsSync, readFileSync } from "node:fs";
import { access, chmod, copyFile, mkdir, readdir, realpath, rename } from "node:fs/promises";
import { homedir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_APT_DIR, readAptSources, trixieSourceLines } from "./apt-sources.js";
import { withDebianPackage } from "./debian-package.js";
import {
  compareNatsServerVersions,
  isSupportedNatsServerVersion,
  MIN_NATS_SERVER_VERSION,
  type NatsServerVersion,
  parseNatsServerVersion,
} from "./version.js";

export const NATS_SERVER_ENV = "SWITCHYARD_NATS_SERVER";

export interface FindNatsServerOptions {
  /** Project cache holding `<version>/nats-server`; default `<repo root>/.cache/nats-server`. */
  cacheDir?: string;
  /** Progress messages (what was skipped and why, downloads); default: silent. */
  log?: (msg: string) => void;
  /** Allow step 4, the Debian trixie download (needs the network); default true. */
  download?: boolean;
  /** Environment to read SWITCHYARD_NATS_SERVER and PATH from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** apt's configuration directory, whose sources name the Debian mirror for step 4; default /etc/apt. */
  aptDir?: string;
}

/** Thrown when no usable nats-server exists; the message says what to install. */
export class NatsServerNotFoundError extends Error {
  override name = "NatsServerNotFoundError";
}

/** Returns the path of a nats-server ≥ 2.10, fetching one into the project cache if needed. */
export async function findNatsServer(opts: FindNatsServerOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => {});
  const cacheDir = resolve(opts.cacheDir ?? defaultNatsServerCacheDir());
  // Each step that did not yield a binary leaves a line here, so the final error tells the whole story.
  const tried: string[] = [];

  // 1. An explicit choice is never second-guessed by falling through to other sources.
  const explicit = env[NATS_SERVER_ENV];
  if (explicit) return checkExplicitBinary(resolve(explicit));
  tried.push(`${NATS_SERVER_ENV} is not set`);

  // 2. PATH, first supported one wins; older ones (Debian bookworm's 2.9.10) are skipped, never used.
  for (const candidate of await binariesOnPath("nats-server", env.PATH ?? "")) {
    const version = await natsServerVersion(candidate).catch((err: Error) => err);
    if (version instanceof Error) {
      log(`skipping ${candidate}: ${version.message}`);
      tried.push(`${candidate} on PATH does not run: ${version.message}`);
    } else if (!isSupportedNatsServerVersion(version)) {
      log(`skipping ${candidate}: version ${version.text} is older than ${MIN_NATS_SERVER_VERSION.text}`);
      tried.push(
        `${candidate} on PATH is version ${version.text}, older than ${MIN_NATS_SERVER_VERSION.text}`,
      );
    } else {
      return candidate;
    }
  }
  if (!tried.some((t) => t.includes("on PATH"))) tried.push("no nats-server on PATH");

  // 3. The project cache, newest first.
  const cached = await findInCache(cacheDir, log);
  if (cached) return cached;
  tried.push(`no usable nats-server in ${cacheDir}`);

  // 4. Debian trixie's package, unpacked into the cache without touching the system's apt state.
  if (opts.download ?? true) {
    const plan = await debianDownloadPlan(env, opts.aptDir ?? DEFAULT_APT_DIR);
    if ("unavailable" in plan) {
      tried.push(`no Debian trixie download: ${plan.unavailable}`);
    } else {
      try {
        return await downloadDebianNatsServer({ cacheDir, log, env, sources: plan.sources });
      } catch (err) {
        tried.push(`Debian trixie download failed: ${(err as Error).message}`);
      }
    }
  } else {
    tried.push("download disabled");
  }

  // 5. One message that says exactly what to do.
  throw new NatsServerNotFoundError(
    `No nats-server ${MIN_NATS_SERVER_VERSION.text} or newer found.\n` +
      tried.map((t) => `  - ${t}\n`).join("") +
      `Install nats-server ≥ ${MIN_NATS_SERVER_VERSION.text} (https://github.com/nats-io/nats-server/releases) ` +
      `and put it on PATH, or set ${NATS_SERVER_ENV}=/path/to/nats-server.`,
  );
}

async function checkExplicitBinary(binary: string): Promise<string> {
  if (!existsSync(binary)) {
    throw new NatsServerNotFoundError(
      `${NATS_SERVER_ENV}=${binary}: no such file. Point it at a nats-server ≥ ${MIN_NATS_SERVER_VERSION.text} binary, or unset it.`,
    );
  }
  let version: NatsServerVersion;
  try {
    version = await natsServerVersion(binary);
  } catch (err) {
    throw new NatsServerNotFoundError(
      `${NATS_SERVER_ENV}=${binary}: cannot run it: ${(err as Error).message}`,
    );
  }
  if (!isSupportedNatsServerVersion(version)) {
    throw new NatsServerNotFoundError(
      `${NATS_SERVER_ENV}=${binary} is nats-server ${version.text}; Switchyard needs ${MIN_NATS_SERVER_VERSION.text} or newer.`,
    );
  }
  return binary;
}

/** Runs `<binary> --version` and parses its answer. */
export function natsServerVersion(binary: string): Promise<NatsServerVersion> {
  return new Promise((resolvePromise, reject) => {
    execFile(binary, ["--version"], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(err.message.split("\n")[0]));
      const version = parseNatsServerVersion(`${stdout}\n${stderr}`);
      if (!version) return reject(new Error(`"${binary} --version" printed no version: ${stdout.trim()}`));
      resolvePromise(version);
    });
  });
}

async function binariesOnPath(name: string, pathValue: string): Promise<string[]> {
  const found: string[] = [];
  const seen = new Set<string>();
  for (const dir of pathValue.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      const real = await realpath(candidate);
      if (seen.has(real)) continue;
      seen.add(real);
      found.push(candidate);
    } catch {
      // not here
    }
  }
  return found;
}

async function findInCache(cacheDir: string, log: (msg: string) => void): Promise<string | undefined> {
  let entries: string[];
  try {
    entries = await readdir(cacheDir);
  } catch {
    return undefined;
  }
  const versions = entries
    .map((name) => ({ name, version: parseNatsServerVersion(name) }))
    .filter((e): e is { name: string; version: NatsServerVersion } => !!e.version)
    .filter((e) => isSupportedNatsServerVersion(e.version))
    .sort((a, b) => compareNatsServerVersions(b.version, a.version));
  for (const { name } of versions) {
    const candidate = join(cacheDir, name, "nats-server");
    if (!existsSync(candidate)) continue;
    // The directory name is only a hint; trust what the binary says about itself.
    const version = await natsServerVersion(candidate).catch((err: Error) => err);
    if (version instanceof Error) {
      log(`skipping cached ${candidate}: ${version.message}`);
    } else if (isSupportedNatsServerVersion(version)) {
      return candidate;
    } else {
      log(`skipping cached ${candidate}: version ${version.text}`);
    }
  }
  return undefined;
}

/** The sources.list lines step 4 would try, or why step 4 cannot run here. */
async function debianDownloadPlan(
  env: NodeJS.ProcessEnv,
  aptDir: string,
): Promise<{ sources: string[] } | { unavailable: string }> {
  if (process.platform !== "linux") return { unavailable: `not Linux (${process.platform})` };
  const path = env.PATH ?? "";
  const missing = [];
  if ((await binariesOnPath("apt-get", path)).length === 0) missing.push("apt-get");
  if ((await binariesOnPath("dpkg", path)).length === 0) missing.push("dpkg");
  if (missing.length > 0) {
    return { unavailable: `not a Debian-family system (${missing.join(" and ")} not found)` };
  }
  const sources = await trixieSourcesFromApt(aptDir);
  return Array.isArray(sources) ? { sources } : sources;
}

/** Debian trixie on the machine's own mirrors, or why there is none. */
async function trixieSourcesFromApt(aptDir: string): Promise<string[] | { unavailable: string }> {
  const sources = trixieSourceLines(await readAptSources(aptDir));
  if (sources.length > 0) return sources;
  return {
    unavailable:
      `no Debian source in ${join(aptDir, "sources.list")} or ${join(aptDir, "sources.list.d")}/ ` +
      "to take the mirror from (a `deb <uri> <release> main` line or a deb822 stanza with a Debian release suite)",
  };
}

export interface DownloadOptions {
  cacheDir: string;
  log?: (msg: string) => void;
  env?: NodeJS.ProcessEnv;
  /** sources.list lines to try in order; default: Debian trixie on the mirrors of `aptDir`'s sources. */
  sources?: string[];
  /** apt's configuration directory, read when `source` is not given; default /etc/apt. */
  aptDir?: string;
}

/**
 * Downloads Debian trixie's nats-server package from the first of `sources` that has it, and returns the path
 * of its binary in the cache. A sources.list line that fails is reported with the next one's result.
 */
export async function downloadDebianNatsServer(opts: DownloadOptions): Promise<string> {
  let sources = opts.sources;
  if (!sources) {
    const found = await trixieSourcesFromApt(opts.aptDir ?? DEFAULT_APT_DIR);
    if (!Array.isArray(found)) throw new Error(found.unavailable);
    sources = found;
  }
  if (sources.length === 0) throw new Error("no sources.list line to download from");
  const failures: string[] = [];
  for (const source of sources) {
    try {
      return await downloadFromSource(source, opts);
    } catch (err) {
      opts.log?.(`${source}: ${(err as Error).message}`);
      failures.push(`from "${source}": ${(err as Error).message}`);
    }
  }
  throw new Error(failures.join("\n"));
}

/**
 * Downloads nats-server from `source` (a private sources.list holding only that line), and copies its binary
 * to `<cacheDir>/<version>/nats-server`. Returns that path.
 */
async function downloadFromSource(source: string, opts: DownloadOptions): Promise<string> {
  const log = opts.log ?? (() => {});
  return withDebianPackage({ source, name: "nats-server", log, env: opts.env }, async (unpacked, deb) => {
    const binary = [
      join(unpacked, "usr", "sbin", "nats-server"),
      join(unpacked, "usr", "bin", "nats-server"),
    ].find((p) => existsSync(p));
    if (!binary) throw new Error(`${deb} holds no usr/sbin/nats-server`);
    const version = await natsServerVersion(binary);
    if (!isSupportedNatsServerVersion(version)) {
      throw new Error(`${deb} holds nats-server ${version.text}, older than ${MIN_NATS_SERVER_VERSION.text}`);
    }

    // Copy then rename, so a concurrent finder never sees a half-written binary.
    const targetDir = join(resolve(opts.cacheDir), version.text);
    const target = join(targetDir, "nats-server");
    await mkdir(targetDir, { recursive: true });
    const partial = `${target}.partial-${process.pid}`;
    await copyFile(binary, partial);
    await chmod(partial, 0o755);
    await rename(partial, target);
    log(`installed nats-server ${version.text} from ${deb} into ${target}`);
    return target;
  });
}

/** The directory of the npm workspace root (the package.json with "workspaces"), walking up from `from`. */
export function findRepoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = resolve(from);
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      try {
        if (JSON.parse(readFileSync(manifest, "utf8")).workspaces) return dir;
      } catch {
        // an unreadable package.json is not the root; keep walking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** `<repo root>/.cache/nats-server`, or the user's cache dir when this module lives outside the repo. */
export function defaultNatsServerCacheDir(): string {
  const root = findRepoRoot();
  if (root) return join(root, ".cache", "nats-server");
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "switchyard", "nats-server");
}
