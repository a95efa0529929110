// The leader lease: key `coordinator.leader` in the liveness bucket (whose max_age expires it), taken with
// create (fails while another holder's lease lives) and renewed with compare-and-set on its revision.
// A failed renewal means leadership is lost at once; it never assumes it still leads.
import type { KV } from "@nats-io/kv";
import { HEARTBEAT_INTERVAL_MS, keys, type Lease } from "@switchyard/protocol";
import type { Logger } from "pino";

export class LeaderLease {
  private revision: number | null = null;
  private since = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly kv: KV,
    private readonly holder: string,
    private readonly log: Logger,
    private readonly onChange: (leader: boolean) => void,
    private readonly intervalMs = HEARTBEAT_INTERVAL_MS,
  ) {}

  get isLeader(): boolean {
    return this.revision !== null;
  }

  start(): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 10));
    const rev = this.revision;
    if (rev !== null) {
      this.revision = null;
      this.onChange(false);
      // Hand over at once instead of making a standby wait for the key to expire.
      await this.kv.delete(keys.lease, { previousSeq: rev }).catch(() => undefined);
    }
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const now = Date.now();
      if (this.revision !== null) {
        const lease: Lease = { holder: this.holder, since: this.since, renewed_at: now };
        try {
          this.revision = await this.kv.update(keys.lease, JSON.stringify(lease), this.revision);
        } catch (err) {
          this.revision = null;
          this.log.warn({ err: String(err), holder: this.holder }, "leader lease lost");
          this.onChange(false);
        }
      } else {
        const lease: Lease = { holder: this.holder, since: now, renewed_at: now };
        try {
          this.revision = await this.kv.create(keys.lease, JSON.stringify(lease));
          this.since = now;
          this.log.info({ holder: this.holder }, "leader lease taken");
          this.onChange(true);
        } catch {
          // Another coordinator leads; try again next tick.
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
