// The leader lease: key `coordinator.leader` in the liveness bucket (whose max_age expires it), taken with
// create (fails while another holder's lease lives) and renewed with compare-and-set on its revision.
// A failed renewal means leadership is lost at once; it never assumes it still leads. A renewal NATS does not
// answer (a partition) is a loss too, once the lease may have expired for the others: a standby can take the key
// LIVENESS_TTL_MS after NATS stored the last renewal, so the holder stops leading one heartbeat interval before
// that, counted from when it *sent* the last renewal NATS acknowledged.
import type { KV } from "@nats-io/kv";
import { HEARTBEAT_INTERVAL_MS, keys, type Lease, LIVENESS_TTL_MS } from "@switchyard/protocol";

/** How long after sending its last acknowledged renewal a holder may still act as the leader. */
export const LEASE_TRUST_MS = LIVENESS_TTL_MS - HEARTBEAT_INTERVAL_MS;

import type { Logger } from "pino";

export class LeaderLease {
  private revision: number | null = null;
  /** When the create or renewal that gave `revision` was sent. */
  private sentAt = 0;
  private since = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  /** What onChange was last told. */
  private leading = false;

  constructor(
    private readonly kv: KV,
    private readonly holder: string,
    private readonly log: Logger,
    private readonly onChange: (leader: boolean) => void,
    private readonly intervalMs = HEARTBEAT_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  get isLeader(): boolean {
    return this.revision !== null && this.now() - this.sentAt < LEASE_TRUST_MS;
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
      this.setLeading(false, "stopped");
      // Hand over at once instead of making a standby wait for the key to expire.
      await this.kv.delete(keys.lease, { previousSeq: rev }).catch(() => undefined);
    }
  }

  private async tick(): Promise<void> {
    if (this.leading && !this.isLeader) this.setLeading(false, "no renewal acknowledged in time");
    if (this.busy) return;
    this.busy = true;
    try {
      const now = this.now();
      if (this.revision !== null) {
        // Compare-and-set on the revision it holds: success proves nobody took the key since, so a holder that
        // stopped trusting a late renewal leads again with the next one.
        const lease: Lease = { holder: this.holder, since: this.since, renewed_at: now };
        try {
          this.revision = await this.kv.update(keys.lease, JSON.stringify(lease), this.revision);
          this.sentAt = now;
          if (this.isLeader) this.setLeading(true);
        } catch (err) {
          this.revision = null;
          this.setLeading(false, String(err));
        }
      } else {
        const lease: Lease = { holder: this.holder, since: now, renewed_at: now };
        try {
          this.revision = await this.kv.create(keys.lease, JSON.stringify(lease));
          this.sentAt = now;
          this.since = now;
          this.setLeading(true);
        } catch {
          // Another coordinator leads; try again next tick.
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private setLeading(leading: boolean, why?: string): void {
    if (leading === this.leading) return;
    this.leading = leading;
    if (leading) this.log.info({ holder: this.holder }, "leader lease taken");
    else this.log.warn({ err: why, holder: this.holder }, "leader lease lost");
    this.onChange(leading);
  }
}
