// A stream job's inputs and results in fault tests: events with an id and the two features of the test models,
// published until JetStream acknowledges each, and the job's sink read back whole.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

export interface Event {
  id: string;
  feature1: number;
  feature2: number;
}

/** Events `from` … `from + n - 1`: id and the model's two inputs. */
export function events(from: number, n: number): Event[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    return { id: `e${i}`, feature1: ((i * 37) % 200) / 50 - 2, feature2: ((i * 91) % 160) / 40 - 2 };
  });
}

/**
 * Publishes each event until JetStream acknowledges it: a publish that times out while the stream elects a new
 * leader is sent again under the same msg id, which the stream's duplicate window drops if it had arrived.
 * Returns how many publishes were sent again.
 */
export async function publishAcked(
  nc: NatsConnection,
  subject: string,
  evs: Array<{ id: string }>,
): Promise<number> {
  const js = jetstream(nc);
  let retries = 0;
  for (let i = 0; i < evs.length; i += 50) {
    await Promise.all(
      evs.slice(i, i + 50).map(async (e) => {
        for (;;) {
          try {
            return await js.publish(subject, JSON.stringify(e), { msgID: e.id, timeout: 5_000 });
          } catch {
            retries++;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      }),
    );
  }
  return retries;
}

/** Every message of `subject` in `stream`, as JSON, read with an ordered consumer. */
export async function readSink(
  nc: NatsConnection,
  stream: string,
  subject: string,
): Promise<Array<Record<string, unknown>>> {
  const info = await (await jetstreamManager(nc)).streams.info(stream, { subjects_filter: subject });
  const total = info.state.subjects?.[subject] ?? 0;
  const c = await jetstream(nc).consumers.get(stream, { filter_subjects: [subject] });
  const out: Array<Record<string, unknown>> = [];
  while (out.length < total) {
    const batch = await c.fetch({ max_messages: Math.min(500, total - out.length), expires: 2_000 });
    for await (const m of batch) out.push(m.json());
  }
  return out;
}

/** Results counted by event id (the job's key): which events have none, which more than one. */
export function countById(
  evs: Event[],
  results: Array<Record<string, unknown>>,
): { byId: Map<string, Array<Record<string, unknown>>>; missing: string[]; duplicated: string[] } {
  const byId = new Map<string, Array<Record<string, unknown>>>();
  for (const r of results) byId.set(String(r.id), [...(byId.get(String(r.id)) ?? []), r]);
  return {
    byId,
    missing: evs.filter((e) => !byId.has(e.id)).map((e) => e.id),
    duplicated: [...byId].filter(([, rs]) => rs.length > 1).map(([id, rs]) => `${id}x${rs.length}`),
  };
}
