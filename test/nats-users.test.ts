// NATS users and permissions of `switchyard up`, from outside: credentials made with `switchyard users`, used
// by a client written with @nats-io/transport-node directly. Every refusal asserted here is the server's own
// (a permissions violation, an authorization violation), not something Switchyard's code decided.
import { readFileSync } from "node:fs";
import path from "node:path";
import {
  AuthorizationError,
  connect,
  type NatsConnection,
  PermissionViolationError,
} from "@nats-io/transport-node";
import { splitNatsUrl } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";
import { buildLinear, linearPredict } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, eventually, startUpWithModel, type Up } from "./helpers/up.js";

const MODEL = { inputs: 2, sigmoid: true, bias: [0.25] } as const;
const names = clusterNames("sy");

describe("NATS users of switchyard up", () => {
  let up: Up;
  let server: string;
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });
  const open: NatsConnection[] = [];

  /** A raw client: exactly what a user's own program does with the credentials it was given. */
  const client = async (user: string, pass: string, inboxPrefix?: string) => {
    const nc = await connect({
      servers: server,
      user,
      pass,
      maxReconnectAttempts: 0,
      ...(inboxPrefix ? { inboxPrefix } : {}),
    });
    open.push(nc);
    return nc;
  };

  const createUser = async (args: string[]) => {
    const r = await cli(["users", "create", ...args, "--json"], env());
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const created = JSON.parse(r.stdout) as { user: string; password: string };
    expect(Object.keys(created).sort()).toEqual(["password", "user"]);
    return created;
  };

  /** The server's permissions violation behind a failed request (nats.js wraps it in a RequestError). */
  const violationOf = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    return err instanceof Error && !(err instanceof PermissionViolationError) ? err.cause : err;
  };

  /** The request is refused by the server: a permissions violation naming the publish and its subject. */
  const expectPublishDenied = async (p: Promise<unknown>, subject: string) => {
    const err = await violationOf(p);
    expect(err).toBeInstanceOf(PermissionViolationError);
    expect((err as PermissionViolationError).operation).toBe("publish");
    expect((err as PermissionViolationError).subject).toBe(subject);
  };

  /** The subscription is refused by the server: it ends with a permissions violation for that subject. */
  const expectSubscribeDenied = async (nc: NatsConnection, subject: string) => {
    const sub = nc.subscribe(subject);
    const ended = await sub.closed;
    expect(ended).toBeInstanceOf(PermissionViolationError);
    expect((ended as PermissionViolationError).operation).toBe("subscription");
    expect((ended as PermissionViolationError).subject).toBe(subject);
  };

  const invokeBody = (rows: number[][]) =>
    JSON.stringify({ dataframe_split: { columns: ["a", "b"], data: rows } });

  beforeAll(async () => {
    up = await startUpWithModel("catalog.schema.lr", buildLinear(MODEL), "champion");
    server = splitNatsUrl(up.info().natsUrl).server;
    const { call, waitReady } = clusterClient(up);
    for (const name of ["allowed", "other"]) {
      const r = await call("POST", "/api/2.0/serving-endpoints", {
        name,
        config: {
          served_entities: [
            { entity_name: "catalog.schema.lr", entity_version: "@champion", workload_size: "Small" },
          ],
        },
      });
      expect(r.status).toBe(200);
    }
    await waitReady("allowed");
    await waitReady("other");
  }, 180_000);

  afterAll(async () => {
    await Promise.all(open.map((nc) => nc.close().catch(() => {})));
    await up?.stop();
  });

  it("lets a created user invoke its endpoint and nothing else", async () => {
    const alice = await createUser(["--endpoints", "allowed", "--name", "alice"]);
    expect(alice.user).toBe("alice");
    const nc = await client(alice.user, alice.password, "_INBOX_alice");

    const rows = [
      [1, 2],
      [-0.5, 3.25],
      [4, -1],
    ];
    const reply = await nc.request(names.subjects.invoke("allowed"), invokeBody(rows), { timeout: 30_000 });
    const predictions = reply.json<{ predictions: number[] }>().predictions;
    const expected = linearPredict(MODEL, rows).flat();
    expect(predictions).toHaveLength(expected.length);
    predictions.forEach((p, i) => {
      expect(Math.abs(p - expected[i]!)).toBeLessThan(1e-5);
    });

    // Another endpoint exists and serves the admin, but this user may not request it.
    await expectPublishDenied(
      nc.request(names.subjects.invoke("other"), invokeBody(rows), { timeout: 10_000 }),
      names.subjects.invoke("other"),
    );
    // JetStream, the KV buckets and the object store, raw as any client library would reach them.
    await expectPublishDenied(nc.request("$JS.API.INFO", "", { timeout: 10_000 }), "$JS.API.INFO");
    const kvGet = `$JS.API.DIRECT.GET.KV_${names.buckets.endpoints}.$KV.${names.buckets.endpoints}.allowed`;
    await expectPublishDenied(nc.request(kvGet, "", { timeout: 10_000 }), kvGet);
    const kvInfo = `$JS.API.STREAM.INFO.KV_${names.buckets.endpoints}`;
    await expectPublishDenied(nc.request(kvInfo, "", { timeout: 10_000 }), kvInfo);
    const kvPut = `$KV.${names.buckets.endpoints}.allowed`;
    await expectPublishDenied(nc.request(kvPut, "{}", { timeout: 10_000 }), kvPut);
    const objInfo = `$JS.API.STREAM.INFO.OBJ_${names.buckets.artifacts}`;
    await expectPublishDenied(nc.request(objInfo, "", { timeout: 10_000 }), objInfo);
    await expectSubscribeDenied(nc, `$KV.${names.buckets.endpoints}.>`);
    await expectSubscribeDenied(nc, `$O.${names.buckets.artifacts}.>`);
    // Other clients' replies: the shared inbox, another user's prefix, everything.
    await expectSubscribeDenied(nc, "_INBOX.>");
    await expectSubscribeDenied(nc, "_INBOX_bob.>");
    await expectSubscribeDenied(nc, ">");
    await expectSubscribeDenied(nc, names.subjects.invoke("allowed"));

    // After all those refusals the connection still serves the allowed endpoint.
    const again = await nc.request(names.subjects.invoke("allowed"), invokeBody([[1, 2]]), {
      timeout: 30_000,
    });
    expect(again.json<{ predictions: number[] }>().predictions).toHaveLength(1);
  });

  it("refuses a client on the default inbox prefix: its replies could not reach it", async () => {
    const carol = await createUser(["--endpoints", "allowed", "--name", "carol"]);
    const nc = await client(carol.user, carol.password);
    const err = await violationOf(
      nc.request(names.subjects.invoke("allowed"), invokeBody([[1, 2]]), { timeout: 10_000 }),
    );
    expect(err).toBeInstanceOf(PermissionViolationError);
    expect((err as PermissionViolationError).operation).toBe("subscription");
  });

  it("lists users without passwords and refuses bad input with the field named", async () => {
    await createUser(["--endpoints", "*", "--name", "dave"]);
    const list = await cli(["users", "list", "--json"], env());
    expect(list.code).toBe(0);
    const users = JSON.parse(list.stdout) as Record<string, unknown>[];
    const dave = users.find((u) => u.user === "dave");
    expect(dave).toEqual({
      user: "dave",
      endpoints: ["*"],
      matching_endpoints: expect.any(Number),
      inbox_prefix: "_INBOX_dave",
      created_at: expect.any(Number),
    });
    expect(list.stdout).not.toMatch(/password|\$2a\$/);

    // Two creates at once: both saved, both let in.
    const pair = await Promise.all([
      createUser(["--endpoints", "allowed", "--name", "gina"]),
      createUser(["--endpoints", "allowed", "--name", "hank"]),
    ]);
    const after = JSON.parse((await cli(["users", "list", "--json"], env())).stdout) as { user: string }[];
    expect(after.map((u) => u.user)).toEqual(expect.arrayContaining(["dave", "gina", "hank"]));
    for (const u of pair) await (await client(u.user, u.password, `_INBOX_${u.user}`)).flush();

    for (const pattern of ["fraud.*", "fraud->", "a,*"]) {
      const bad = await cli(["users", "create", "--endpoints", pattern], env());
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/--endpoints: /);
    }
    const natsWildcard = await cli(["users", "create", "--endpoints", "fraud->"], env());
    expect(natsWildcard.stderr).toMatch(/--endpoints: 'fraud->' is not an endpoint name or glob/);
    const badName = await cli(["users", "create", "--endpoints", "allowed", "--name", "a.b"], env());
    expect(badName.code).toBe(1);
    expect(badName.stderr).toMatch(/--name: 'a\.b' is invalid/);
    const dup = await cli(["users", "create", "--endpoints", "allowed", "--name", "dave"], env());
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/'dave' already exists/);
    const role = await cli(["users", "create", "--endpoints", "allowed", "--name", "admin"], env());
    expect(role.code).toBe(1);
    expect(role.stderr).toMatch(/--name: 'admin' is the cluster's own user/);
    const unmanaged = await cli(["users", "list", "--nats", "nats://127.0.0.1:1"], env());
    expect(unmanaged.code).toBe(1);
    expect(unmanaged.stderr).toMatch(/cannot change a server given by --nats/);
    const noDir = await cli(["users", "list", "--data-dir", path.join(up.dataDir, "nowhere")]);
    expect(noDir.code).toBe(1);
    expect(noDir.stderr).toMatch(/no local cluster found/);
  });

  it("a glob user may invoke the matching endpoints as they come and go, and no other", async () => {
    const { call, waitReady } = clusterClient(up);
    // Created before any endpoint matches: it may request nothing yet.
    const gl = await createUser(["--endpoints", "gl-*", "--name", "globber"]);
    const listed = async () =>
      (JSON.parse((await cli(["users", "list", "--json"], env())).stdout) as Record<string, unknown>[]).find(
        (u) => u.user === "globber",
      );
    expect(await listed()).toMatchObject({ endpoints: ["gl-*"], matching_endpoints: 0 });
    const nc = await client(gl.user, gl.password, "_INBOX_globber");
    const subject = names.subjects.invoke("gl-b");
    const rows = [
      [0.5, -2],
      [3, 1.5],
    ];
    await expectPublishDenied(nc.request(subject, invokeBody(rows), { timeout: 10_000 }), subject);

    const created = await call("POST", "/api/2.0/serving-endpoints", {
      name: "gl-b",
      config: {
        served_entities: [
          { entity_name: "catalog.schema.lr", entity_version: "@champion", workload_size: "Small" },
        ],
      },
    });
    expect(created.status).toBe(200);
    await waitReady("gl-b");
    const predictions = await eventually(
      async () =>
        (await nc.request(subject, invokeBody(rows), { timeout: 10_000 })).json<{ predictions: number[] }>()
          .predictions,
      "gl-b allowed to the glob user",
      30_000,
    );
    const expected = linearPredict(MODEL, rows).flat();
    expect(predictions).toHaveLength(expected.length);
    predictions.forEach((p, i) => {
      expect(Math.abs(p - expected[i]!)).toBeLessThan(1e-5);
    });
    expect(await listed()).toMatchObject({ endpoints: ["gl-*"], matching_endpoints: 1 });
    // An endpoint the glob does not match stays refused by the server.
    await expectPublishDenied(
      nc.request(names.subjects.invoke("other"), invokeBody(rows), { timeout: 10_000 }),
      names.subjects.invoke("other"),
    );

    const deleted = await call("DELETE", "/api/2.0/serving-endpoints/gl-b");
    expect(deleted.status).toBe(200);
    await eventually(
      async () => {
        const err = await violationOf(nc.request(subject, invokeBody(rows), { timeout: 10_000 }));
        return err instanceof PermissionViolationError && err.operation === "publish" ? err : undefined;
      },
      "gl-b refused to the glob user again",
      30_000,
    );
    expect(await listed()).toMatchObject({ matching_endpoints: 0 });
  }, 120_000);

  it("a user with '*' may invoke every endpoint, still only through sy.invoke", async () => {
    const erin = await createUser(["--endpoints", "*", "--name", "erin"]);
    const nc = await client(erin.user, erin.password, "_INBOX_erin");
    for (const e of ["allowed", "other"]) {
      const r = await nc.request(names.subjects.invoke(e), invokeBody([[2, 2]]), { timeout: 30_000 });
      const p = r.json<{ predictions: number[] }>().predictions;
      expect(Math.abs(p[0]! - linearPredict(MODEL, [[2, 2]])[0]![0]!)).toBeLessThan(1e-5);
    }
    const api = names.subjects.api("endpoints.list");
    await expectPublishDenied(nc.request(api, "{}", { timeout: 10_000 }), api);
  });

  it("deleting a user closes its connections and refuses it from then on", async () => {
    const frank = await createUser(["--endpoints", "allowed", "--name", "frank"]);
    const nc = await client(frank.user, frank.password, "_INBOX_frank");
    const closed = nc.closed();
    const del = await cli(["users", "delete", "frank"], env());
    expect(del.stderr).toBe("");
    expect(del.stdout.trim()).toBe("deleted NATS user frank");
    await eventually(() => nc.isClosed() || undefined, "frank's connection closed by the server", 30_000);
    await closed;
    const refused = await connect({
      servers: server,
      user: frank.user,
      pass: frank.password,
      maxReconnectAttempts: 0,
    }).then(
      async (c) => {
        await c.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(AuthorizationError);
    const list = JSON.parse((await cli(["users", "list", "--json"], env())).stdout) as { user: string }[];
    expect(list.map((u) => u.user)).not.toContain("frank");
    const again = await cli(["users", "delete", "frank"], env());
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/NATS user 'frank' does not exist/);
  });

  it("gives the internal roles their own users: a node cannot write endpoints, a bridge cannot delete streams", async () => {
    const secrets = JSON.parse(readFileSync(path.join(up.dataDir, "secrets.json"), "utf8")) as Record<
      string,
      { user: string; password: string }
    >;
    const endpointsStream = `KV_${names.buckets.endpoints}`;

    const node = await client(secrets.node!.user, secrets.node!.password);
    // What a node needs works (the roles run on these credentials: the endpoints above became READY)…
    const info = await node.request(`$JS.API.STREAM.INFO.${endpointsStream}`, "", { timeout: 10_000 });
    expect(info.json<{ config: { name: string } }>().config.name).toBe(endpointsStream);
    // …writing the endpoints bucket, or its stream, or asking the coordinator to, does not.
    const put = `$KV.${names.buckets.endpoints}.allowed`;
    await expectPublishDenied(node.request(put, "{}", { timeout: 10_000 }), put);
    for (const op of ["UPDATE", "DELETE", "PURGE", "MSG.DELETE"]) {
      const subject = `$JS.API.STREAM.${op}.${endpointsStream}`;
      await expectPublishDenied(node.request(subject, "{}", { timeout: 10_000 }), subject);
    }
    const api = names.subjects.api("endpoints.delete");
    await expectPublishDenied(
      node.request(api, JSON.stringify({ name: "allowed" }), { timeout: 10_000 }),
      api,
    );

    const bridge = await client(secrets.bridge!.user, secrets.bridge!.password);
    for (const op of ["DELETE", "PURGE"]) {
      const subject = `$JS.API.STREAM.${op}.${endpointsStream}`;
      await expectPublishDenied(bridge.request(subject, "{}", { timeout: 10_000 }), subject);
    }

    // Nothing was changed: the endpoints still serve, as the admin sees them.
    const { invoke } = clusterClient(up);
    const r = await invoke("allowed", { dataframe_split: { columns: ["a", "b"], data: [[1, 2]] } });
    expect(r.status).toBe(200);
  });
});
