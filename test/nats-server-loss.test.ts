// A nats-server of a three-node cluster dies with a request passing through it: the router sends the request
// again the moment the loss is known, instead of waiting for its deadline. Each case loses the request for certain
// (the server is stopped with SIGSTOP, so what it is handed sits unread, then killed with SIGKILL) on a server only
// one side uses, so that side's reconnect is the one thing that can bring the answer:
// - the router's own server: the router reconnects elsewhere and sends all it still waits for again;
// - the replica's server, with the request on its way to the replica or with the replica's reply on its way back:
//   the replica reconnects elsewhere and says so on its endpoint's replica-down subject, and the router sends again
//   what it has in flight on that replica's route subject.
// The deadline is 60 s and the test gives up after 30: only the re-send can explain an answer. A real replica
// serves a real model; the reference comes from raw onnxruntime-node.
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { Router } from "@switchyard/client";
import { registerModel } from "@switchyard/ingest";
import { type NatsCluster, startCluster } from "@switchyard/natsd";
import {
  clusterNames,
  type EndpointRoutes,
  H,
  keys,
  type LiveRoute,
  ReplicaDown,
  type ReplicaSpec,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { Replica } from "@switchyard/replica";
import { buildLinear, eventually, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterEach, describe, expect, it } from "vitest";

const MODEL = buildLinear({ inputs: 2, sigmoid: true, bias: [0.25] });
const ROW = [1.0, 3.5];
const BODY = new TextEncoder().encode(
  JSON.stringify({ dataframe_split: { columns: ["feature1", "feature2"], data: [ROW] } }),
);
const DEADLINE_MS = 60_000;
const GIVE_UP_MS = 30_000;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
}, 60_000);

async function reference(): Promise<number> {
  const session = await ort.InferenceSession.create(MODEL);
  const out = await session.run({ input: new ort.Tensor("float32", Float32Array.from(ROW), [1, 2]) });
  await session.release();
  return (out.output!.data as Float32Array)[0]!;
}

/** A client of the servers `urls` in this order: it starts on the first and moves down the list. */
async function connectTo(urls: string[], name: string): Promise<NatsConnection> {
  const nc = await connect({ servers: urls, name, noRandomize: true, maxReconnectAttempts: -1 });
  cleanups.push(() => nc.close());
  return nc;
}

interface Setup {
  nats: NatsCluster;
  router: Router;
  routerNc: NatsConnection;
  replica: Replica;
  spec: ReplicaSpec;
  /** The router's info lines. */
  infos: Array<Record<string, unknown>>;
  /** Every replica-down notice of the cluster. */
  downs: ReplicaDown[];
}

/**
 * Servers n1, n2, n3: the router starts on `routerOn` and may move to n3; the replica starts on `replicaOn`
 * and may move to n3. n3 is where the survivor of a kill goes; the test kills n1 or n2.
 */
async function setup(routerOn: 0 | 1, replicaOn: 0 | 1, maxDelayUs = 0): Promise<Setup> {
  const nats = await startCluster(3, { monitorPort: -1 });
  cleanups.push(() => nats.stop({ removeData: true }));
  const [n1, n2, n3] = nats.urls as [string, string, string];
  const home = [n1, n2];
  const cluster = `l${Math.random().toString(36).slice(2, 9)}`;
  const names = clusterNames(cluster);
  const admin = await connectTo([n3], "test-admin");

  const registry = await Registry.open(admin, { cluster });
  const version = await registerModel(registry, "loss_model", writeTempModel(MODEL));
  const served = "loss_model-1";
  const spec: ReplicaSpec = {
    replica_id: "r-loss",
    endpoint: "ep",
    served_model: served,
    subject: `${names.subjects.served("ep", served)}.g1`,
    model_name: "loss_model",
    model_version: version.version,
    threads: 1,
    max_batch_size: 8,
    max_delay_us: maxDelayUs,
    max_queue: 64,
    generation: "g1",
  };
  const route: LiveRoute = {
    served_model_name: served,
    traffic_percentage: 100,
    subject: spec.subject,
    model_name: "loss_model",
    model_version: version.version,
  };
  const kvm = new Kvm(admin);
  const endpoints = await kvm.create(names.buckets.endpoints, { replicas: 3 });
  await endpoints.put(keys.endpoint("ep"), JSON.stringify({ name: "ep", deleted: false }));
  const clusterKv = await kvm.create(names.buckets.cluster, { replicas: 3 });
  const routes: EndpointRoutes = {
    endpoint: "ep",
    config_version: 1,
    routes: [route],
    updated_at: Date.now(),
  };
  await clusterKv.put(keys.routes("ep"), JSON.stringify(routes));

  const downs: ReplicaDown[] = [];
  admin.subscribe(names.subjects.allReplicaDown, {
    callback: (err, msg) => {
      if (!err) downs.push(ReplicaDown.parse(msg.json()));
    },
  });
  await admin.flush();

  const replicaNc = await connectTo([home[replicaOn]!, n3], "test-replica");
  const replica = await Replica.start({
    nc: replicaNc,
    spec,
    cluster,
    nodeId: "node-1",
    cacheDir: tempDir("sy-loss-cache-"),
  });
  cleanups.push(() => replica.stop());

  const routerNc = await connectTo([home[routerOn]!, n3], "test-router");
  const infos: Array<Record<string, unknown>> = [];
  const router = await Router.start(routerNc, {
    cluster,
    logger: { warn: () => {}, info: (obj) => infos.push({ ...obj }) },
  });
  cleanups.push(() => router.close());
  // The replica's subscription has reached the router's server: a request now goes to it.
  const first = await router.invoke("ep", BODY, json(), { deadlineMs: Date.now() + DEADLINE_MS });
  expect(first.errorCode).toBeUndefined();
  return { nats, router, routerNc, replica, spec, infos, downs };
}

const json = () => {
  const h = natsHeaders();
  h.set(H.contentType, "application/json");
  return h;
};

/** Freezes a server: what it is handed from now on stays unread, and is lost when it is killed. */
const freeze = (nats: NatsCluster, i: number) => process.kill(nats.servers[i]!.pid, "SIGSTOP");

/**
 * Kills the frozen server `i` and returns the invocation's prediction, or fails if it did not come within
 * GIVE_UP_MS; logs how long after the kill it came (for the record, not asserted).
 */
async function killAndAnswer(
  s: Setup,
  i: number,
  pending: ReturnType<Router["invoke"]>,
  what: string,
): Promise<number> {
  await s.nats.servers[i]!.kill();
  const killedAt = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${GIVE_UP_MS} ms: the lost request was not sent again`)),
      GIVE_UP_MS,
    );
  });
  try {
    const r = await Promise.race([pending, giveUp]);
    console.log(`nats-server-loss: ${what}: answered ${Date.now() - killedAt} ms after the kill`);
    expect(r.errorCode).toBeUndefined();
    return (JSON.parse(new TextDecoder().decode(r.data)) as { predictions: number[] }).predictions[0]!;
  } finally {
    clearTimeout(timer);
  }
}

/** Messages the server at `i` has received from the connection named `name` (its monitoring `/connz`). */
async function inMsgsFrom(nats: NatsCluster, i: number, name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${nats.servers[i]!.monitorPort}/connz?limit=1024`);
  const connz = (await res.json()) as { connections?: Array<{ name?: string; in_msgs: number }> };
  const conn = connz.connections?.find((c) => c.name === name);
  if (!conn) throw new Error(`no connection '${name}' on server ${i + 1}`);
  return conn.in_msgs;
}

/**
 * The replica, moved from n2 to n3, said so once on its endpoint's replica-down subject, and the router sent the
 * one request it had in flight there again, saying so once.
 */
function expectReplicaNotice(s: Setup): void {
  const reason = `reconnected to NATS (${new URL(s.nats.urls[2]!).host})`;
  expect(s.downs).toEqual([
    {
      replica_id: "r-loss",
      node_id: "node-1",
      endpoint: "ep",
      served_model: "loss_model-1",
      subject: s.spec.subject,
      reason,
    },
  ]);
  expect(s.infos).toEqual([
    { event: "resend", count: 1, subject: s.spec.subject, replicaId: "r-loss", nodeId: "node-1", reason },
  ]);
}

describe("a nats-server dies with a request passing through it", () => {
  it("the router's server: the router reconnects and sends the request again at once", async () => {
    const want = await reference();
    // Router on n1, replica on n2: n1 carries the request and nothing of the replica's.
    const s = await setup(0, 1);
    freeze(s.nats, 0);
    const sent = s.routerNc.stats().outMsgs;
    const pending = s.router.invoke("ep", BODY, json(), { deadlineMs: Date.now() + DEADLINE_MS });
    // The request left the router for n1, which will never read it.
    await eventually(() => (s.routerNc.stats().outMsgs > sent ? true : undefined), "the request published");
    expect(await killAndAnswer(s, 0, pending, "the router's server")).toBeCloseTo(want, 5);
    // The replica saw the first request and the one sent again; the lost one never reached it.
    expect(s.replica.stats.requests).toBe(2);
    expect(s.infos).toEqual([
      {
        event: "resend",
        count: 1,
        server: expect.stringContaining(String(s.nats.servers[2]!.port)),
        reason: "reconnected",
      },
    ]);
    // The replica's connection was not touched: no notice from it.
    expect(s.downs).toEqual([]);
  }, 120_000);

  it("the replica's server: the replica reconnects and says so, and the router sends the request again", async () => {
    const want = await reference();
    // Router on n1, replica on n2: n2 is handed the request by n1 and never passes it on.
    const s = await setup(0, 1);
    freeze(s.nats, 1);
    const before = await inMsgsFrom(s.nats, 0, "test-router");
    const pending = s.router.invoke("ep", BODY, json(), { deadlineMs: Date.now() + DEADLINE_MS });
    // n1 has the request; the replica's interest it knows is n2's, so it is forwarded there and lost.
    await eventually(
      async () => ((await inMsgsFrom(s.nats, 0, "test-router")) > before ? true : undefined),
      "n1 received the request",
    );
    expect(await killAndAnswer(s, 1, pending, "the replica's server, request on it")).toBeCloseTo(want, 5);
    expect(s.replica.stats.requests).toBe(2);
    expectReplicaNotice(s);
  }, 120_000);

  it("the replica's server, with the reply on it: the replica reconnects and says so, and the router sends the request again", async () => {
    const want = await reference();
    // A lone request waits max_delay_us (1 s) in the replica's batcher for others: time to freeze n2 before
    // the replica answers.
    const s = await setup(0, 1, 1_000_000);
    const pending = s.router.invoke("ep", BODY, json(), { deadlineMs: Date.now() + DEADLINE_MS });
    await eventually(
      () => (s.replica.stats.requests === 2 ? true : undefined),
      "the replica has the request",
    );
    freeze(s.nats, 1);
    // The replica answered into n2, which will never pass the reply on.
    await eventually(() => (s.replica.stats.succeeded === 2 ? true : undefined), "the replica answered");
    expect(await killAndAnswer(s, 1, pending, "the replica's server, reply on it")).toBeCloseTo(want, 5);
    expect(s.replica.stats.requests).toBe(3);
    expectReplicaNotice(s);
  }, 120_000);
});
