// The replica as its own process, as a node agent spawns it: `node dist/main.js` with SWITCHYARD_REPLICA.

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "@switchyard/nats";
import {
  clusterNames,
  EXIT_LOAD_FAILED,
  H,
  keys,
  REPLICA_ENV,
  type ReplicaLaunch,
  type ReplicaSpec,
  type ReplicaStatus,
} from "@switchyard/protocol";
import { Replica } from "@switchyard/replica";
import { buildLinear } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { cacheDir, type Registered, registerModel, request, specFor } from "./helpers.js";

const replicaEntry = createRequire(import.meta.url).resolve("@switchyard/replica/main");

let nc: NatsConnection;
const children: ChildProcess[] = [];

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "replica-process-test" });
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await nc?.close();
});

function launch(
  reg: Registered,
  spec: ReplicaSpec,
): { child: ChildProcess; exited: Promise<number | string>; stderr: () => string } {
  const env: ReplicaLaunch = {
    spec,
    cluster: reg.cluster,
    node_id: "n1",
    cache_dir: cacheDir(),
    nats: { servers: inject("natsUrl") },
  };
  const child = spawn(process.execPath, [replicaEntry], {
    env: { ...process.env, [REPLICA_ENV]: JSON.stringify(env) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(child);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return { child, exited, stderr: () => err };
}

async function statusOf(cluster: string, replicaId: string): Promise<ReplicaStatus | null> {
  const kv = await new Kvm(nc).create(clusterNames(cluster).buckets.cluster);
  const e = await kv.get(keys.replica(replicaId));
  return e && e.operation === "PUT" ? e.json<ReplicaStatus>() : null;
}

async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("replica process", () => {
  it("serves once READY, drains to exit 0 on SIGTERM, and a kill -9 harms nothing else", async () => {
    const reg = await registerModel(nc, buildLinear({ inputs: 4 }));
    // A neighbour in this process that must keep serving when the child is killed.
    const neighbourSpec = specFor(reg, { subject: `${clusterNames(reg.cluster).cluster}.rt.ep.other.g1` });
    const neighbour = await Replica.start({
      nc,
      spec: neighbourSpec,
      cluster: reg.cluster,
      nodeId: "n1",
      cacheDir: cacheDir(),
      registry: reg.registry,
    });

    const spec = specFor(reg);
    const p = launch(reg, spec);
    const ready = await until(
      () => statusOf(reg.cluster, spec.replica_id),
      (s) => s?.state === "READY",
      "READY",
    );
    expect(ready).toMatchObject({ pid: p.child.pid, node_id: "n1", served_model: spec.served_model });
    const reply = await request(nc, spec.subject, { inputs: [[1, 1, 1, 1]] });
    expect(reply.json().predictions).toHaveLength(1);
    const line = p
      .stderr()
      .split("\n")
      .find((l) => l.includes('"event":"ready"'));
    expect(JSON.parse(line!)).toMatchObject({
      replicaId: spec.replica_id,
      servedModel: spec.served_model,
      endpoint: "ep",
    });

    p.child.kill("SIGKILL");
    expect(await p.exited).toBe("SIGKILL");
    const still = await request(nc, neighbourSpec.subject, { inputs: [[1, 1, 1, 1]] });
    expect(still.header(H.errorCode)).toBeUndefined();
    await neighbour.stop();

    const secondSpec = specFor(reg);
    const second = launch(reg, secondSpec);
    await until(
      () => statusOf(reg.cluster, secondSpec.replica_id),
      (s) => s?.state === "READY",
      "second READY",
    );
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    expect((await statusOf(reg.cluster, secondSpec.replica_id))?.state).toBe("DRAINING");
  });

  it("writes FAILED with the reason and exits 3 when an artifact is corrupted", async () => {
    const reg = await registerModel(nc, buildLinear({ inputs: 4 }));
    const v = await reg.registry.getVersion(reg.name, reg.version);
    const os = await new Objm(nc).open(clusterNames(reg.cluster).buckets.artifacts);
    await os.putBlob({ name: v.artifacts[0]!.object }, buildLinear({ inputs: 4, bias: [1] }));
    const spec = specFor(reg);
    const p = launch(reg, spec);
    expect(await p.exited).toBe(EXIT_LOAD_FAILED);
    const status = await statusOf(reg.cluster, spec.replica_id);
    expect(status).toMatchObject({ state: "FAILED", replica_id: spec.replica_id });
    expect(status!.message).toMatch(
      new RegExp(`^artifact model\\.onnx of models:/${reg.name}/1 is corrupted: sha256 `),
    );
  });

  it("drains and exits by itself when its agent dies without stopping it", async () => {
    const reg = await registerModel(nc, buildLinear({ inputs: 2 }));
    const spec = specFor(reg);
    const env: ReplicaLaunch = {
      spec,
      cluster: reg.cluster,
      node_id: "n1",
      cache_dir: cacheDir(),
      nats: { servers: inject("natsUrl") },
    };
    // A stand-in agent: a shell that starts the replica and is then killed with SIGKILL.
    const agent = spawn("bash", ["-c", `"${process.execPath}" "${replicaEntry}" & wait`], {
      env: { ...process.env, [REPLICA_ENV]: JSON.stringify(env) },
      stdio: "ignore",
    });
    children.push(agent);
    const ready = await until(
      () => statusOf(reg.cluster, spec.replica_id),
      (s) => s?.state === "READY",
      "READY",
    );
    const pid = ready!.pid!;
    agent.kill("SIGKILL");
    // Exited means gone, or a zombie nobody reaps (this container's init does not reap orphans).
    const running = () => {
      try {
        return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
      } catch {
        return false;
      }
    };
    await until(
      async () => running(),
      (r) => !r,
      "the orphaned replica to exit",
    );
  });
});
