// Feedback labels in: validated, checked against an existing endpoint, and stored on the feedback stream one
// message per label (`<c>.feedback.<endpoint>`), where the coordinators join them to captured predictions.
// The HTTP route and `switchyard feedback` both send through here; it never joins or scores anything itself.
import { type JetStreamClient, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { type ClusterNames, type FeedbackLabel, notFound, parseFeedbackLabels } from "@switchyard/protocol";
import type { EndpointsApi } from "./client.js";

/** Labels awaiting their stream ack at once: enough to keep the link busy, bounded for a 10 000-label POST. */
const IN_FLIGHT = 256;

export class FeedbackApi {
  private readonly js: JetStreamClient;

  constructor(
    nc: NatsConnection,
    private readonly names: ClusterNames,
    private readonly endpoints: EndpointsApi,
  ) {
    this.js = jetstream(nc);
  }

  /**
   * Stores the labels of a body (an array of `{"request_id","label"}` or `{"records": [...]}`) for `endpoint`:
   * all or none are validated first (each problem names its index and field); an unknown endpoint is
   * RESOURCE_DOES_NOT_EXIST. Unknown request ids are accepted here and counted by the join.
   */
  async send(endpoint: string, body: unknown): Promise<{ accepted: number }> {
    const labels = parseFeedbackLabels(body);
    await this.endpoints.get(endpoint);
    await this.publish(endpoint, labels);
    return { accepted: labels.length };
  }

  private async publish(endpoint: string, labels: FeedbackLabel[]): Promise<void> {
    const subject = this.names.subjects.feedback(endpoint);
    let next = 0;
    const worker = async () => {
      while (next < labels.length) {
        const label = labels[next++]!;
        await this.js.publish(subject, JSON.stringify(label)).catch((err: unknown) => {
          // No stream takes the subject: nothing answers the publish.
          throw /no responders/i.test(String(err))
            ? notFound(
                `the feedback stream '${this.names.streams.feedback}' does not exist ` +
                  "(a coordinator creates it when it starts)",
              )
            : err;
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, labels.length) }, worker));
  }
}
