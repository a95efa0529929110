// The subject sink: each outcome is published to the sink subject (results), `<subject>.dlq` or
// `<subject>.late`, with `Nats-Msg-Id` = the input's msg id, and the batch is written once every publish is
// acked by the sink stream. A result published twice — its input redelivered after its scorer died between
// publish and ack — is dropped by the stream's duplicate window (four ack waits; the coordinator refuses a
// sink stream whose window is shorter). At-least-once jobs publish without msg ids.
import { type JetStreamClient, jetstream } from "@nats-io/jetstream";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import type { Outcome, Sink } from "./sink.js";

const utf8 = new TextEncoder();

export class SubjectSink implements Sink {
  readonly acksOnWrite = true;
  private readonly js: JetStreamClient;

  constructor(
    nc: NatsConnection,
    private readonly subject: string,
    private readonly dedupe: boolean,
  ) {
    this.js = jetstream(nc);
  }

  holds(): boolean {
    return false;
  }

  async write(outcomes: Outcome[]): Promise<void> {
    // Published together (pipelined), awaited together: one round trip's latency per batch, not per event.
    await Promise.all(
      outcomes.map((o) => {
        const subject =
          o.kind === "result"
            ? this.subject
            : o.kind === "dlq"
              ? `${this.subject}.dlq`
              : `${this.subject}.late`;
        const headers = natsHeaders();
        headers.set("Content-Type", "application/json");
        return this.js.publish(subject, utf8.encode(JSON.stringify(o.body)), {
          headers,
          ...(this.dedupe ? { msgID: o.input.msgId } : {}),
        });
      }),
    );
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {}
}
