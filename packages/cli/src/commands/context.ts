// What every command that talks to a cluster shares: global options, the connection and its closing.

import type { NatsConnection } from "@nats-io/transport-node";
import { SwitchyardClient } from "@switchyard/client";
import { connectNats } from "@switchyard/nats";
import { Registry } from "@switchyard/registry";
import { natsOptionsOf, resolveTarget, type Target } from "../cluster-file.js";
import { type Out, output } from "../output.js";

export interface GlobalOptions {
  nats?: string;
  creds?: string;
  dataDir?: string;
  cluster?: string;
  json?: boolean;
}

export async function withConnection<T>(
  g: GlobalOptions,
  fn: (nc: NatsConnection, target: Target, out: Out) => Promise<T>,
): Promise<T> {
  const target = await resolveTarget(g);
  let nc: NatsConnection;
  try {
    nc = await connectNats({ ...natsOptionsOf(target, "switchyard-cli"), reconnect: false });
  } catch (err) {
    const where = target.natsUrl.replace(/\/\/[^@/,]*@/g, "//");
    throw new Error(`cannot connect to NATS at ${where}: ${(err as Error).message}`);
  }
  try {
    return await fn(nc, target, output(g.json ?? false));
  } finally {
    await nc.close();
  }
}

export function withRegistry<T>(
  g: GlobalOptions,
  fn: (registry: Registry, out: Out) => Promise<T>,
): Promise<T> {
  return withConnection(g, async (nc, target, out) =>
    fn(await Registry.open(nc, { cluster: target.cluster }), out),
  );
}

export function withClient<T>(
  g: GlobalOptions,
  fn: (client: SwitchyardClient, out: Out) => Promise<T>,
): Promise<T> {
  return withConnection(g, async (nc, target, out) => {
    const client = SwitchyardClient.fromConnection(nc, { cluster: target.cluster });
    try {
      return await fn(client, out);
    } finally {
      await client.close();
    }
  });
}
