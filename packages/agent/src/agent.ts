// A node agent: heartbeats its thread budget, and runs one process per assignment `assign.<id>.*` — a replica,
// a batch worker or a stream scorer — spawning it with its launch in the environment, restarting crashes with backoff,
// reporting a model that cannot load as FAILED (no restart), and draining processes whose assignment went away.
// It keeps one warm spare replica process (imported, connected, waiting) that the next replica assignment takes
// instead of a cold spawn. It never decides placement; the coordinator does.
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { availableParallelism, hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { isDeepStrictEqual } from "node:util";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import {
  connectNats,
  DEFAULT_REPLICATION,
  type NatsOptions,
  openBucket,
  parseReplication,
  provisionBuckets,
} from "@switchyard/nats";
import {
  BATCH_WORKER_ENV,
  type BatchWorkerLaunch,
  type ClusterNames,
  clusterNames,
  EXIT_LOAD_FAILED,
  HEARTBEAT_INTERVAL_MS,
  isBatchWorker,
  isJobWorker,
  keys,
  LIVENESS_TTL_MS,
  type NodeHeartbeat,
  REPLICA_ENV,
  type ReplicaLaunch,
  type ReplicaSpec,
  type ReplicaStatus,
  replicaDownOf,
  SPARE_ENV,
  type SpareAssignment,
  type SpareLaunch,
  type SpareSignal,
  STREAM_SCORER_ENV,
  type StreamScorerLaunch,
  type WorkerStatus,
  WorkSpec,
} from "@switchyard/protocol";
import { type Logger, pino } from "pino";

export interface NodeAgentOptions {
  /** How this agent and its replicas reach NATS (replicas get the same servers and credentials). */
  nats: Pick<NatsOptions, "servers" | "user" | "pass" | "token" | "creds">;
  cluster?: string;
  /** Default: the host name. */
  nodeId?: string;
  /** ORT threads this node may run at once (default: os.availableParallelism()). */
  threads?: number;
  /** Where replicas cache model artifacts (default: `<tmp>/switchyard-cache/<cluster>`). */
  cacheDir?: string;
  /** The replica process entry (default: REPLICA_ENTRY). */
  replicaEntry?: string;
  /** After SIGTERM, how long a replica may drain before SIGKILL (default 30 s). */
  drainTimeoutMs?: number;
  /**
   * Keep one replica process started ahead of need — modules imported, NATS connected, buckets open — for the
   * next replica assignment to take (default true). It holds no model and no ORT thread until it is taken.
   */
  warmSpare?: boolean;
  /**
   * How many NATS servers keep each KV bucket (1..5, default 1): the agent creates the buckets it finds missing
   * with it, so the cluster's buckets are replicated whichever role starts first.
   */
  replication?: number;
  /**
   * The cluster's KV buckets already exist with the replication setting: whoever composes the roles in one
   * process (`switchyard up`) made them once, so this agent does not again (default false: an agent started on
   * its own, in any order with the other roles, provisions them at start).
   */
  bucketsProvisioned?: boolean;
  logger?: Logger;
}

export const AGENT_DEFAULTS = {
  drainTimeoutMs: 30_000,
  backoffMinMs: 500,
  backoffMaxMs: 10_000,
  /** A replica that ran this long before crashing restarts with the shortest backoff again. */
  stableAfterMs: 30_000,
  /**
   * The next warm spare starts this long after the one taken serves: its own start takes a core for a few hundred
   * ms, which must not slow the first requests of a replica just woken from zero.
   */
  spareRefillDelayMs: 1_000,
  /**
   * Cut off from every NATS server this long after its last acknowledged heartbeat was sent, the agent fences
   * itself: it kills every process it runs. The coordinator may move this node's work once the heartbeat key
   * expires, LIVENESS_TTL_MS after the last one NATS stored — never earlier than this, so a partitioned node's
   * work has stopped before it runs elsewhere (one heartbeat interval of margin for the kills).
   */
  fenceAfterMs: LIVENESS_TTL_MS - HEARTBEAT_INTERVAL_MS,
  /** The agent's pings: a silent partition (no closed socket) is known after two unanswered ones. */
  pingIntervalMs: 1_000,
} as const;

interface Supervised {
  spec: WorkSpec;
  child: ChildProcess | undefined;
  /** Resolves when the current child has exited. */
  exited: Promise<void>;
  restarts: number;
  backoffLevel: number;
  startedAt: number;
  stopping: boolean;
  retry: NodeJS.Timeout | undefined;
  lastStderr: string[];
}

/** A replica process started before its assignment (see SPARE_ENV), until an assignment takes it. */
interface Spare {
  child: ChildProcess;
  /** It said it waits for an assignment: handing it one now skips its whole start. */
  waiting: boolean;
  exited: Promise<void>;
  /** Where its stderr lines go: the agent's log, then the supervision of the replica it becomes. */
  onLine: (line: string) => void;
  lastStderr: string[];
}

/**
 * The replica process entry: the package export `@switchyard/replica/main`, resolved to its built file (a path
 * `node` can run) without loading the replica package into this process.
 */
export const REPLICA_ENTRY = createRequire(import.meta.url).resolve("@switchyard/replica/main");
/** The batch worker process entry, resolved the same way when a worker is first launched. */
export const batchWorkerEntry = () => createRequire(import.meta.url).resolve("@switchyard/jobs/batch-worker");
/** The stream scorer process entry, likewise. */
export const streamScorerEntry = () =>
  createRequire(import.meta.url).resolve("@switchyard/jobs/stream-scorer");

/** Only how to reach and authenticate: a connection name or other client options are the replica's own. */
function credentialsOf(o: NodeAgentOptions["nats"]): ReplicaLaunch["nats"] {
  const { servers, user, pass, token, creds } = o;
  return {
    servers,
    ...(user ? { user } : {}),
    ...(pass ? { pass } : {}),
    ...(token ? { token } : {}),
    ...(creds ? { creds } : {}),
  };
}

export class NodeAgent {
  readonly nodeId: string;
  readonly names: ClusterNames;
  readonly threads: number;
  private readonly log: Logger;
  private nc: NatsConnection | undefined;
  private cluster: KV | undefined;
  private liveness: KV | undefined;
  private watch: QueuedIterator<KvWatchEntry> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly replicas = new Map<string, Supervised>();
  private readonly chains = new Map<string, Promise<void>>();
  private entry = "";
  private startedAt = 0;
  private stopped = false;
  /** When the newest acknowledged heartbeat was sent (the server stored it later, so it expires later). */
  private beatSentAt = 0;
  /** Whether the agent's connection has a server (nats.js `disconnect` until `reconnect`). */
  private connected = true;
  /** Fenced: cut off from NATS too long; it runs nothing until a fresh heartbeat is acknowledged. */
  private fenced = false;
  /** What the fence killed: their status keys go once NATS answers again. */
  private fencedOut: Supervised[] = [];
  private spare: Spare | undefined;
  /** The next spare's start, when it is due later. */
  private spareRetry: NodeJS.Timeout | undefined;
  /** Spares in a row that exited before they were waiting (backoff, as for crashing replicas). */
  private spareFailures = 0;

  constructor(private readonly opts: NodeAgentOptions) {
    this.names = clusterNames(opts.cluster);
    this.nodeId = opts.nodeId ?? hostname().replace(/[^A-Za-z0-9_-]/g, "_");
    if (!/^[A-Za-z0-9_-]{1,63}$/.test(this.nodeId)) {
      throw new TypeError(`options.nodeId '${this.nodeId}' must be 1-63 letters, digits, '_' or '-'`);
    }
    this.threads = opts.threads ?? availableParallelism();
    if (opts.replication !== undefined) parseReplication(opts.replication, "options.replication");
    if (!Number.isInteger(this.threads) || this.threads < 1) {
      throw new TypeError(`options.threads must be a positive integer, got ${opts.threads}`);
    }
    this.log = (opts.logger ?? pino({ name: "agent" })).child({
      node: this.nodeId,
      cluster: this.names.cluster,
    });
  }

  async start(): Promise<void> {
    this.entry = this.opts.replicaEntry ?? REPLICA_ENTRY;
    this.nc = await connectNats({
      ...this.opts.nats,
      name: `agent-${this.nodeId}`,
      pingIntervalMs: AGENT_DEFAULTS.pingIntervalMs,
    });
    void (async () => {
      for await (const s of this.nc!.status()) {
        if (s.type === "disconnect") this.connected = false;
        else if (s.type === "reconnect") this.connected = true;
      }
    })().catch(() => {});
    if (!this.opts.bucketsProvisioned) {
      await provisionBuckets(this.nc, this.names, {
        replicas: this.opts.replication ?? DEFAULT_REPLICATION,
        log: this.log,
      });
    }
    [this.cluster, this.liveness] = await Promise.all([
      openBucket(this.nc, this.names, "cluster"),
      openBucket(this.nc, this.names, "liveness"),
    ]);
    this.startedAt = Date.now();
    await this.beat();
    this.heartbeat = setInterval(() => this.tick(), HEARTBEAT_INTERVAL_MS);
    await this.follow();
    this.spawnSpare();
    this.log.info(
      { threads: this.threads, entry: this.entry, warmSpare: this.opts.warmSpare ?? true },
      "node agent started",
    );
  }

  /** Runs this node's assignments: the watch first delivers the current ones, then every change. */
  private async follow(): Promise<void> {
    const watch = await this.cluster!.watch({ key: keys.assignmentsOf(this.nodeId) });
    this.watch = watch;
    void (async () => {
      for await (const e of watch) {
        // One chain per replica: a replica draining for seconds never holds up the others.
        const id = e.key.slice(e.key.lastIndexOf(".") + 1);
        const next = (this.chains.get(id) ?? Promise.resolve())
          .then(() => this.onAssignment(e))
          .catch((err: unknown) => this.log.error({ err, key: e.key }, "assignment handling failed"));
        this.chains.set(id, next);
        void next.finally(() => {
          if (this.chains.get(id) === next) this.chains.delete(id);
        });
      }
    })();
  }

  /** Stops every replica (drain, then kill), removes the heartbeat, closes the connection. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.watch?.stop();
    await Promise.all([...this.chains.values()]);
    await Promise.all([...this.replicas.keys()].map((id) => this.stopReplica(id)).concat(this.stopSpare()));
    await this.liveness?.delete(keys.node(this.nodeId)).catch(() => undefined);
    await this.nc?.close();
    this.log.info("node agent stopped");
  }

  /** Replica ids this agent currently supervises. */
  get replicaIds(): string[] {
    return [...this.replicas.keys()];
  }

  /** The pid of the warm spare when one is waiting for an assignment (the next replica will run in it). */
  get sparePid(): number | undefined {
    return this.spare?.waiting ? this.spare.child.pid : undefined;
  }

  /** Whether the agent is fenced (see AGENT_DEFAULTS.fenceAfterMs): it runs nothing until NATS answers again. */
  get isFenced(): boolean {
    return this.fenced;
  }

  /**
   * Only a lost connection fences. A JetStream that answers with errors or not at all while the agent's server
   * is there (one server of three died, its streams are electing leaders) stops every coordinator as well — its
   * lease renewals fail the same way — so nobody moves this node's work, and killing it would only cost service.
   */
  private tick(): void {
    void this.beat();
    if (!this.fenced && !this.stopped && !this.connected) {
      if (Date.now() - this.beatSentAt >= AGENT_DEFAULTS.fenceAfterMs) void this.fence();
    }
  }

  /**
   * Cut off from NATS (a partition, a dead NATS node): the coordinator will give this node's work to others, so
   * it must stop here first — killed, not drained (a drain needs NATS). Statuses are cleared once NATS is back.
   */
  private async fence(): Promise<void> {
    this.fenced = true;
    this.log.warn(
      { sinceBeatMs: Date.now() - this.beatSentAt, processes: this.replicas.size },
      "no heartbeat acknowledged: fencing this node, its processes are killed and its work moves elsewhere",
    );
    this.watch?.stop();
    const killed = [...this.replicas.values()];
    this.replicas.clear();
    this.fencedOut.push(...killed);
    await Promise.all(
      killed.map(async (s) => {
        s.stopping = true;
        clearTimeout(s.retry);
        s.child?.kill("SIGKILL");
        await s.exited;
      }),
    );
  }

  private async unfence(): Promise<void> {
    this.fenced = false;
    const cleared = this.fencedOut.splice(0);
    for (const s of cleared) {
      const key = isJobWorker(s.spec) ? keys.worker(s.spec.worker_id) : keys.replica(s.spec.replica_id);
      await this.cluster!.delete(key).catch(() => undefined);
    }
    this.log.info(
      { cleared: cleared.length },
      "heartbeat acknowledged again: following this node's assignments",
    );
    await this.follow();
  }

  private async beat(): Promise<void> {
    const now = Date.now();
    const hb: NodeHeartbeat = {
      node_id: this.nodeId,
      host: hostname(),
      pid: process.pid,
      threads: this.threads,
      started_at: this.startedAt,
      updated_at: now,
    };
    try {
      await this.liveness!.put(keys.node(this.nodeId), JSON.stringify(hb));
      this.beatSentAt = Math.max(this.beatSentAt, now);
      // A put buffered through the outage and stored on reconnect is stale: only a fresh one lifts the fence.
      if (this.fenced && Date.now() - this.beatSentAt < AGENT_DEFAULTS.fenceAfterMs) await this.unfence();
    } catch (err) {
      this.log.warn({ err: String(err) }, "heartbeat failed");
    }
  }

  private async onAssignment(e: KvWatchEntry): Promise<void> {
    if (this.fenced) return;
    const replicaId = e.key.slice(e.key.lastIndexOf(".") + 1);
    if (e.operation !== "PUT") {
      await this.stopReplica(replicaId);
      return;
    }
    const parsed = WorkSpec.safeParse(e.json());
    if (!parsed.success) {
      this.log.error({ replicaId, err: parsed.error.message }, "malformed assignment ignored");
      return;
    }
    const cur = this.replicas.get(replicaId);
    if (cur && isDeepStrictEqual(cur.spec, parsed.data)) return;
    if (cur) await this.stopReplica(replicaId);
    // A fence during that stop: the replicas it killed no longer include this one, so it must not start.
    if (this.stopped || this.fenced) return;
    const s: Supervised = {
      spec: parsed.data,
      child: undefined,
      exited: Promise.resolve(),
      restarts: 0,
      backoffLevel: 0,
      startedAt: 0,
      stopping: false,
      retry: undefined,
      lastStderr: [],
    };
    this.replicas.set(replicaId, s);
    await this.launch(s);
  }

  private async writeStatus(s: Supervised, state: ReplicaStatus["state"], message = ""): Promise<void> {
    if (isJobWorker(s.spec)) {
      // A job's process has no READY/DRAINING: it reports RUNNING itself once it pulls work.
      const status: WorkerStatus = {
        worker_id: s.spec.worker_id,
        node_id: this.nodeId,
        job_id: s.spec.job_id,
        pid: s.child?.pid ?? null,
        state: state === "READY" || state === "DRAINING" ? "RUNNING" : state,
        message,
        restarts: s.restarts,
        updated_at: Date.now(),
      };
      await this.cluster!.put(keys.worker(s.spec.worker_id), JSON.stringify(status));
      return;
    }
    const status: ReplicaStatus = {
      replica_id: s.spec.replica_id,
      node_id: this.nodeId,
      endpoint: s.spec.endpoint,
      served_model: s.spec.served_model,
      generation: s.spec.generation,
      pid: s.child?.pid ?? null,
      state,
      message,
      restarts: s.restarts,
      updated_at: Date.now(),
    };
    await this.cluster!.put(keys.replica(s.spec.replica_id), JSON.stringify(status));
  }

  private async launch(s: Supervised): Promise<void> {
    if (s.stopping || this.stopped) return;
    const spec = s.spec;
    const log = this.log.child(
      isJobWorker(spec)
        ? { workerId: spec.worker_id, jobId: spec.job_id }
        : { replicaId: spec.replica_id, endpoint: spec.endpoint, servedModel: spec.served_model },
    );
    // STARTING goes in before the process exists, so it can never overwrite the READY the replica writes.
    s.child = undefined;
    await this.writeStatus(s, "STARTING", s.restarts ? (s.lastStderr.at(-1) ?? "") : "");
    if (s.stopping || this.stopped) return;
    const common = this.launchBase();
    const onLine = (line: string) => {
      s.lastStderr.push(line);
      if (s.lastStderr.length > 20) s.lastStderr.shift();
      logReplicaLine(log, line);
    };
    s.lastStderr = [];
    const spare = isJobWorker(spec) ? undefined : this.handToSpare(spec, onLine, log);
    let child: ChildProcess;
    if (spare) {
      child = spare;
    } else {
      const [entry, env] = isBatchWorker(spec)
        ? [
            batchWorkerEntry(),
            { [BATCH_WORKER_ENV]: JSON.stringify({ ...common, spec } satisfies BatchWorkerLaunch) },
          ]
        : isJobWorker(spec)
          ? [
              streamScorerEntry(),
              { [STREAM_SCORER_ENV]: JSON.stringify({ ...common, spec } satisfies StreamScorerLaunch) },
            ]
          : [this.entry, { [REPLICA_ENV]: JSON.stringify({ ...common, spec } satisfies ReplicaLaunch) }];
      child = spawn(process.execPath, [entry], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "inherit", "pipe"],
      });
      createInterface({ input: child.stderr! }).on("line", onLine);
    }
    s.child = child;
    s.startedAt = Date.now();
    log.info(
      {
        pid: child.pid,
        version: "model_version" in spec ? spec.model_version : undefined,
        threads: spec.threads,
        warmSpare: spare !== undefined,
      },
      spare ? "warm spare took the assignment" : "process started",
    );
    s.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        void this.onExit(s, child, code, signal, log).finally(resolve);
      });
      child.once("error", (err) => log.error({ err }, "replica spawn error"));
    });
  }

  private async onExit(
    s: Supervised,
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
    log: Logger,
  ): Promise<void> {
    if (s.child !== child) return;
    log.info({ code, signal }, "replica exited");
    if (s.stopping) return; // stopReplica reports STOPPED
    // A model that failed to load never subscribed: nothing was handed to it.
    if (code !== EXIT_LOAD_FAILED) this.reportDown(s.spec, signal ?? `code ${code}`, log);
    try {
      if (code === EXIT_LOAD_FAILED) {
        const cur = await this.cluster!.get(
          isJobWorker(s.spec) ? keys.worker(s.spec.worker_id) : keys.replica(s.spec.replica_id),
        );
        const written =
          cur?.operation === "PUT" ? (cur.json() as { state?: string; message?: string }) : undefined;
        const reason =
          written?.state === "FAILED" && written.message
            ? written.message
            : `model could not be loaded${s.lastStderr.length ? `: ${s.lastStderr.at(-1)}` : ""}`;
        s.child = undefined;
        await this.writeStatus(s, "FAILED", reason);
        return;
      }
      s.restarts++;
      if (Date.now() - s.startedAt > AGENT_DEFAULTS.stableAfterMs) s.backoffLevel = 0;
      const delay = Math.min(AGENT_DEFAULTS.backoffMaxMs, AGENT_DEFAULTS.backoffMinMs * 2 ** s.backoffLevel);
      s.backoffLevel++;
      s.child = undefined;
      const why = `exited with ${signal ?? `code ${code}`}; restart ${s.restarts} in ${delay} ms`;
      log.warn({ delay, restarts: s.restarts }, "replica crashed; restarting");
      await this.writeStatus(s, "STARTING", why);
      s.retry = setTimeout(() => {
        s.retry = undefined;
        void this.launch(s).catch((err: unknown) => log.error({ err }, "replica restart failed"));
      }, delay);
    } catch (err) {
      log.error({ err }, "handling replica exit failed");
    }
  }

  /**
   * Tells every router at once that a replica is gone, so the requests it had been handed are sent again to its
   * served model now rather than failing at their deadlines (a job's process serves no requests).
   */
  private reportDown(spec: WorkSpec, reason: string, log: Logger): void {
    if (isJobWorker(spec)) return;
    try {
      const down = replicaDownOf(spec, this.nodeId, reason);
      this.nc!.publish(this.names.subjects.replicaDown(spec.endpoint), JSON.stringify(down));
    } catch (err) {
      // The requests still end at their deadlines; a router just learns of the loss later.
      log.warn({ err: String(err) }, "could not report the replica's exit");
    }
  }

  /** Where every process this agent starts finds the cluster and caches artifacts. */
  private launchBase(): Omit<SpareLaunch, "warm_threads"> {
    return {
      cluster: this.names.cluster,
      node_id: this.nodeId,
      cache_dir: this.opts.cacheDir ?? join(tmpdir(), "switchyard-cache", this.names.cluster),
      nats: credentialsOf(this.opts.nats),
    };
  }

  /** Starts a warm spare unless one exists, one is due after a failure, the agent stops, or spares are off. */
  private spawnSpare(): void {
    if (!(this.opts.warmSpare ?? true) || this.stopped || this.spare || this.spareRetry) return;
    const log = this.log.child({ spare: true });
    const child = spawn(process.execPath, [this.entry], {
      env: {
        ...process.env,
        // The thread count placement gives the only replica of this node: a replica scaled up from zero.
        [SPARE_ENV]: JSON.stringify({
          ...this.launchBase(),
          warm_threads: this.threads,
        } satisfies SpareLaunch),
      },
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    const spare: Spare = {
      child,
      waiting: false,
      exited: Promise.resolve(),
      lastStderr: [],
      onLine: (line) => {
        spare.lastStderr.push(line);
        if (spare.lastStderr.length > 20) spare.lastStderr.shift();
        logReplicaLine(log, line);
      },
    };
    this.spare = spare;
    createInterface({ input: child.stderr! }).on("line", (line) => spare.onLine(line));
    child.on("message", (m: SpareSignal) => {
      if (m?.spare === "waiting" && this.spare === spare) {
        spare.waiting = true;
        this.spareFailures = 0;
        log.debug({ pid: child.pid }, "warm spare waiting");
      }
    });
    child.once("error", (err) => log.error({ err }, "warm spare spawn error"));
    spare.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        resolve();
        if (this.spare !== spare) return; // taken: the replica's supervision handles its exit
        this.spare = undefined;
        if (this.stopped) return;
        const delay = Math.min(
          AGENT_DEFAULTS.backoffMaxMs,
          AGENT_DEFAULTS.backoffMinMs * 2 ** this.spareFailures++,
        );
        log.warn(
          { code, signal, delay, stderr: spare.lastStderr.at(-1) },
          "warm spare exited before it was used; starting another",
        );
        this.refillSpare(delay);
      });
    });
  }

  /** Starts a spare after `delayMs`, unless one is already due. */
  private refillSpare(delayMs: number): void {
    if (this.spareRetry || this.stopped) return;
    this.spareRetry = setTimeout(() => {
      this.spareRetry = undefined;
      this.spawnSpare();
    }, delayMs);
  }

  /**
   * Hands `spec` to the warm spare if one is waiting and alive, and returns its process (no longer the spare;
   * its stderr goes to `onLine` from now on); otherwise undefined, and the caller spawns a process.
   */
  private handToSpare(
    spec: ReplicaSpec,
    onLine: (line: string) => void,
    log: Logger,
  ): ChildProcess | undefined {
    const spare = this.spare;
    const c = spare?.child;
    if (!spare?.waiting || !c?.connected || c.exitCode !== null || c.signalCode !== null) return undefined;
    this.spare = undefined;
    spare.onLine = onLine;
    c.send({ spec } satisfies SpareAssignment, (err) => {
      // The spare went away at this instant: its exit is handled as a crash, and the restart spawns afresh.
      if (err) log.warn({ err: String(err) }, "handing the assignment to the warm spare failed");
    });
    // The next spare starts once this one serves (or is gone), so the two never compete for the CPU while this
    // replica loads, and a moment later, while it answers its first requests.
    c.once("disconnect", () => this.refillSpare(AGENT_DEFAULTS.spareRefillDelayMs));
    return c;
  }

  /** A spare holds nothing: SIGTERM ends it at once (SIGKILL if it does not go within the drain timeout). */
  private async stopSpare(): Promise<void> {
    clearTimeout(this.spareRetry);
    this.spareRetry = undefined;
    const spare = this.spare;
    this.spare = undefined;
    if (!spare) return;
    const c = spare.child;
    if (c.exitCode === null && c.signalCode === null) {
      const kill = setTimeout(
        () => c.kill("SIGKILL"),
        this.opts.drainTimeoutMs ?? AGENT_DEFAULTS.drainTimeoutMs,
      );
      c.kill("SIGTERM");
      await spare.exited;
      clearTimeout(kill);
    }
  }

  /** SIGTERM (the replica drains), SIGKILL after the drain timeout, STOPPED, then the status key goes. */
  private async stopReplica(replicaId: string): Promise<void> {
    const s = this.replicas.get(replicaId);
    if (!s) return;
    s.stopping = true;
    clearTimeout(s.retry);
    const child = s.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const drain = this.opts.drainTimeoutMs ?? AGENT_DEFAULTS.drainTimeoutMs;
      const kill = setTimeout(() => child.kill("SIGKILL"), drain);
      child.kill("SIGTERM");
      await s.exited;
      clearTimeout(kill);
    }
    this.replicas.delete(replicaId);
    try {
      s.child = undefined;
      await this.writeStatus(s, "STOPPED");
      await this.cluster!.delete(isJobWorker(s.spec) ? keys.worker(replicaId) : keys.replica(replicaId));
    } catch (err) {
      this.log.warn({ err: String(err), replicaId }, "could not clear replica status");
    }
    this.log.info({ replicaId }, "replica stopped");
  }
}

/** A replica's stderr line into the agent's log: its own pino JSON keeps its level and message. */
function logReplicaLine(log: Logger, line: string): void {
  let entry: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(line);
    if (v && typeof v === "object" && !Array.isArray(v)) entry = v as Record<string, unknown>;
  } catch {
    // not JSON: logged as text below
  }
  if (!entry) {
    log.warn({ stderr: line }, "replica stderr");
    return;
  }
  const { level, msg, time: _t, pid, hostname: _h, ...rest } = entry;
  const lvl = typeof level === "number" ? level : 30;
  const text = typeof msg === "string" ? msg : "replica log";
  const fields = { replicaPid: pid, replica: rest };
  if (lvl >= 50) log.error(fields, text);
  else if (lvl >= 40) log.warn(fields, text);
  else if (lvl >= 30) log.info(fields, text);
  else log.debug(fields, text);
}
