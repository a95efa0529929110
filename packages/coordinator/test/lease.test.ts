// The leader lease's fencing, with a KV whose answers the test releases and a clock it moves: a holder whose
// renewals NATS does not answer stops leading before a standby could take the expired key, and leads again only
// through a compare-and-set on the revision it held.
import type { KV } from "@nats-io/kv";
import { LEASE_TRUST_MS, LeaderLease } from "@switchyard/coordinator";
import { HEARTBEAT_INTERVAL_MS, LIVENESS_TTL_MS } from "@switchyard/protocol";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";

interface Call {
  op: "create" | "update";
  revision?: number;
  answer: (revision: number | Error) => void;
}

function fakeKv() {
  const calls: Call[] = [];
  const kv = {
    create: () => pending({ op: "create" }),
    update: (_k: string, _v: string, revision: number) => pending({ op: "update", revision }),
    delete: async () => undefined,
  };
  function pending(c: Omit<Call, "answer">): Promise<number> {
    return new Promise((resolve, reject) => {
      calls.push({ ...c, answer: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
    });
  }
  return { kv: kv as unknown as KV, calls };
}

const leases: { lease: LeaderLease; calls: Call[] }[] = [];
afterEach(async () => {
  for (const { lease, calls } of leases.splice(0)) {
    for (const c of calls) c.answer(new Error("test over")); // a settled promise ignores a second answer
    await lease.stop();
  }
});

function started() {
  const { kv, calls } = fakeKv();
  let clock = 0;
  const changes: boolean[] = [];
  const lease = new LeaderLease(
    kv,
    "c1",
    pino({ level: "silent" }),
    (l) => changes.push(l),
    5,
    () => clock,
  );
  leases.push({ lease, calls });
  lease.start();
  return { lease, calls, changes, at: (ms: number) => (clock = ms) };
}

const nextCall = async (calls: Call[], n: number) =>
  vi.waitFor(() => calls[n] ?? Promise.reject(new Error("no call")));

describe("LeaderLease", () => {
  it("trusts a renewal one heartbeat interval less than the key lives", () => {
    expect(LEASE_TRUST_MS).toBe(LIVENESS_TTL_MS - HEARTBEAT_INTERVAL_MS);
  });

  it("stops leading when renewals go unanswered, and leads again when a renewal of its revision succeeds", async () => {
    const { lease, calls, changes, at } = started();
    const create = await nextCall(calls, 0); // sent at 0
    at(1000);
    create.answer(7);
    await vi.waitFor(() => expect(changes).toEqual([true]));
    const renewal = await nextCall(calls, 1); // sent at 1000, NATS does not answer (a partition)
    expect(renewal).toMatchObject({ op: "update", revision: 7 });
    at(LEASE_TRUST_MS - 1);
    expect(lease.isLeader).toBe(true);
    at(LEASE_TRUST_MS); // the trust of the last acknowledged one (sent at 0) is over
    expect(lease.isLeader).toBe(false);
    await vi.waitFor(() => expect(changes).toEqual([true, false]));
    // The renewal sent at 1000 is acknowledged late: NATS stored it after 1000, so it is trusted until 1000 + trust.
    renewal.answer(8);
    await vi.waitFor(() => expect(changes).toEqual([true, false, true]));
    expect(lease.isLeader).toBe(true);
    const next = await nextCall(calls, 2);
    expect(next).toMatchObject({ op: "update", revision: 8 });
    at(1000 + LEASE_TRUST_MS);
    expect(lease.isLeader).toBe(false);
    next.answer(new Error("wrong last sequence: 9")); // someone else took the key meanwhile
    await vi.waitFor(() => expect(changes).toEqual([true, false, true, false]));
    expect((await nextCall(calls, 3)).op).toBe("create");
  });
});
