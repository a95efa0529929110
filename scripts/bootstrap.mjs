// Makes a checkout runnable on a machine with only Node and npm: `npm ci` when needed, build, provision nats-server.
// It must never use a dependency (it runs before `npm ci`) nor wait for input: every child's stdin is /dev/null.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const quiet = process.argv.includes("--quiet");
const lockFile = join(root, "package-lock.json");
const nodeModules = join(root, "node_modules");
// Written after a successful `npm ci`: the sha256 of the package-lock.json it installed.
const lockStamp = join(nodeModules, ".switchyard-lock-hash");

function say(msg) {
  if (!quiet) process.stdout.write(`bootstrap: ${msg}\n`);
}

class StepError extends Error {}

/**
 * Runs a command from the repo root. Output is shown live, or kept and shown only on failure with
 * --quiet; `captureStdout` returns stdout instead of showing it.
 */
function run(command, args, { captureStdout = false, env = process.env } = {}) {
  const result = spawnSync(command, args, {
    cwd: root,
    env,
    stdio: ["ignore", captureStdout || quiet ? "pipe" : "inherit", quiet ? "pipe" : "inherit"],
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    shell: process.platform === "win32" && command.endsWith(".cmd"),
  });
  if (result.error) throw new StepError(`${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.status}`;
    const shown = quiet
      ? `\n${captureStdout ? "" : (result.stdout ?? "")}${result.stderr ?? ""}`.trimEnd()
      : "";
    throw new StepError(`${[command, ...args].join(" ")} ${how}${shown}`);
  }
  return result.stdout ?? "";
}

function step(name, fn) {
  const started = Date.now();
  try {
    const result = fn();
    say(`${name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return result;
  } catch (err) {
    process.stderr.write(
      `bootstrap: step "${name}" failed: ${err instanceof StepError ? err.message : err.stack}\n`,
    );
    process.exit(1);
  }
}

function sha256(file) {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/**
 * Why node_modules does not match package-lock.json, or undefined when it does. The stamp is the fast
 * path; without it (or when it differs) npm's own record of what it installed, node_modules/.package-lock.json,
 * is compared entry by entry, so a tree installed by a plain `npm install` is not reinstalled for nothing.
 */
function staleReason(lockHash) {
  if (!existsSync(nodeModules)) return "node_modules is missing";
  if (existsSync(lockStamp) && readFileSync(lockStamp, "utf8").trim() === lockHash) return undefined;
  const hiddenFile = join(nodeModules, ".package-lock.json");
  if (!existsSync(hiddenFile)) return "node_modules/.package-lock.json is missing";
  let wanted;
  let installed;
  try {
    wanted = JSON.parse(readFileSync(lockFile, "utf8")).packages ?? {};
    installed = JSON.parse(readFileSync(hiddenFile, "utf8")).packages ?? {};
  } catch (err) {
    return `cannot read the lock files (${err.message})`;
  }
  for (const [key, entry] of Object.entries(installed)) {
    const want = wanted[key];
    if (!want) return `${key} is installed but not in package-lock.json`;
    if (want.version !== entry.version || (want.link && want.resolved !== entry.resolved)) {
      return `${key} is ${entry.version ?? entry.resolved}, package-lock.json wants ${want.version ?? want.resolved}`;
    }
  }
  for (const [key, want] of Object.entries(wanted)) {
    // Optional entries are other platforms' binaries; npm skips them here.
    if (key !== "" && !want.optional && !installed[key]) return `${key} is missing from node_modules`;
  }
  writeFileSync(lockStamp, `${lockHash}\n`);
  return undefined;
}

/** npm as the user invoked it (npm_execpath under `npm start`/`npm test`), else the one on PATH. */
function npmCommand(args) {
  const execPath = process.env.npm_execpath;
  if (execPath && /^npm(-cli)?(\.c?js)?$/.test(basename(execPath)))
    return [process.execPath, [execPath, ...args]];
  return [process.platform === "win32" ? "npm.cmd" : "npm", args];
}

if (!existsSync(lockFile)) {
  process.stderr.write(`bootstrap: ${lockFile} is missing; it is part of the repository\n`);
  process.exit(1);
}

const lockHash = sha256(lockFile);
const reason = staleReason(lockHash);
if (reason) {
  step(`npm ci (${reason})`, () => {
    const [command, args] = npmCommand([
      "ci",
      "--no-audit",
      "--no-fund",
      ...(quiet ? ["--loglevel=error"] : []),
    ]);
    // npm 11 skips onnxruntime-node's postinstall (a GPU-binaries download) because package.json's
    // allowScripts denies it; an older npm ignores allowScripts, so the package is told to skip it too.
    run(command, args, { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip" } });
    writeFileSync(lockStamp, `${lockHash}\n`);
  });
} else {
  say("dependencies are up to date");
}

step("build (tsc -b)", () => {
  run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-b"]);
});

const natsServer = step("provision nats-server", () =>
  run(
    process.execPath,
    [join(root, "packages", "natsd", "dist", "provision-cli.js"), ...(quiet ? ["--quiet"] : [])],
    {
      captureStdout: true,
    },
  ).trim(),
);
say(`nats-server: ${natsServer}`);
