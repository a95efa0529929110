// A registry in its own cluster namespace per test, so its buckets collide with no other test.
import { randomUUID } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "@switchyard/registry";

export async function freshRegistry(nc: NatsConnection): Promise<{ reg: Registry; cluster: string }> {
  const cluster = `t${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  return { reg: await Registry.open(nc, { cluster }), cluster };
}
