import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { expect, inject, it } from "vitest";

it("the global setup provides a JetStream-enabled nats-server URL", async () => {
  const url = inject("natsUrl");
  expect(url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
  const nc = await connect({ servers: url });
  try {
    const info = await (await jetstreamManager(nc)).getAccountInfo();
    expect(info.limits).toBeDefined();
  } finally {
    await nc.close();
  }
});
