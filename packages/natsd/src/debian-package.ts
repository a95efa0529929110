// Fetches one package from a Debian release the machine's apt does not track, without changing the system: apt-get
// runs against a private sources.list, lists and cache in a temp dir; the system's apt state is only read.
// nats-server and the container tier's Compose plugin both come from Debian trixie this way.

import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface DebianPackageOptions {
  /** The one sources.list line to download from, e.g. a `deb <mirror> trixie main` line. */
  source: string;
  /** The binary package's name (`nats-server`, `docker-compose`). */
  name: string;
  log?: (msg: string) => void;
  env?: NodeJS.ProcessEnv;
}

/**
 * Downloads package `name` as `source` offers it and unpacks it with `dpkg -x` into a temp dir, then calls `use`
 * with that dir (it copies what it needs out) and the .deb's file name; the temp dir is removed afterwards.
 */
export async function withDebianPackage<T>(
  opts: DebianPackageOptions,
  use: (unpacked: string, deb: string) => Promise<T>,
): Promise<T> {
  const log = opts.log ?? (() => {});
  const tmp = await mkdtemp(join(tmpdir(), `switchyard-${opts.name}-apt-`));
  try {
    await writeFile(join(tmp, "sources.list"), `${opts.source}\n`);
    await mkdir(join(tmp, "lists", "partial"), { recursive: true });
    await mkdir(join(tmp, "cache", "archives", "partial"), { recursive: true });
    const aptOptions = [
      ["Dir::Etc::SourceList", join(tmp, "sources.list")],
      ["Dir::Etc::SourceParts", "/dev/null"],
      ["Dir::State::Lists", join(tmp, "lists")],
      ["Dir::Cache", join(tmp, "cache")],
    ];
    // As root apt drops to the _apt user, which cannot enter our 0700 temp dir; it would fall back
    // to root anyway, with a warning. Saying so up front only silences the warning.
    if (process.getuid?.() === 0) aptOptions.push(["APT::Sandbox::User", "root"]);
    const aptArgs = aptOptions.flatMap(([k, v]) => ["-o", `${k}=${v}`]);
    const env = { ...(opts.env ?? process.env), DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" };

    log(`fetching the package index for ${opts.name} (${opts.source})`);
    await runTool("apt-get", [...aptArgs, "update"], { cwd: tmp, env });
    log(`downloading the ${opts.name} package`);
    await runTool("apt-get", [...aptArgs, "download", opts.name], { cwd: tmp, env });
    const deb = (await readdir(tmp)).find((f) => f.startsWith(`${opts.name}_`) && f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download left no ${opts.name}_*.deb in ${tmp}`);
    const unpacked = join(tmp, "x");
    await runTool("dpkg", ["-x", join(tmp, deb), unpacked], { cwd: tmp, env });
    return await use(unpacked, deb);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Runs a tool with stdin closed (it must never wait for an answer) and keeps its output for errors. */
function runTool(
  command: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 300_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${command}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolvePromise();
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      reject(new Error(`${command} ${args.at(-1)} ${how}:\n${output.trim()}`));
    });
  });
}
