// Runs nats-server child processes for `switchyard up` and the tests: config file, spawn, wait until JetStream answers, stop.
// It must never leave a server running after its parent exits, nor delete a directory it was not told it may remove.

import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { extname, join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type NatsUser, renderAuthorization, writeAuthorizationFile } from "./authorization.js";
import { probeJetStream } from "./probe.js";
import { findNatsServer } from "./provision.js";

/**
 * GOMAXPROCS for the nats-server we start: half the cores (at least one) unless the operator set it. Go's idle
 * threads spin looking for work on every core; on a small host the bridge and replicas need those cores — at one
 * connection nats-server used ~210 µs of CPU per request with the default and ~125 µs with this (issue 13).
 */
export function goMaxProcs(env: NodeJS.ProcessEnv = process.env, cores = availableParallelism()): string {
  return env.GOMAXPROCS?.trim() || String(Math.max(1, Math.floor(cores / 2)));
}

export interface NatsServerOptions {
  /** nats-server binary; default `await findNatsServer()`. */
  binary?: string;
  /** Client listen address; default "127.0.0.1". */
  host?: string;
  /** Client port; default -1 (the server picks one, learned from its ports file). */
  port?: number;
  /** JetStream store dir; default a fresh temp dir (removed by `stop({ removeData: true })`). */
  storeDir?: string;
  /** `jetstream { sync_interval: always }`: fsync every write (durable, ~4× slower publishes). */
  syncAlways?: boolean;
  /**
   * Authorization users, each with its permissions (none: everything). Exclusive with `token`. The first
   * one is how `start` checks that JetStream answers, so it needs `$JS.API.INFO` and an inbox.
   */
  users?: NatsUser[];
  /**
   * Write the users into this file (mode 0600) and `include` it, instead of the generated config, so
   * `reloadAuthorization` (or another process: rewrite it, SIGHUP the pid) changes them without a restart.
   */
  authorizationFile?: string;
  /** Authorization token. Exclusive with `users`. */
  token?: string;
  /** Route config for clustered servers; `port` default -1. JetStream clustering needs `serverName` too. */
  cluster?: { name: string; port?: number; routes: string[] };
  serverName?: string;
  /** Server log file; without it the log is captured in memory (the last lines, see `logs()`). */
  logFile?: string;
  /** Raw config appended at the end of the generated file. */
  extraConfig?: string;
  /** HTTP monitoring port (-1: the server picks); default: no monitoring. */
  monitorPort?: number;
  /** How long `start`/`restart` wait for JetStream to answer; default 30 s. */
  startTimeoutMs?: number;
}

export interface StopOptions {
  /** Also delete the JetStream store dir; default false. */
  removeData?: boolean;
  /** Grace period after SIGTERM before SIGKILL; default 10 s. */
  timeoutMs?: number;
}

/** Defaults in one place; the option docs above repeat them for readers of the types. */
export const natsServerDefaults = {
  host: "127.0.0.1",
  port: -1,
  startTimeoutMs: 30_000,
  stopTimeoutMs: 10_000,
  /** Lines of captured log kept for `logs()` and error messages. */
  logTailLines: 200,
} as const;

interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** The resolved, validated options a launch renders its config from; ports get pinned after the first launch. */
interface LaunchSpec {
  binary: string;
  host: string;
  port: number;
  storeDir: string;
  syncAlways: boolean;
  users: NatsUser[];
  authorizationFile: string | undefined;
  token: string | undefined;
  cluster: { name: string; port: number; routes: string[] } | undefined;
  serverName: string | undefined;
  logFile: string | undefined;
  extraConfig: string | undefined;
  monitorPort: number | undefined;
  startTimeoutMs: number;
  runDir: string;
}

export class NatsServer {
  #spec: LaunchSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<ExitStatus> = Promise.resolve({ code: null, signal: null });
  #running = false;
  #stopped = false;
  #port = 0;
  #logTail: string[] = [];

  private constructor(spec: LaunchSpec) {
    this.#spec = spec;
  }

  /** Writes a config, spawns nats-server and resolves once a client can use JetStream on it. */
  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    validateOptions(opts);
    const binary = opts.binary ?? (await findNatsServer());
    const runDir = await mkdtemp(join(tmpdir(), "switchyard-nats-"));
    const storeDir = opts.storeDir ? resolve(opts.storeDir) : await mkdtemp(join(tmpdir(), "switchyard-js-"));
    if (opts.storeDir) await mkdir(storeDir, { recursive: true });
    const server = new NatsServer({
      binary,
      host: opts.host ?? natsServerDefaults.host,
      port: opts.port ?? natsServerDefaults.port,
      storeDir,
      syncAlways: opts.syncAlways ?? false,
      users: opts.users ?? [],
      authorizationFile: opts.authorizationFile && resolve(opts.authorizationFile),
      token: opts.token,
      cluster: opts.cluster && { ...opts.cluster, port: opts.cluster.port ?? -1 },
      serverName: opts.serverName,
      logFile: opts.logFile && resolve(opts.logFile),
      extraConfig: opts.extraConfig,
      monitorPort: opts.monitorPort,
      startTimeoutMs: opts.startTimeoutMs ?? natsServerDefaults.startTimeoutMs,
      runDir,
    });
    try {
      await server.#launch();
    } catch (err) {
      await server.kill(); // in case the failure was ours, not the server's
      await rm(runDir, { recursive: true, force: true });
      // A store we created for this server holds nothing anyone asked for; a given one is left alone.
      if (!opts.storeDir) await rm(storeDir, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  get port(): number {
    return this.#port;
  }

  /** `nats://host:port`, without credentials. */
  get url(): string {
    return `nats://${urlHost(this.#spec.host)}:${this.#port}`;
  }

  /** The current process id (a new one after `restart()`). */
  get pid(): number {
    return this.#child?.pid ?? -1;
  }

  get storeDir(): string {
    return this.#spec.storeDir;
  }

  get configFile(): string {
    return join(this.#spec.runDir, "nats-server.conf");
  }

  /** The route port, when clustered. */
  get clusterPort(): number | undefined {
    return this.#spec.cluster?.port;
  }

  /** The HTTP monitoring port, when asked for. */
  get monitorPort(): number | undefined {
    return this.#spec.monitorPort;
  }

  /** False once the process exited, whoever ended it. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * `nats://user:password@host:port`, for clients that read credentials from the URL (nats CLI, Go).
   * nats.js v3 ignores URL credentials: pass `{ user, pass }` to `connect` instead.
   */
  urlWithCredentials(user: string, password: string): string {
    return `nats://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${urlHost(this.#spec.host)}:${this.#port}`;
  }

  /** Rewrites the authorization file with `users` and makes the running server re-read it (SIGHUP). */
  async reloadAuthorization(users: NatsUser[]): Promise<void> {
    const file = this.#spec.authorizationFile;
    if (!file)
      throw new Error("NatsServer.reloadAuthorization(): the server was started without authorizationFile");
    await writeAuthorizationFile(file, users);
    this.#spec.users = users;
    if (this.#running) this.#child?.kill("SIGHUP");
  }

  /** SIGTERM, SIGKILL after `timeoutMs`, waits for the exit, then removes the config dir (and the store if asked). */
  async stop(opts: StopOptions = {}): Promise<void> {
    await this.#terminate(opts.timeoutMs ?? natsServerDefaults.stopTimeoutMs);
    this.#stopped = true;
    await rm(this.#spec.runDir, { recursive: true, force: true });
    if (opts.removeData) await rm(this.#spec.storeDir, { recursive: true, force: true });
  }

  /** SIGKILL now, as a crash would; the store and config stay, so `restart()` still works. */
  async kill(): Promise<void> {
    if (this.#running) this.#child?.kill("SIGKILL");
    await this.#exited;
  }

  /** Stops the process (keeping its data) and starts it again on the same port(s) and store. */
  async restart(): Promise<void> {
    if (this.#stopped) throw new Error("NatsServer.restart(): the server was stopped; start a new one");
    await this.#terminate(natsServerDefaults.stopTimeoutMs);
    await this.#launch();
  }

  /** The captured log tail (or the tail of `logFile`), for error messages. */
  logs(): string {
    const lines = [...this.#logTail];
    if (this.#spec.logFile) lines.unshift(...readTail(this.#spec.logFile, natsServerDefaults.logTailLines));
    return lines.join("\n");
  }

  async #terminate(timeoutMs: number): Promise<void> {
    if (!this.#running) return;
    this.#child?.kill("SIGTERM");
    // The grace timer is cancelled once the process exits; a pending one would keep the parent alive.
    const grace = new AbortController();
    const exited = await Promise.race([
      this.#exited.then(() => true),
      sleep(timeoutMs, false, { signal: grace.signal }).catch(() => false),
    ]);
    grace.abort();
    if (!exited) {
      this.#child?.kill("SIGKILL");
      await this.#exited;
    }
  }

  async #launch(): Promise<void> {
    const spec = this.#spec;
    if (spec.authorizationFile) await writeAuthorizationFile(spec.authorizationFile, spec.users);
    await writeFile(this.configFile, renderConfig(spec));
    this.#logTail = [];
    const child = spawn(spec.binary, ["-c", this.configFile], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, GOMAXPROCS: goMaxProcs() },
    });
    this.#child = child;
    this.#running = true;
    this.#exited = new Promise((resolveExit) => {
      child.once("error", (error) => {
        this.#running = false;
        resolveExit({ code: null, signal: null, error });
      });
      child.once("exit", (code, signal) => {
        this.#running = false;
        resolveExit({ code, signal });
      });
    });
    trackChild(child, spec.runDir);
    this.#capture(child.stdout);
    this.#capture(child.stderr);

    const deadline = Date.now() + spec.startTimeoutMs;
    let waitingFor = "its ports file";
    for (;;) {
      if (!this.#running) {
        const status = await this.#exited;
        const how = status.error
          ? `could not be started (${status.error.message})`
          : `exited (${status.signal ?? `code ${status.code}`}) before it was ready`;
        // The server's own fatal line (a port in use, a bad config) is the reason a person needs first.
        const logs = this.logs();
        const fatal = logs
          .split("\n")
          .reverse()
          .find((l) => /\[(FTL|ERR)\]/.test(l))
          ?.replace(/^.*\[(FTL|ERR)\]\s*/, "");
        throw new Error(
          `nats-server ${how}${fatal ? `: ${fatal}` : ""} (binary ${spec.binary}; config ${this.configFile})\n${logs}`,
        );
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(
          `nats-server was not ready within ${spec.startTimeoutMs} ms (waiting for ${waitingFor}); config ${this.configFile}\n${this.logs()}`,
        );
      }
      const ports = child.pid === undefined ? undefined : await readPortsFile(spec.runDir, child.pid);
      if (ports) {
        this.#port = ports.client;
        const auth = spec.users[0]
          ? { user: spec.users[0].user, password: spec.users[0].password }
          : { token: spec.token };
        const probe = await probeJetStream(connectHost(spec.host), ports.client, auth, 2_000);
        if (probe.ready) {
          // Pin every port the server picked, so a restart comes back where clients and routes expect it.
          spec.port = ports.client;
          if (spec.cluster && ports.cluster) spec.cluster.port = ports.cluster;
          if (spec.monitorPort !== undefined && ports.monitoring) spec.monitorPort = ports.monitoring;
          return;
        }
        if (probe.fatal) {
          await this.kill();
          throw new Error(
            `nats-server on port ${ports.client} refused the harness: ${probe.reason}\n${this.logs()}`,
          );
        }
        waitingFor = `JetStream: ${probe.reason}`;
      }
      await sleep(ports ? 100 : 20);
    }
  }

  #capture(stream: NodeJS.ReadableStream | null): void {
    let partial = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      this.#logTail.push(...lines);
      if (this.#logTail.length > natsServerDefaults.logTailLines) {
        this.#logTail.splice(0, this.#logTail.length - natsServerDefaults.logTailLines);
      }
    });
  }
}

/** The JetStream meta group (the Raft group holding every stream's placement) as its leader reports it. */
export interface MetaGroup {
  leader: string;
  /** Servers the group is configured for. */
  size: number;
  /** Every peer, the leader included: `current` once it has caught up with the leader's log. */
  peers: Array<{ name: string; current: boolean }>;
}

export interface NatsCluster {
  servers: NatsServer[];
  /** Client URLs of all nodes, in node order. */
  urls: string[];
  /**
   * The meta group as its leader's monitoring endpoint (`/jsz`) reports it; undefined while no running node
   * leads it. Needs the cluster started with `monitorPort`.
   */
  metaGroup(): Promise<MetaGroup | undefined>;
  /** Stops every node (in parallel); `removeData` as for `NatsServer.stop`. */
  stop(opts?: StopOptions): Promise<void>;
}

/**
 * Starts `n` routed nodes with clustered JetStream (node i: server name `<serverName|sy>-n<i>`, its own
 * store dir, a free cluster port) and resolves once every node's JetStream answers.
 * `storeDir` and `logFile`, when given, become per node: `<storeDir>/n<i>`, `<logFile stem>-n<i><ext>`.
 */
export async function startCluster(
  n: number,
  opts: Omit<NatsServerOptions, "cluster" | "port"> = {},
): Promise<NatsCluster> {
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`startCluster(n): n must be a positive integer, got ${n}`);
  validateOptions(opts);
  const binary = opts.binary ?? (await findNatsServer());
  const host = opts.host ?? natsServerDefaults.host;
  const prefix = opts.serverName ?? "sy";
  // Routes must name ports before any node runs, so the cluster ports are chosen here, not by the servers.
  const clusterPorts = await freePorts(n, host);
  const routes = clusterPorts.map((p) => `nats-route://${urlHost(host)}:${p}`);
  const nodeOptions = clusterPorts.map((clusterPort, i): NatsServerOptions => {
    const node = `n${i + 1}`;
    return {
      ...opts,
      binary,
      serverName: `${prefix}-${node}`,
      storeDir: opts.storeDir && join(opts.storeDir, node),
      logFile: opts.logFile && withSuffix(opts.logFile, `-${node}`),
      monitorPort:
        opts.monitorPort === undefined || opts.monitorPort <= 0 ? opts.monitorPort : opts.monitorPort + i,
      // Every node gets every route, its own included (nats-server ignores a route to itself), so a
      // one-node cluster still has the configured routes clustered JetStream insists on.
      cluster: { name: `${prefix}-cluster`, port: clusterPort, routes },
    };
  });
  // In parallel: JetStream becomes ready only once a quorum of nodes runs.
  const results = await Promise.allSettled(nodeOptions.map((o) => NatsServer.start(o)));
  const servers = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await Promise.all(servers.map((s) => s.stop({ removeData: !opts.storeDir })));
    throw failed.reason;
  }
  return {
    servers,
    urls: servers.map((s) => s.url),
    metaGroup: () => metaGroupOf(servers, host),
    stop: async (stopOpts) => {
      await Promise.all(servers.map((s) => s.stop(stopOpts)));
    },
  };
}

interface Jsz {
  meta_cluster?: {
    leader?: string;
    cluster_size?: number;
    replicas?: Array<{ name: string; current?: boolean }>;
  };
}

/**
 * Only the leader's `/jsz` lists the other peers (`/jsz` does not name its own server), so every running node
 * is asked and the view with the peers is the leader's.
 */
async function metaGroupOf(servers: NatsServer[], host: string): Promise<MetaGroup | undefined> {
  if (servers.some((s) => s.monitorPort === undefined)) {
    throw new Error("NatsCluster.metaGroup(): start the cluster with monitorPort (-1: any free port)");
  }
  const views = await Promise.all(
    servers
      .filter((s) => s.running)
      .map(async (s) => {
        const res = await fetch(`http://${urlHost(host)}:${s.monitorPort}/jsz`).catch(() => undefined);
        return res?.ok ? ((await res.json()) as Jsz) : undefined;
      }),
  );
  const lead = views.find((v) => v?.meta_cluster?.leader && v.meta_cluster.replicas);
  const meta = lead?.meta_cluster;
  if (!meta?.leader) return undefined;
  return {
    leader: meta.leader,
    size: meta.cluster_size ?? 0,
    peers: [
      { name: meta.leader, current: true },
      ...(meta.replicas ?? []).map((r) => ({ name: r.name, current: r.current === true })),
    ],
  };
}

function validateOptions(opts: NatsServerOptions): void {
  const port = (name: string, v: number | undefined) => {
    if (v !== undefined && (!Number.isInteger(v) || v < -1 || v > 65535)) {
      throw new Error(`NatsServerOptions.${name} must be an integer from -1 to 65535, got ${v}`);
    }
  };
  port("port", opts.port);
  port("monitorPort", opts.monitorPort);
  port("cluster.port", opts.cluster?.port);
  if (opts.host !== undefined && opts.host.trim() === "")
    throw new Error("NatsServerOptions.host must not be empty");
  if (opts.users && opts.token !== undefined) {
    throw new Error(
      "NatsServerOptions.users and NatsServerOptions.token are exclusive (nats-server accepts one of them)",
    );
  }
  opts.users?.forEach((u, i) => {
    if (!u.user || !u.password) {
      throw new Error(
        `NatsServerOptions.users[${i}] needs a non-empty user and password, got user "${u.user}"`,
      );
    }
  });
  if (opts.authorizationFile !== undefined && !opts.users?.length) {
    throw new Error("NatsServerOptions.authorizationFile needs users (it holds them)");
  }
  if (opts.token === "") throw new Error("NatsServerOptions.token must not be empty");
  if (opts.cluster) {
    if (!opts.cluster.name) throw new Error("NatsServerOptions.cluster.name must not be empty");
    if (!opts.serverName)
      throw new Error("NatsServerOptions.serverName is required with cluster (clustered JetStream needs it)");
  }
  if (opts.startTimeoutMs !== undefined && !(opts.startTimeoutMs > 0)) {
    throw new Error(`NatsServerOptions.startTimeoutMs must be a positive number, got ${opts.startTimeoutMs}`);
  }
}

/** nats-server 2.10 config syntax; strings are JSON-quoted, which its parser reads as quoted strings. */
function renderConfig(spec: LaunchSpec): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [
    "# Written by @switchyard/natsd; regenerated on every (re)start.",
    `host: ${q(spec.host)}`,
    `port: ${spec.port}`,
    `ports_file_dir: ${q(spec.runDir)}`,
  ];
  if (spec.serverName) lines.push(`server_name: ${q(spec.serverName)}`);
  lines.push("jetstream {", `  store_dir: ${q(spec.storeDir)}`);
  if (spec.syncAlways) lines.push("  sync_interval: always");
  lines.push("}");
  if (spec.authorizationFile) {
    // nats-server resolves an include against the including file's directory, even an absolute path.
    lines.push(`include ${q(relative(spec.runDir, spec.authorizationFile))}`);
  } else if (spec.users.length > 0) {
    lines.push(renderAuthorization(spec.users).trimEnd());
  } else if (spec.token !== undefined) {
    lines.push("authorization {", `  token: ${q(spec.token)}`, "}");
  }
  if (spec.cluster) {
    lines.push(
      "cluster {",
      `  name: ${q(spec.cluster.name)}`,
      `  listen: ${q(`${spec.host}:${spec.cluster.port}`)}`,
      `  routes: [${spec.cluster.routes.map(q).join(", ")}]`,
      "}",
    );
  }
  if (spec.monitorPort !== undefined) lines.push(`http: ${q(`${spec.host}:${spec.monitorPort}`)}`);
  if (spec.logFile) lines.push(`log_file: ${q(spec.logFile)}`);
  if (spec.extraConfig) lines.push(spec.extraConfig);
  return `${lines.join("\n")}\n`;
}

interface PortsFile {
  client: number;
  cluster?: number;
  monitoring?: number;
}

/** nats-server writes `<exe>_<pid>.ports` once it listens; a file of an earlier pid is stale. */
async function readPortsFile(dir: string, pid: number): Promise<PortsFile | undefined> {
  const name = (await readdir(dir)).find((f) => f.endsWith(`_${pid}.ports`));
  if (!name) return undefined;
  try {
    const body = JSON.parse(await readFile(join(dir, name), "utf8")) as Record<string, string[] | undefined>;
    const portOf = (urls: string[] | undefined) => (urls?.[0] ? Number(new URL(urls[0]).port) : undefined);
    const client = portOf(body.nats);
    if (!client) return undefined;
    return { client, cluster: portOf(body.cluster), monitoring: portOf(body.monitoring) };
  } catch {
    return undefined; // caught mid-write; the next poll reads it whole
  }
}

/** Ports free right now on `host`, found by binding port 0; held together so they are distinct. */
async function freePorts(n: number, host: string): Promise<number[]> {
  const listeners = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import("node:net").Server>((resolveListen, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, host, () => resolveListen(s));
        }),
    ),
  );
  const ports = listeners.map((s) => {
    const address = s.address();
    if (address === null || typeof address === "string") throw new Error("freePorts: no TCP address");
    return address.port;
  });
  await Promise.all(listeners.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Where a client connects to reach a server listening on `host` (wildcards mean loopback). */
function connectHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

function urlHost(host: string): string {
  const h = connectHost(host);
  return h.includes(":") && !h.startsWith("[") ? `[${h}]` : h;
}

function withSuffix(file: string, suffix: string): string {
  const ext = extname(file);
  return ext ? `${file.slice(0, -ext.length)}${suffix}${ext}` : `${file}${suffix}`;
}

function readTail(file: string, maxLines: number): string[] {
  if (!existsSync(file)) return [];
  const size = statSync(file).size;
  const length = Math.min(size, 64 * 1024);
  const buf = Buffer.alloc(length);
  const fd = openSync(file, "r");
  try {
    readSync(fd, buf, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  return buf.toString("utf8").split("\n").filter(Boolean).slice(-maxLines);
}

// Children must not outlive the parent. 'exit' handlers run on normal exits and process.exit(); a
// signal with no handler kills Node without running them, so we also handle SIGINT/SIGTERM/SIGHUP,
// but only while no one else does: another handler owns the shutdown (and may stop servers gracefully),
// and the 'exit' hook still catches whatever it leaves behind. A SIGKILLed parent cannot be covered.
// Each live child maps to its run dir (config, ports file): scratch that nobody needs once it is dead.
const liveChildren = new Map<ChildProcess, string>();
let hooksInstalled = false;

function trackChild(child: ChildProcess, runDir: string): void {
  installExitHooks();
  liveChildren.set(child, runDir);
  child.once("exit", () => liveChildren.delete(child));
  child.once("error", () => liveChildren.delete(child));
}

function killLiveChildren(): void {
  for (const [child, runDir] of liveChildren) {
    try {
      child.kill("SIGKILL");
      rmSync(runDir, { recursive: true, force: true });
    } catch {
      // best effort: the process is exiting anyway
    }
  }
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killLiveChildren);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return;
      killLiveChildren();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
