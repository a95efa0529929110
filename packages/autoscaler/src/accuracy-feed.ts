// Follows the outcome stream (`<C>_OUTCOMES`) with an ordered consumer from 24 h ago and feeds every outcome to
// an AccuracyWindows, so any process (bridges for metrics, the coordinator for canaries) has the same windows.
// Read-only; a stream that does not exist yet (no coordinator started) is waited for. After a failure it resumes
// after the last outcome it added, so no outcome is counted twice.
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { ACCURACY_WINDOWS, type ClusterNames, OutcomeRecord } from "@switchyard/protocol";
import { AccuracyWindows } from "./accuracy.js";

/** How often a missing outcome stream is looked for again. */
const RETRY_MS = 2_000;

export class AccuracyFeed {
  readonly windows = new AccuracyWindows();
  private stopped = false;
  private messages: { stop(): void } | undefined;
  /** Ends the wait between two looks for the stream (on stop). */
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** Stream sequence of the last outcome handed to the windows (0: none yet). */
  private lastSeq = 0;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly names: ClusterNames,
  ) {}

  static start(nc: NatsConnection, names: ClusterNames): AccuracyFeed {
    const feed = new AccuracyFeed(nc, names);
    feed.loop = feed.follow();
    return feed;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.messages?.stop();
    await this.loop;
  }

  private async follow(): Promise<void> {
    const lookbackMs = Math.max(...Object.values(ACCURACY_WINDOWS));
    while (!this.stopped) {
      try {
        const consumer = await jetstream(this.nc).consumers.get(
          this.names.streams.outcomes,
          this.lastSeq > 0
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.lastSeq + 1 }
            : {
                deliver_policy: DeliverPolicy.StartTime,
                opt_start_time: new Date(Date.now() - lookbackMs).toISOString(),
              },
        );
        const messages = await consumer.consume();
        this.messages = messages;
        if (this.stopped) messages.stop();
        for await (const m of messages) {
          const parsed = OutcomeRecord.safeParse(parseJson(m.string()));
          if (parsed.success) this.windows.add(parsed.data);
          this.lastSeq = m.seq;
        }
        return;
      } catch {
        // The stream is not there yet, the consumer failed (or the connection is closing): look again shortly.
        if (this.stopped || this.nc.isClosed()) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RETRY_MS);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
