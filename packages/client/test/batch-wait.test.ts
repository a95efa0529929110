// waitForBatch across a cluster that loses a server: a status read answered with a retryable error is read again
// (the job runs on), any other error ends the wait at once. Against a real nats-server, with a double of the
// coordinators' `batch.get` that answers what the test scripts.
import { headers as natsHeaders } from "@nats-io/transport-node";
import { clusterNames, H, SwitchyardError } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { SwitchyardClient } from "../src/client.js";
import { natsPerFile, uniqueCluster } from "./fixtures/doubles.js";

const files = natsPerFile();

/** Answers each `batch.get` with the next scripted reply: a job state, or an error code. */
function coordinatorDouble(cluster: string, replies: Array<{ state: string } | { error: string }>) {
  const nc = files.nc();
  let calls = 0;
  const sub = nc.subscribe(clusterNames(cluster).subjects.api("batch.get"), {
    callback: (_err, msg) => {
      const r = replies[Math.min(calls++, replies.length - 1)]!;
      if ("error" in r) {
        const h = natsHeaders();
        h.set(H.errorCode, r.error);
        msg.respond(JSON.stringify({ error_code: r.error, message: `scripted ${r.error}` }), { headers: h });
      } else msg.respond(JSON.stringify({ id: "j1", state: r.state }));
    },
  });
  files.cleanups.push(async () => sub.unsubscribe());
  return { calls: () => calls };
}

describe("waitForBatch", () => {
  it("reads again after a retryable error and returns the job's final status", async () => {
    const cluster = uniqueCluster();
    const double = coordinatorDouble(cluster, [
      { state: "RUNNING" },
      { error: "TEMPORARILY_UNAVAILABLE" },
      { error: "DEADLINE_EXCEEDED" },
      { state: "SUCCEEDED" },
    ]);
    const client = SwitchyardClient.fromConnection(files.nc(), { cluster });
    const seen: string[] = [];
    const end = await client.waitForBatch("j1", { intervalMs: 10, onProgress: (j) => seen.push(j.state) });
    expect(end.state).toBe("SUCCEEDED");
    expect(seen).toEqual(["RUNNING", "SUCCEEDED"]);
    expect(double.calls()).toBe(4);
  });

  it("ends at once on an error that is not retryable", async () => {
    const cluster = uniqueCluster();
    const double = coordinatorDouble(cluster, [{ state: "RUNNING" }, { error: "RESOURCE_DOES_NOT_EXIST" }]);
    const client = SwitchyardClient.fromConnection(files.nc(), { cluster });
    const err = await client.waitForBatch("j1", { intervalMs: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchyardError);
    expect((err as SwitchyardError).code).toBe("RESOURCE_DOES_NOT_EXIST");
    expect(double.calls()).toBe(2);
  });
});
