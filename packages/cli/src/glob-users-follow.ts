// NATS users whose `--endpoints` hold a glob (`fraud-*`) may request the endpoints matching it that exist;
// nats-server only knows whole-token wildcards, so the process running `switchyard up` follows the endpoints
// bucket and re-renders the authorization whenever an endpoint that some glob matches appears or goes.
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, type NatsOptions, openBucket } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";
import type { Logger } from "pino";
import { expandEndpoints, hasGlob, readNatsUsers } from "./nats-users.js";
import { applyUsers, type UsersTarget, withUsersLock } from "./nats-users-apply.js";

/** Endpoint changes come in bursts (an `apply`, a test's setup): one reload for the burst, not one each. */
const DEBOUNCE_MS = 200;

type Watch = Awaited<ReturnType<Awaited<ReturnType<typeof openBucket>>["watch"]>>;

export class GlobUsersFollower {
  /** The endpoints that exist, as the watch last saw them. */
  private readonly live = new Set<string>();
  /**
   * The endpoints the rendered authorization was expanded against. nats-server starts with globs expanded
   * against none (it runs before the bucket can be read), so the watch's first snapshot renders them.
   */
  private applied = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** Syncs run one after another; each renders the latest set it finds. */
  private syncing: Promise<void> = Promise.resolve();
  private readonly following: Promise<void>;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly watch: Watch,
    private readonly target: UsersTarget,
    private readonly logger: Logger,
  ) {
    this.following = this.follow().catch((err: unknown) =>
      logger.error({ err }, "stopped following endpoints for glob NATS users"),
    );
  }

  static async start(nats: NatsOptions, target: UsersTarget, logger: Logger): Promise<GlobUsersFollower> {
    const nc = await connectNats({ ...nats, name: "switchyard-glob-users" });
    try {
      const kv = await openBucket(nc, clusterNames(target.cluster), "endpoints");
      return new GlobUsersFollower(nc, await kv.watch(), target, logger);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  private async follow(): Promise<void> {
    for await (const entry of this.watch) {
      const had = this.live.has(entry.key);
      if (entry.operation === "PUT") this.live.add(entry.key);
      else this.live.delete(entry.key);
      // Updates of an existing endpoint change no name: nothing to re-render.
      if (had !== this.live.has(entry.key)) this.schedule();
    }
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.syncing = this.syncing.then(() => this.sync());
    }, DEBOUNCE_MS);
  }

  /** Re-renders when some glob user's expansion differs from the one the server enforces. */
  private async sync(): Promise<void> {
    const now = new Set(this.live);
    try {
      await withUsersLock(this.target.dataDir, async () => {
        const users = await readNatsUsers(this.target.dataDir);
        const changed = users.some(
          (u) =>
            hasGlob(u.endpoints) &&
            expandEndpoints(u.endpoints, this.applied).join(",") !==
              expandEndpoints(u.endpoints, now).join(","),
        );
        if (changed) {
          await applyUsers(this.target, users, [...now]);
          this.logger.info({ endpoints: now.size }, "re-expanded glob NATS users");
        }
        this.applied = now;
      });
    } catch (err) {
      // The next endpoint change retries against the set the server still enforces.
      this.logger.warn({ err }, "could not re-expand glob NATS users");
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.watch.stop();
    await this.following;
    await this.syncing;
    await this.nc.close();
  }
}
