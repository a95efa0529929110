// whileClusterSettles: what a role does with the answers of a NATS cluster that is still forming.

import { SwitchyardError } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { clusterUnsettled, whileClusterSettles } from "../src/replication.js";

describe("whileClusterSettles", () => {
  it("tries again while the cluster settles and returns the first success", async () => {
    let calls = 0;
    const got = await whileClusterSettles(async () => {
      calls++;
      if (calls < 3) throw new Error("stream not found");
      return "made";
    }, 30_000);
    expect({ got, calls }).toEqual({ got: "made", calls: 3 });
  });

  it("passes any other error through at once, unchanged", async () => {
    let calls = 0;
    const bad = new Error("permissions violation");
    await expect(
      whileClusterSettles(async () => {
        calls++;
        throw bad;
      }, 30_000),
    ).rejects.toBe(bad);
    expect(calls).toBe(1);
  });

  it("says what to check when JetStream still cannot place a stream at the end of the wait", async () => {
    const err = await whileClusterSettles(async () => {
      throw new Error("no suitable peers for placement");
    }, 0).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(
      "no suitable peers for placement: JetStream has fewer servers to place the stream on than its replica " +
        "count (the replication setting). Check that every nats-server runs and that the JetStream meta group " +
        "holds them all (monitoring /jsz, meta_cluster.cluster_size); nats-server 2.10 may leave one out on a " +
        "first start, and restarting it brings it in",
    );
    expect(((err as Error).cause as Error).message).toBe("no suitable peers for placement");
  });
});

describe("clusterUnsettled", () => {
  it("turns a NATS cluster's passing failures into a retryable TEMPORARILY_UNAVAILABLE naming the cause", () => {
    const e = clusterUnsettled(Object.assign(new Error("timeout"), { name: "TimeoutError" }));
    expect(e?.code).toBe("TEMPORARILY_UNAVAILABLE");
    expect(e?.retryable).toBe(true);
    expect(e?.message).toBe(
      "the NATS cluster did not answer (timeout): a server or a stream leader may be changing; try again",
    );
    expect(clusterUnsettled(new Error("jetstream is not enabled"))?.code).toBe("TEMPORARILY_UNAVAILABLE");
  });

  it("leaves anything else to the caller", () => {
    expect(clusterUnsettled(new Error("permissions violation"))).toBeUndefined();
    expect(clusterUnsettled(new SwitchyardError("RESOURCE_DOES_NOT_EXIST", "no job 'x'"))).toBeUndefined();
    expect(clusterUnsettled("timeout")).toBeUndefined();
  });
});
