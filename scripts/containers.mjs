// Provisions what the container test tier needs on a machine with no Docker Hub and no engine running: Debian's
// docker.io (installed with apt when missing, as root), a dockerd it starts itself, Compose v2 from Debian trixie
// as a CLI plugin under a project-owned DOCKER_CONFIG, and a local base image (Node 20 and nats-server 2.10 from
// trixie, debootstrapped and `docker import`ed) that stands in for node:20-bookworm-slim and nats:2.10.
//
//   node scripts/containers.mjs up     provision, start dockerd when none runs; prints one JSON line:
//                                      {"dockerConfig", "baseImage", "startedDockerd", "seconds"}
//   node scripts/containers.mjs down   stop the dockerd that `up` started (none other)
//
// Progress goes to stderr. It needs the built tree (`npm run bootstrap`): the Debian fetch is @switchyard/natsd's.

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cache = join(root, ".cache", "containers");
const dockerConfig = join(cache, "docker-config");
const dockerdLog = join(cache, "dockerd.log");
// Holds the pid of the dockerd this script started; `down` stops only that one.
const startedPidFile = join(cache, "dockerd.started.pid");
const BASE_REPOSITORY = "switchyard-local-base";
// What the base image is made of; any change here makes a new tag (see baseDigest).
const BASE_SUITE = "trixie";
const BASE_PACKAGES = ["nodejs", "nats-server", "ca-certificates"];

class ContainersError extends Error {}

function say(msg) {
  process.stderr.write(`containers: ${msg}\n`);
}

/** Runs a command with stdin closed; returns stdout, or throws with its output when it fails (unless `allowFail`). */
function run(command, args, { input, allowFail = false, env = process.env } = {}) {
  const result = spawnSync(command, args, {
    cwd: root,
    env,
    input,
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    encoding: input === undefined ? "utf8" : undefined,
    maxBuffer: 256 * 1024 * 1024,
  });
  const failed = result.error || result.status !== 0;
  if (failed && !allowFail) {
    const why = result.error ? result.error.message : `exited with code ${result.status}`;
    throw new ContainersError(`${command} ${args.join(" ")} ${why}\n${String(result.stderr ?? "").trim()}`);
  }
  return failed ? undefined : String(result.stdout ?? "");
}

function onPath(command) {
  return run("sh", ["-c", `command -v ${command}`], { allowFail: true }) !== undefined;
}

function docker(args, opts = {}) {
  return run("docker", args, { ...opts, env: { ...process.env, DOCKER_CONFIG: dockerConfig } });
}

function engineAnswers() {
  return docker(["version", "--format", "{{.Server.Version}}"], { allowFail: true }) !== undefined;
}

/** Debian's docker.io (engine and client) and debootstrap, from the machine's own apt sources. */
function ensurePackages() {
  const missing = [
    ["dockerd", "docker.io"],
    ["debootstrap", "debootstrap"],
  ].filter(([command]) => !onPath(command));
  if (missing.length === 0) return;
  const packages = missing.map(([, pkg]) => pkg);
  if (process.getuid?.() !== 0) {
    throw new ContainersError(`${packages.join(" and ")} missing, and installing them needs root`);
  }
  say(`installing ${packages.join(", ")} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  run("apt-get", ["update"], { env });
  run("apt-get", ["install", "-y", "--no-install-recommends", ...packages], { env });
}

/** Starts dockerd (overlay2, its log in the project cache) unless an engine already answers. */
async function ensureEngine() {
  if (engineAnswers()) return false;
  say(`starting dockerd (log: ${dockerdLog})`);
  const out = openSync(dockerdLog, "a");
  const child = spawn("dockerd", ["--storage-driver", "overlay2"], {
    detached: true,
    stdio: ["ignore", out, out],
  });
  child.unref();
  writeFileSync(startedPidFile, `${child.pid}\n`);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (engineAnswers()) return true;
    if (child.exitCode !== null || !processAlive(child.pid)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  stopStartedEngine();
  const tail = existsSync(dockerdLog) ? readFileSync(dockerdLog, "utf8").trim().split("\n").at(-1) : "";
  throw new ContainersError(`dockerd did not start: ${tail} (see ${dockerdLog})`);
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the dockerd in startedPidFile, waiting for it to exit (it stops its containers first). */
async function stopStartedEngineAndWait() {
  const pid = stopStartedEngine();
  if (pid === undefined) return false;
  const deadline = Date.now() + 60_000;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  if (processAlive(pid)) process.kill(pid, "SIGKILL");
  return true;
}

function stopStartedEngine() {
  if (!existsSync(startedPidFile)) return undefined;
  const pid = Number(readFileSync(startedPidFile, "utf8").trim());
  rmSync(startedPidFile, { force: true });
  if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) process.kill(pid, "SIGTERM");
  return pid;
}

/** Compose v2: Debian trixie's docker-compose package, as a CLI plugin under our DOCKER_CONFIG. */
async function ensureCompose(natsd) {
  const plugin = join(dockerConfig, "cli-plugins", "docker-compose");
  if (existsSync(plugin)) return;
  const sources = natsd.trixieSourceLines(await natsd.readAptSources());
  if (sources.length === 0) throw new ContainersError("no Debian mirror in the machine's apt sources");
  const log = (msg) => say(msg);
  await natsd.withDebianPackage(
    { source: sources[0], name: "docker-compose", log },
    async (unpacked, deb) => {
      const binary = join(unpacked, "usr", "libexec", "docker", "cli-plugins", "docker-compose");
      if (!existsSync(binary))
        throw new ContainersError(`${deb} holds no usr/libexec/docker/cli-plugins/docker-compose`);
      mkdirSync(dirname(plugin), { recursive: true });
      copyFileSync(binary, `${plugin}.partial`);
      chmodSync(`${plugin}.partial`, 0o755);
      renameSync(`${plugin}.partial`, plugin);
      say(`installed Compose from ${deb} into ${plugin}`);
    },
  );
}

/**
 * The host's npm, copied into the base where node:20-bookworm-slim keeps its own: Debian's nodejs ships without
 * npm, and the Dockerfile's build stage runs `npm ci` exactly as it does on the official image.
 */
function hostNpm() {
  const globalRoot = run("npm", ["root", "--global"], { allowFail: true });
  const dir = globalRoot ? join(globalRoot.trim(), "npm") : undefined;
  if (!dir || !existsSync(join(dir, "package.json")))
    throw new ContainersError("npm's own directory not found");
  return { dir, version: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version };
}

/** The tag's digest: the recipe's inputs and the code that builds from them, so either changing makes a new image. */
function baseDigest(mirror, npmVersion) {
  const recipe = { suite: BASE_SUITE, packages: BASE_PACKAGES, mirror, npm: npmVersion };
  const hash = createHash("sha256").update(JSON.stringify(recipe));
  const hostCas = join("/usr", "local", "share", "ca-certificates");
  if (existsSync(hostCas)) hash.update(run("sh", ["-c", `cat ${hostCas}/*.crt 2>/dev/null || true`]));
  return hash.update(ensureBaseImage.toString()).update(removeRootfs.toString()).digest("hex").slice(0, 16);
}

/** debootstrap of trixie from the machine's own mirror, imported as `switchyard-local-base:<digest>`. */
async function ensureBaseImage(natsd) {
  const line = natsd.trixieSourceLines(await natsd.readAptSources())[0];
  if (!line) throw new ContainersError("no Debian mirror in the machine's apt sources");
  const mirror = line.replace(/^deb\s+(\[[^\]]*\]\s+)?/, "").split(/\s+/)[0];
  const npm = hostNpm();
  const tag = `${BASE_REPOSITORY}:${baseDigest(mirror, npm.version)}`;
  if (docker(["image", "inspect", tag], { allowFail: true }) !== undefined) return tag;

  const started = Date.now();
  const rootfs = join(cache, "rootfs");
  removeRootfs(rootfs);
  say(`debootstrap ${BASE_SUITE} (${BASE_PACKAGES.join(", ")}) into ${rootfs}`);
  run("debootstrap", [
    "--variant=minbase",
    `--include=${BASE_PACKAGES.join(",")}`,
    BASE_SUITE,
    rootfs,
    mirror,
  ]);
  mkdirSync(join(rootfs, "usr", "local", "lib", "node_modules"), { recursive: true });
  run("cp", ["-a", npm.dir, join(rootfs, "usr", "local", "lib", "node_modules", "npm")]);
  for (const bin of ["npm", "npx"]) {
    run("ln", ["-sf", `../lib/node_modules/npm/bin/${bin}-cli.js`, join(rootfs, "usr", "local", "bin", bin)]);
  }
  // The machine's own certificate authorities (a site's TLS-inspecting proxy among them) are trusted in the
  // image as on the host, so `npm ci` in the Dockerfile's build stage reaches the registry the host reaches.
  const hostCas = join("/usr", "local", "share", "ca-certificates");
  if (existsSync(hostCas)) {
    run("cp", ["-a", `${hostCas}/.`, join(rootfs, "usr", "local", "share", "ca-certificates")]);
    run("chroot", [rootfs, "update-ca-certificates"]);
  }
  // apt's downloaded archives are not part of the image.
  rmSync(join(rootfs, "var", "cache", "apt", "archives"), { recursive: true, force: true });
  say(`importing ${rootfs} as ${tag}`);
  const tar = spawnSync("tar", ["-C", rootfs, "-c", "."], { maxBuffer: 2 * 1024 * 1024 * 1024 });
  if (tar.status !== 0) throw new ContainersError(`tar of ${rootfs} failed: ${String(tar.stderr).trim()}`);
  docker(
    [
      "import",
      "--change",
      "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "--change",
      'CMD ["node"]',
      // Node reads its own CA list, not the system's: point it at the system's, which now holds the host's.
      "--change",
      "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
      "-",
      tag,
    ],
    { input: tar.stdout },
  );
  removeRootfs(rootfs);
  const size = Number(docker(["image", "inspect", "--format", "{{.Size}}", tag]).trim());
  say(`built ${tag} in ${((Date.now() - started) / 1000).toFixed(1)} s, ${(size / 1e6).toFixed(0)} MB`);
  return tag;
}

/**
 * Removes a debootstrap target. An interrupted debootstrap leaves /proc and /sys mounted inside it: those are
 * unmounted first, so the removal never reaches into the host's own /proc.
 */
function removeRootfs(rootfs) {
  const mounts = readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[1] ?? "")
    .filter((point) => point === rootfs || point.startsWith(`${rootfs}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) run("umount", ["-l", point]);
  rmSync(rootfs, { recursive: true, force: true });
}

async function loadNatsd() {
  const entry = join(root, "packages", "natsd", "dist", "mod.js");
  if (!existsSync(entry)) throw new ContainersError(`${entry} is missing: run \`npm run bootstrap\` first`);
  return import(entry);
}

async function up() {
  const started = Date.now();
  mkdirSync(cache, { recursive: true });
  ensurePackages();
  const startedDockerd = await ensureEngine();
  let baseImage;
  try {
    const natsd = await loadNatsd();
    await ensureCompose(natsd);
    baseImage = await ensureBaseImage(natsd);
  } catch (err) {
    // A failed `up` leaves no engine of its own behind: there is no `down` to come.
    if (startedDockerd) await stopStartedEngineAndWait();
    throw err;
  }
  const seconds = Number(((Date.now() - started) / 1000).toFixed(1));
  process.stdout.write(`${JSON.stringify({ dockerConfig, baseImage, startedDockerd, seconds })}\n`);
}

const command = process.argv[2];
try {
  if (command === "up") await up();
  else if (command === "down") {
    if (await stopStartedEngineAndWait()) say("stopped the dockerd that `up` started");
  } else
    throw new ContainersError(`usage: node scripts/containers.mjs up|down (got ${command ?? "nothing"})`);
} catch (err) {
  // One line first: a machine where no engine can start says so, it is never a silent skip. A failed command's
  // own output follows it.
  const [first, ...rest] = String(err?.message ?? err).split("\n");
  process.stderr.write(`containers: the container tier cannot run here: ${first}\n`);
  if (rest.length > 0) process.stderr.write(`${rest.join("\n")}\n`);
  process.exit(1);
}
