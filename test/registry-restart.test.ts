// The registry survives a nats-server crash: a server killed with SIGKILL and started again on the same store
// serves the same models, aliases and verified artifacts, to the old connection (reconnected) and to new ones.

import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import { NatsServer } from "@switchyard/natsd";
import { Registry } from "@switchyard/registry";
import { buildMlp, writeMlflowModelDir } from "@switchyard/testkit";
import { expect, it } from "vitest";

/** Retries `fn` until it succeeds: after a restart, JetStream takes a moment to recover its streams. */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

it("survives a nats-server kill and restart on the same store", async () => {
  const server = await NatsServer.start({});
  const nc = await connectNats({ servers: server.url, name: "registry-restart" });
  try {
    const reg = await Registry.open(nc, { cluster: "restart" });
    const bytes = buildMlp([16, 32, 1], { seed: 5 });
    const dir = writeMlflowModelDir({ onnx: bytes });
    const v1 = await registerModel(reg, "ops.ml.survivor", dir, { alias: "champion" });

    await server.kill();
    await server.restart();

    // The same Registry over the same (reconnected) connection.
    const resolved = await eventually(() => reg.resolve("models:/ops.ml.survivor@champion"));
    expect(resolved).toEqual(v1);
    expect(Buffer.from(await reg.readArtifact(resolved, "model.onnx")).equals(bytes)).toBe(true);

    // A new connection and Registry (re-opening existing buckets) see the same and continue the numbering.
    const nc2 = await connectNats({ servers: server.url, name: "registry-restart-2" });
    try {
      const reg2 = await Registry.open(nc2, { cluster: "restart" });
      expect(await reg2.resolve("models:/ops.ml.survivor/latest")).toEqual(v1);
      expect((await registerModel(reg2, "ops.ml.survivor", dir)).version).toBe(2);
      expect((await reg2.getModel("ops.ml.survivor")).aliases).toEqual({ champion: 1 });
    } finally {
      await nc2.close();
    }
  } finally {
    await nc.close();
    await server.stop({ removeData: true });
  }
});
