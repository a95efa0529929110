// A replica that dies with requests in hand: its node agent's ReplicaDown notice makes the router send those
// requests again at once, alone, to the served model's queue group. Against a real nats-server, with replica
// doubles: a "dying" double that takes requests and answers only when the test lets it (late, after its death),
// and a survivor that answers at once.
import { type Msg, headers as natsHeaders } from "@nats-io/transport-node";
import { clusterNames, H, type LiveRoute, type ReplicaDown } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { type InvokeOutcome, Router, type RouterLogger } from "../src/router.js";
import {
  natsPerFile,
  putEndpointWithRoutes,
  type ReceivedRequest,
  type ReplicaReply,
  rejection,
  replicaDouble,
  route,
  uniqueCluster,
} from "./fixtures/doubles.js";

const utf8 = new TextEncoder();
const text = new TextDecoder();
const files = natsPerFile();

async function setup() {
  const cluster = uniqueCluster();
  const outcomes: InvokeOutcome[] = [];
  const warnings: string[] = [];
  const holding: string[] = [];
  const infos: string[] = [];
  const logger: RouterLogger = {
    warn: (_obj, msg) => warnings.push(msg),
    info: (obj, msg) => infos.push(`${JSON.stringify(obj)} ${msg}`),
  };
  const router = await Router.start(files.nc(), {
    cluster,
    logger,
    observers: [{ observe: (o) => outcomes.push(o), holding: (_e, r) => holding.push(r.served_model_name) }],
  });
  files.cleanups.push(() => router.close());
  await files.nc().flush();
  return { cluster, router, outcomes, warnings, holding, infos };
}

/** A replica double of `r`, unsubscribed after the test. */
function serve(
  r: LiveRoute,
  answer: (req: ReceivedRequest) => ReplicaReply | Promise<ReplicaReply>,
  name?: string,
) {
  const d = replicaDouble(files.nc(), r, answer, name);
  files.cleanups.push(() => d.stop());
  return d;
}

/** A double that keeps every request it gets unanswered until `answerLate()`, then answers `prediction`. */
function heldDouble(r: LiveRoute, prediction = "dead") {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const double = serve(r, () => gate.then(() => ({ body: { predictions: [prediction] } })), prediction);
  return { double, answerLate: release };
}

const survivor = (r: LiveRoute) =>
  serve(r, (req) => ({ body: { predictions: [`survivor:${text.decode(req.data)}`] } }), "survivor");

/** Every message on a route subject from now on: its request id, or `batch:<n>` for an envelope. */
async function watch(subject: string) {
  const seen: string[] = [];
  const sub = files.nc().subscribe(subject, {
    callback: (_err, msg: Msg) => {
      const n = msg.headers?.get(H.batch);
      seen.push(n ? `batch:${n}` : (msg.headers?.get(H.requestId) ?? ""));
    },
  });
  files.cleanups.push(() => sub.unsubscribe());
  await files.nc().flush();
  return seen;
}

/** What the node agent publishes when the replica process of `r` exits unexpectedly. */
async function reportDown(cluster: string, r: LiveRoute): Promise<void> {
  const down: ReplicaDown = {
    replica_id: "r-dying",
    node_id: "n1",
    endpoint: "ep",
    served_model: r.served_model_name,
    subject: r.subject,
    reason: "SIGKILL",
  };
  files.nc().publish(clusterNames(cluster).subjects.replicaDown("ep"), JSON.stringify(down));
  await files.nc().flush();
}

const withId = (id: string) => {
  const h = natsHeaders();
  h.set(H.requestId, id);
  return h;
};

const predictions = (data: Uint8Array) =>
  (JSON.parse(text.decode(data)) as { predictions: string[] }).predictions;

describe("a replica's death with requests in flight", () => {
  it("sends a request in flight on the dead replica again: the survivor answers it once, a late reply is dropped", async () => {
    const { cluster, router, outcomes } = await setup();
    const a = route(cluster, "ep", "a", 100);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const dying = heldDouble(a);
    const deadline = Date.now() + 20_000;
    const pending = router.invoke("ep", utf8.encode("x1"), withId("req-1"), { deadlineMs: deadline });
    await expect.poll(() => dying.double.received.length).toBe(1);
    // The process dies: the server drops its subscription, a survivor serves, and the agent says so.
    dying.double.stop();
    const alive = survivor(a);
    await files.nc().flush();
    const seen = await watch(a.subject);
    const t0 = Date.now();
    await reportDown(cluster, a);
    const r = await pending;
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(r.errorCode).toBeUndefined();
    expect(predictions(r.data)).toEqual(["survivor:x1"]);
    expect(r.headers?.get(H.requestId)).toBe("req-1");
    expect(seen).toEqual(["req-1"]);
    expect(alive.received.map((q) => q.headers[H.requestId])).toEqual(["req-1"]);
    // It kept its deadline.
    expect(alive.received[0]!.headers[H.deadline]).toBe(String(deadline));
    // The dead replica's reply, if one still comes, reaches nobody: one outcome, the survivor's.
    dying.answerLate();
    await expect.poll(() => dying.double.received.length).toBe(1);
    await files.nc().flush();
    await files.nc().flush();
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]!.requestId).toBe("req-1");
    expect(predictions(outcomes[0]!.reply!)).toEqual(["survivor:x1"]);
  });

  it("sends each request of a coalesced batch in flight again on its own, and nothing of another served model", async () => {
    const { cluster, router, outcomes, infos } = await setup();
    const a = route(cluster, "ep", "a", 50);
    const b = route(cluster, "ep", "b", 50);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a, b]);
    const dying = heldDouble(a);
    // b's replica is slow but alive: its request in flight must not go twice.
    const slowB = heldDouble(b, "b");
    const ids = ["p0", "p1", "p2", "p3"];
    const seenA = await watch(a.subject);
    const seenB = await watch(b.subject);
    const batch = Promise.all(
      ids.map((id) =>
        router.invoke("ep", utf8.encode(id), withId(id), {
          servedModel: "a",
          deadlineMs: Date.now() + 20_000,
        }),
      ),
    );
    const onB = router.invoke("ep", utf8.encode("q"), withId("on-b"), {
      servedModel: "b",
      deadlineMs: Date.now() + 20_000,
    });
    await expect.poll(() => dying.double.received.length).toBe(4);
    await expect.poll(() => slowB.double.received.length).toBe(1);
    expect(seenA).toEqual(["batch:4"]);
    dying.double.stop();
    const alive = survivor(a);
    await files.nc().flush();
    await reportDown(cluster, a);
    const got = await batch;
    got.forEach((r, i) => {
      expect(r.errorCode).toBeUndefined();
      expect(predictions(r.data)).toEqual([`survivor:${ids[i]}`]);
      expect(r.headers?.get(H.requestId)).toBe(ids[i]);
    });
    // Each went again alone, as a plain request, told once with the count.
    expect(seenA.slice(1).sort()).toEqual(ids);
    expect(infos).toEqual([
      `{"event":"resend","count":4,"subject":"${a.subject}","replicaId":"r-dying","nodeId":"n1","reason":"SIGKILL"} ` +
        "sent 4 request(s) in flight on served model 'a' again: replica r-dying on node n1: SIGKILL",
    ]);
    expect(alive.received.map((q) => q.headers[H.requestId]).sort()).toEqual(ids);
    // b's request was not touched: it is answered by its own replica, once.
    expect(seenB).toEqual(["on-b"]);
    slowB.answerLate();
    expect(predictions((await onB).data)).toEqual(["b"]);
    expect(slowB.double.received).toHaveLength(1);
    dying.answerLate();
    await files.nc().flush();
    await files.nc().flush();
    expect(outcomes.map((o) => o.requestId).sort()).toEqual([...ids, "on-b"].sort());
  });

  it("holds a request whose only replica died until a new one answers, within its deadline", async () => {
    const { cluster, router, holding } = await setup();
    const a = route(cluster, "ep", "a", 100);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const dying = heldDouble(a);
    const pending = router.invoke("ep", utf8.encode("x"), withId("held"), {
      deadlineMs: Date.now() + 20_000,
    });
    await expect.poll(() => dying.double.received.length).toBe(1);
    dying.double.stop();
    await files.nc().flush();
    await reportDown(cluster, a);
    // Sent again at once, to no replica (no responders): the router holds it, as any request nothing answers.
    await expect.poll(() => holding.length).toBe(1);
    const restarted = survivor(a);
    const r = await pending;
    expect(predictions(r.data)).toEqual(["survivor:x"]);
    expect(restarted.received.map((q) => q.headers[H.requestId])).toEqual(["held"]);
  });

  it("still ends a re-sent request at its own deadline when nothing answers it", async () => {
    const { cluster, router } = await setup();
    const a = route(cluster, "ep", "a", 100);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const dying = heldDouble(a);
    const deadline = Date.now() + 2_000;
    const pending = rejection(
      router.invoke("ep", utf8.encode("x"), withId("late"), { deadlineMs: deadline }),
    );
    await expect.poll(() => dying.double.received.length).toBe(1);
    // Another replica that takes it and hangs too.
    const hung = heldDouble(a);
    await reportDown(cluster, a);
    const err = await pending;
    expect(err.code).toBe("DEADLINE_EXCEEDED");
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    expect(dying.double.received.length + hung.double.received.length).toBe(2);
    dying.answerLate();
    hung.answerLate();
  });

  it("ignores a notice that does not parse, saying so", async () => {
    const { cluster, router, warnings } = await setup();
    const a = route(cluster, "ep", "a", 100);
    await putEndpointWithRoutes(files.nc(), cluster, "ep", [a]);
    const alive = survivor(a);
    files.nc().publish(clusterNames(cluster).subjects.replicaDown("ep"), '{"subject": 7}');
    await files.nc().flush();
    await expect.poll(() => warnings).toEqual(["ignoring a replica-down notice that does not parse"]);
    const r = await router.invoke("ep", utf8.encode("y"));
    expect(predictions(r.data)).toEqual(["survivor:y"]);
    expect(alive.received).toHaveLength(1);
  });
});
