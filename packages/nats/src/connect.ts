// The one way every component and tool opens a NATS connection. It takes every credential form from day
// one (user/password, token, creds file, or credentials embedded in the URL) so tightening permissions
// later changes no call site.
import { readFileSync } from "node:fs";
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  type QueuedIterator,
  type Status,
} from "@nats-io/transport-node";
import { z } from "zod";

export const NatsOptions = z
  .object({
    servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    user: z.string().optional(),
    pass: z.string().optional(),
    token: z.string().optional(),
    /** Path to a NATS `.creds` file (JWT + nkey seed). */
    creds: z.string().optional(),
    /**
     * Prefix of the reply subjects of this connection's requests (default `_INBOX`). A cluster user made by
     * `switchyard users create` may only subscribe to `_INBOX_<user>.>`, so it connects with `_INBOX_<user>`.
     */
    inboxPrefix: z.string().min(1).optional(),
    /** Connection name, shown by the server's monitoring. */
    name: z.string().optional(),
    /** Milliseconds to wait for the first connection. */
    timeout: z.number().int().positive().default(5_000),
    /**
     * Keep reconnecting forever, to whichever server of the list answers (components), or give up fast (CLI
     * commands).
     */
    reconnect: z.boolean().default(true),
    /**
     * Milliseconds between the client's pings (nats.js default 2 min). A connection whose server stops answering
     * without closing the socket (a network partition) is known lost after 2 unanswered pings.
     */
    pingIntervalMs: z.number().int().positive().optional(),
    /** nats.js async stack traces: ~15 µs per request on the hot path, so off unless debugging. */
    asyncTraces: z.boolean().default(false),
  })
  .strict();
export type NatsOptions = z.input<typeof NatsOptions>;

/** Splits `nats://user:pass@host:port` into a bare server URL and its credentials. */
export function splitNatsUrl(url: string): { server: string; user?: string; pass?: string; token?: string } {
  const withScheme = /^[a-z]+:\/\//i.test(url) ? url : `nats://${url}`;
  const u = new URL(withScheme);
  const user = u.username ? decodeURIComponent(u.username) : undefined;
  const pass = u.password ? decodeURIComponent(u.password) : undefined;
  u.username = "";
  u.password = "";
  const server = u.toString().replace(/\/$/, "");
  // A lone user part is a token, as nats-server and the nats CLI read it.
  if (user !== undefined && pass === undefined) return { server, token: user };
  return { server, user, pass };
}

/**
 * The servers of a NATS cluster, from one URL, a comma-separated list (`--nats`, SWITCHYARD_NATS_URL) or an
 * array of either: the client connects to any of them and moves to another when its server goes away.
 */
export function serverList(servers: string | string[]): string[] {
  const list = (Array.isArray(servers) ? servers : [servers])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new TypeError(`servers: no NATS server URL in '${String(servers)}'`);
  return list;
}

export async function connectNats(options: NatsOptions): Promise<NatsConnection> {
  const o = NatsOptions.parse(options);
  const parts = serverList(o.servers).map(splitNatsUrl);
  const fromUrl = parts.find((p) => p.user !== undefined || p.token !== undefined);
  return connect({
    servers: parts.map((p) => p.server),
    user: o.user ?? fromUrl?.user,
    pass: o.pass ?? fromUrl?.pass,
    token: o.token ?? fromUrl?.token,
    authenticator: o.creds ? credsAuthenticator(readFileSync(o.creds)) : undefined,
    name: o.name,
    ...(o.inboxPrefix ? { inboxPrefix: o.inboxPrefix } : {}),
    timeout: o.timeout,
    maxReconnectAttempts: o.reconnect ? -1 : 0,
    ...(o.pingIntervalMs ? { pingInterval: o.pingIntervalMs, maxPingOut: 2 } : {}),
    noAsyncTraces: !o.asyncTraces,
  });
}

/**
 * Calls `fn` each time `nc` is connected again after losing its server (to another server of the list, or the
 * same one back), once nats.js has made its subscriptions there and sent what it buffered meanwhile: what went
 * through the lost server before and was not answered yet is gone. Returns a function that stops listening.
 */
export function onReconnect(nc: NatsConnection, fn: (server: string) => void): () => void {
  // nats.js types it as an AsyncIterable; it is a QueuedIterator, whose stop() ends a loop blocked on it.
  const events = nc.status() as QueuedIterator<Status>;
  void (async () => {
    for await (const s of events) if (s.type === "reconnect") fn(s.server);
  })().catch(() => {});
  return () => events.stop();
}
