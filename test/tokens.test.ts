// Scoped tokens, per-route authorization and Databricks' permissions API end to end: `switchyard up`, tokens made
// with `switchyard tokens create`, HTTP as curl and python-requests send it. Every route class answers a token
// with and without the scope with the exact status and code; an endpoint a token may not view answers byte for
// byte like one that does not exist; a revoked token is refused by two bridges; grants made through the
// permissions API open an endpoint to a token by its name.
import path from "node:path";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  createBridge,
  DASHBOARD_PATHS,
  listenBridge,
  ROUTE_RULES,
  registeredRoutes,
} from "@switchyard/bridge";
import { connectNats } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, eventually, type HttpReply, httpCall, startUp, type Up } from "./helpers/up.js";

const ROWS = [
  [1, 2],
  [3, 4],
];
/** The model computes x1 + x2. */
const EXPECTED = ROWS.map(([a, b]) => a! + b!);

interface Made {
  id: string;
  token: string;
  scopes: string[];
  expires: string | null;
}

describe("tokens, scopes and endpoint permissions", { timeout: 240_000 }, () => {
  let up: Up;
  let nc: NatsConnection;
  let http: string;
  let admin: string;
  let second: Awaited<ReturnType<typeof listenBridge>>;
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });

  const create = async (args: string[]): Promise<Made> => {
    const r = await cli(["tokens", "create", ...args, "--json"], env());
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as Made;
  };

  const call = (
    token: string | undefined,
    method: string,
    p: string,
    body?: unknown,
    base = http,
    headers: Record<string, string> = {},
  ): Promise<HttpReply> => httpCall(base, token, method, p, body, headers);

  const expectError = (r: HttpReply, status: number, code: string) => {
    expect({ status: r.status, code: r.json?.error_code }, r.text).toEqual({ status, code });
  };

  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-tokens-"), "data"));
    ({ http, token: admin } = clusterClient(up));
    nc = await connectNats({ servers: up.info().natsUrl });
    const reg = await cli(
      ["models", "register", "tok_sum", writeTempModel(buildLinear({ inputs: 2, weights: [1, 1] }))],
      env(),
    );
    expect(reg.stderr).toBe("");
    for (const name of ["fraud-eu", "churn"]) {
      const r = await call(admin, "POST", "/api/2.0/serving-endpoints", {
        name,
        config: {
          served_entities: [{ entity_name: "tok_sum", entity_version: "1", workload_size: "Small" }],
        },
      });
      expect(r.status, r.text).toBe(200);
    }
    await clusterClient(up).waitReady("fraud-eu");
    second = await listenBridge({ nc, cluster: up.info().cluster, auth: true });
  }, 180_000);

  afterAll(async () => {
    await second?.close();
    await nc?.close();
    await up?.stop();
  });

  it("the authorization table names exactly the routes the bridge registers", async () => {
    const app = await createBridge({ nc, cluster: up.info().cluster, auth: true });
    try {
      const expected = [...Object.keys(ROUTE_RULES), ...[...DASHBOARD_PATHS].map((p) => `GET ${p}`)].sort();
      expect([...registeredRoutes(app)].sort()).toEqual(expected);
    } finally {
      await app.close();
    }
    // A route added without a rule stops the bridge from starting.
    const bad = await createBridge({ nc, cluster: up.info().cluster, auth: true });
    try {
      expect(() => bad.get("/api/2.0/switchyard/unruled", async () => ({}))).toThrow(
        "bridge route GET /api/2.0/switchyard/unruled has no authorization rule",
      );
    } finally {
      await bad.close();
    }
  });

  it("refuses missing, malformed, unknown and query-string tokens", async () => {
    expectError(await call(undefined, "GET", "/api/2.0/serving-endpoints"), 401, "UNAUTHENTICATED");
    expectError(await call("syt_short", "GET", "/api/2.0/serving-endpoints"), 401, "UNAUTHENTICATED");
    expectError(
      await call("not-a-token-at-all", "GET", "/api/2.0/serving-endpoints"),
      401,
      "UNAUTHENTICATED",
    );
    const unknown = await call(`syt_${"A".repeat(43)}`, "GET", "/api/2.0/serving-endpoints");
    expectError(unknown, 403, "PERMISSION_DENIED");
    expect(unknown.json.message).toBe("Invalid access token.");
    // In the query string: refused even with a valid header.
    for (const q of [`?token=${admin}`, `?access_token=${admin}`, `?x=1&Token=${admin}`]) {
      expectError(await call(admin, "GET", `/api/2.0/serving-endpoints${q}`), 401, "UNAUTHENTICATED");
      expectError(await call(undefined, "GET", `/api/2.0/serving-endpoints${q}`), 401, "UNAUTHENTICATED");
    }
    // Health probes and the dashboard page stay open.
    expect((await call(undefined, "GET", "/v2/health/live")).status).toBe(200);
    expect((await call(undefined, "GET", "/")).status).toBe(200);
  });

  it("CLI: --scope is required and validated; --json prints exactly id, token, scopes, expires", async () => {
    const missing = await cli(["tokens", "create"], env());
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("--scope");
    const bad = await cli(["tokens", "create", "--scope", "query:fraud-*,writ"], env());
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("--scope: 'writ' is not a scope");
    const badTtl = await cli(["tokens", "create", "--scope", "read", "--ttl", "soon"], env());
    expect(badTtl.code).not.toBe(0);
    expect(badTtl.stderr).toContain("--ttl");
    const t = await create(["--scope", "query:fraud-*,view:*", "--name", "cli-ci", "--ttl", "30d"]);
    expect(Object.keys(t).sort()).toEqual(["expires", "id", "scopes", "token"]);
    expect(t.scopes).toEqual(["query:fraud-*", "view:*"]);
    const days = (Date.parse(t.expires!) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
    expect((await create(["--scope", "read"])).expires).toBeNull();

    const list = await cli(["tokens", "list", "--json"], env());
    const listed = JSON.parse(list.stdout) as Record<string, unknown>[];
    const mine = listed.find((x) => x.id === t.id)!;
    expect(mine).toMatchObject({ name: "cli-ci", scopes: ["query:fraud-*", "view:*"], expires: t.expires });
    expect(list.stdout).not.toContain(t.token);
    expect(list.stdout).not.toContain(t.token.slice(4, 20));
    // The admin token of `switchyard up` is listed with scope admin.
    expect(listed.some((x) => (x.scopes as string[]).includes("admin"))).toBe(true);
    const human = await cli(["tokens", "list"], env());
    expect(human.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+SCOPES\s+EXPIRES\s+LAST USED$/);
  });

  it("each route class: the exact status and code with and without the scope", async () => {
    const q = (await create(["--scope", "query:fraud-*"])).token;
    const v = (await create(["--scope", "view:fraud-*"])).token;
    const read = (await create(["--scope", "read"])).token;
    const jobs = (await create(["--scope", "jobs"])).token;
    const me = (await create(["--scope", "manage:endpoints"])).token;
    const body = { inputs: ROWS };

    // Invocations: query.
    const ok = await call(q, "POST", "/serving-endpoints/fraud-eu/invocations", body);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.predictions).toEqual(EXPECTED);
    expectError(
      await call(v, "POST", "/serving-endpoints/fraud-eu/invocations", body),
      403,
      "PERMISSION_DENIED",
    );
    expectError(
      await call(read, "POST", "/serving-endpoints/fraud-eu/invocations", body),
      404,
      "RESOURCE_DOES_NOT_EXIST",
    );
    const oip = await call(q, "POST", "/v2/models/fraud-eu/infer", {
      inputs: [{ name: "input", shape: [2, 2], datatype: "FP32", data: ROWS.flat() }],
    });
    expect(oip.status, oip.text).toBe(200);
    expect(oip.json.outputs[0].data).toEqual(EXPECTED);
    expectError(await call(v, "POST", "/v2/models/fraud-eu/infer", body), 403, "PERMISSION_DENIED");
    expectError(
      await call(q, "POST", "/api/2.0/switchyard/endpoints/fraud-eu/feedback", "7"),
      400,
      "INVALID_PARAMETER_VALUE",
    );
    expectError(
      await call(v, "POST", "/api/2.0/switchyard/endpoints/fraud-eu/feedback", []),
      403,
      "PERMISSION_DENIED",
    );

    // Views: view (query implies it).
    for (const t of [q, v]) {
      expect((await call(t, "GET", "/api/2.0/serving-endpoints/fraud-eu")).status).toBe(200);
      expect((await call(t, "GET", "/v2/models/fraud-eu/ready")).status).toBe(200);
      expect((await call(t, "GET", "/api/2.0/serving-endpoints/fraud-eu/metrics")).status).toBe(200);
    }
    expectError(
      await call(jobs, "GET", "/api/2.0/serving-endpoints/fraud-eu"),
      404,
      "RESOURCE_DOES_NOT_EXIST",
    );

    // Management of one endpoint: manage (manage:endpoints, or a CAN_MANAGE grant).
    expectError(await call(q, "DELETE", "/api/2.0/serving-endpoints/fraud-eu"), 403, "PERMISSION_DENIED");
    expectError(
      await call(q, "PUT", "/api/2.0/serving-endpoints/fraud-eu/config", {}),
      403,
      "PERMISSION_DENIED",
    );
    expectError(
      await call(v, "POST", "/api/2.0/switchyard/endpoints/fraud-eu/rollout/pause"),
      403,
      "PERMISSION_DENIED",
    );
    expectError(
      await call(q, "GET", "/api/2.0/permissions/serving-endpoints/fraud-eu"),
      403,
      "PERMISSION_DENIED",
    );
    // Past authorization, the API itself judges the body.
    expectError(
      await call(me, "PUT", "/api/2.0/serving-endpoints/fraud-eu/config", {}),
      400,
      "INVALID_PARAMETER_VALUE",
    );
    expect((await call(me, "GET", "/api/2.0/permissions/serving-endpoints/fraud-eu")).status).toBe(200);
    // Creating endpoints: manage:endpoints only.
    expectError(await call(q, "POST", "/api/2.0/serving-endpoints", {}), 403, "PERMISSION_DENIED");
    expectError(await call(read, "POST", "/api/2.0/serving-endpoints", {}), 403, "PERMISSION_DENIED");
    expectError(await call(me, "POST", "/api/2.0/serving-endpoints", {}), 400, "INVALID_PARAMETER_VALUE");

    // Batch jobs and streams: jobs; read may list them (the dashboard does).
    expect((await call(jobs, "GET", "/api/2.0/switchyard/batch/jobs")).status).toBe(200);
    expect((await call(read, "GET", "/api/2.0/switchyard/streams")).status).toBe(200);
    expectError(await call(read, "POST", "/api/2.0/switchyard/streams", {}), 403, "PERMISSION_DENIED");
    expectError(await call(q, "GET", "/api/2.0/switchyard/batch/jobs"), 403, "PERMISSION_DENIED");
    expectError(await call(me, "POST", "/api/2.0/switchyard/batch/jobs", {}), 403, "PERMISSION_DENIED");
    expectError(
      await call(jobs, "POST", "/api/2.0/switchyard/batch/jobs", {}),
      400,
      "INVALID_PARAMETER_VALUE",
    );

    // Read APIs and metrics: read.
    for (const p of [
      "/metrics",
      "/api/2.0/switchyard/metrics",
      "/api/2.0/switchyard/models",
      "/api/2.0/switchyard/nodes",
    ]) {
      expect((await call(read, "GET", p)).status, p).toBe(200);
      expectError(await call(q, "GET", p), 403, "PERMISSION_DENIED");
    }
  });

  it("an endpoint the token may not view answers byte for byte like one that does not exist", async () => {
    const v = (await create(["--scope", "view:fraud-*,read"])).token;
    const routes: [string, string, unknown?][] = [
      ["GET", "/api/2.0/serving-endpoints/%s"],
      ["DELETE", "/api/2.0/serving-endpoints/%s"],
      ["PUT", "/api/2.0/serving-endpoints/%s/config", {}],
      ["POST", "/serving-endpoints/%s/invocations", { inputs: ROWS }],
      ["POST", "/serving-endpoints/%s/served-models/tok_sum-1/invocations", { inputs: ROWS }],
      ["GET", "/api/2.0/serving-endpoints/%s/metrics"],
      ["GET", "/api/2.0/switchyard/metrics/endpoints/%s"],
      ["GET", "/api/2.0/switchyard/endpoints/%s/rollout"],
      ["POST", "/api/2.0/switchyard/endpoints/%s/feedback", []],
      ["GET", "/api/2.0/permissions/serving-endpoints/%s"],
      ["PATCH", "/api/2.0/permissions/serving-endpoints/%s", { access_control_list: [] }],
      ["GET", "/v2/models/%s"],
      ["GET", "/v2/models/%s/ready"],
      ["POST", "/v2/models/%s/infer", { inputs: [] }],
    ];
    for (const [method, p, body] of routes) {
      // `churn` exists; `churn` is what the token gets, and what anyone gets for a name that was never created.
      const hiddenReply = await call(v, method, p.replace("%s", "churn"), body);
      const missingReply = await call(v, method, p.replace("%s", "never-made"), body);
      const adminMissing = await call(admin, method, p.replace("%s", "never-made"), body);
      expect(hiddenReply.status, `${method} ${p}`).toBe(404);
      expect(hiddenReply.text.replaceAll("churn", "never-made"), `${method} ${p}`).toBe(missingReply.text);
      // And the same as an admin gets for a missing endpoint (rollout status answers "has no canary" instead).
      if (
        (method === "GET" && !p.includes("rollout")) ||
        p.includes("invocations") ||
        p.includes("feedback")
      ) {
        expect(adminMissing.text, `${method} ${p} (admin)`).toBe(missingReply.text);
      }
    }
  });

  it("lists only the endpoints a token may view", async () => {
    const v = (await create(["--scope", "view:fraud-*,read"])).token;
    const names = (r: HttpReply) => (r.json.endpoints as { name: string }[]).map((e) => e.name).sort();
    expect(names(await call(admin, "GET", "/api/2.0/serving-endpoints"))).toEqual(["churn", "fraud-eu"]);
    expect(names(await call(v, "GET", "/api/2.0/serving-endpoints"))).toEqual(["fraud-eu"]);
    expect(names(await call(v, "GET", "/api/2.0/switchyard/metrics"))).toEqual(["fraud-eu"]);
    const prom = (await call(v, "GET", "/metrics")).text;
    const adminProm = (await call(admin, "GET", "/metrics")).text;
    // Generated traffic above put fraud-eu into the series.
    expect(adminProm).toContain('endpoint="fraud-eu"');
    expect(prom).toContain('endpoint="fraud-eu"');
    expect(prom).not.toContain('endpoint="churn"');
    // A token with no endpoint scope lists none.
    const jobs = (await create(["--scope", "jobs"])).token;
    expect(names(await call(jobs, "GET", "/api/2.0/serving-endpoints"))).toEqual([]);
  });

  it("a read token can load everything the dashboard polls", async () => {
    const read = (await create(["--scope", "read,view:*"])).token;
    // The sources of packages/bridge/src/dashboard/public/app.js, and the rollout panel of a listed endpoint.
    for (const p of [
      "/api/2.0/serving-endpoints",
      "/api/2.0/switchyard/metrics",
      "/api/2.0/switchyard/batch/jobs",
      "/api/2.0/switchyard/streams",
      "/api/2.0/switchyard/nodes",
      "/api/2.0/switchyard/models",
    ]) {
      const r = await call(read, "GET", p);
      expect(r.status, `${p}: ${r.text}`).toBe(200);
    }
    const rollout = await call(read, "GET", "/api/2.0/switchyard/endpoints/fraud-eu/rollout");
    // Past authorization: the endpoint has no canary, which the rollout API itself answers.
    expectError(rollout, 404, "RESOURCE_DOES_NOT_EXIST");
    expect(rollout.json.message).toBe("endpoint 'fraud-eu' has no canary (start one with rollout start)");
  });

  it("an expired token is refused with 401", async () => {
    const t = await create(["--scope", "view:*", "--ttl", "3s"]);
    const expires = Date.parse(t.expires!);
    const first = await call(t.token, "GET", "/api/2.0/serving-endpoints/fraud-eu");
    if (Date.now() < expires - 500) expect(first.status).toBe(200);
    const after = await eventually(async () => {
      const r = await call(t.token, "GET", "/api/2.0/serving-endpoints/fraud-eu");
      return r.status === 200 ? undefined : r;
    }, "token expiry");
    expect(Date.now()).toBeGreaterThanOrEqual(expires);
    expectError(after, 401, "UNAUTHENTICATED");
  });

  it("a revoked token is refused by every bridge within the bound", async () => {
    const t = await create(["--scope", "query:*", "--name", "revokee"]);
    for (const base of [http, second.url]) {
      const r = await call(
        t.token,
        "POST",
        "/serving-endpoints/fraud-eu/invocations",
        { inputs: ROWS },
        base,
      );
      expect(r.status, r.text).toBe(200);
    }
    // The use is recorded as last_used (once a minute at most).
    await eventually(async () => {
      const list = JSON.parse((await cli(["tokens", "list", "--json"], env())).stdout) as {
        id: string;
        last_used: string | null;
      }[];
      return list.find((x) => x.id === t.id)?.last_used ?? undefined;
    }, "last_used");
    const revoked = await cli(["tokens", "revoke", t.id], env());
    expect(revoked.code, revoked.stderr).toBe(0);
    for (const base of [http, second.url]) {
      const r = await eventually(async () => {
        const res = await call(
          t.token,
          "POST",
          "/serving-endpoints/fraud-eu/invocations",
          { inputs: ROWS },
          base,
        );
        return res.status === 200 ? undefined : res;
      }, `revocation seen by ${base}`);
      expectError(r, 401, "UNAUTHENTICATED");
      expect(r.json.message).toBe("The token has been revoked.");
    }
    const again = await cli(["tokens", "revoke", t.id], env());
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`token '${t.id}' does not exist`);
    // Revoked tokens leave `tokens list`.
    const after = JSON.parse((await cli(["tokens", "list", "--json"], env())).stdout) as { id: string }[];
    expect(after.map((x) => x.id)).not.toContain(t.id);
  });

  it("Databricks permissions API: PUT grants CAN_QUERY to a token by name, PATCH merges, PUT replaces", async () => {
    const bot = (await create(["--scope", "read", "--name", "ci-bot"])).token;
    const infer = (base = http) =>
      call(bot, "POST", "/serving-endpoints/fraud-eu/invocations", { inputs: ROWS }, base);
    expectError(await infer(), 404, "RESOURCE_DOES_NOT_EXIST");

    // As python-requests sends `requests.put(url, json=..., headers={"Authorization": f"Bearer {token}"})`.
    const pythonHeaders = {
      "user-agent": "python-requests/2.31.0",
      accept: "*/*",
      "accept-encoding": "gzip, deflate",
      connection: "keep-alive",
    };
    const put = await call(
      admin,
      "PUT",
      "/api/2.0/permissions/serving-endpoints/fraud-eu",
      '{"access_control_list": [{"user_name": "ci-bot", "permission_level": "CAN_QUERY"}]}',
      http,
      pythonHeaders,
    );
    expect(put.status, put.text).toBe(200);
    const id = (await call(admin, "GET", "/api/2.0/serving-endpoints/fraud-eu")).json.id;
    expect(put.json).toEqual({
      object_id: `/serving-endpoints/${id}`,
      object_type: "serving-endpoint",
      access_control_list: [
        { user_name: "ci-bot", all_permissions: [{ permission_level: "CAN_QUERY", inherited: false }] },
      ],
    });
    for (const base of [http, second.url]) {
      const r = await eventually(async () => {
        const res = await infer(base);
        return res.status === 200 ? res : undefined;
      }, `grant seen by ${base}`);
      expect(r.json.predictions).toEqual(EXPECTED);
    }
    // CAN_QUERY is not CAN_MANAGE, and grants are per endpoint.
    expectError(await call(bot, "DELETE", "/api/2.0/serving-endpoints/fraud-eu"), 403, "PERMISSION_DENIED");
    expectError(
      await call(bot, "POST", "/serving-endpoints/churn/invocations", { inputs: ROWS }),
      404,
      "RESOURCE_DOES_NOT_EXIST",
    );

    const patch = await call(admin, "PATCH", "/api/2.0/permissions/serving-endpoints/fraud-eu", {
      access_control_list: [{ service_principal_name: "deployer", permission_level: "CAN_MANAGE" }],
    });
    expect(patch.status, patch.text).toBe(200);
    expect(patch.json.access_control_list).toEqual([
      { user_name: "ci-bot", all_permissions: [{ permission_level: "CAN_QUERY", inherited: false }] },
      {
        service_principal_name: "deployer",
        all_permissions: [{ permission_level: "CAN_MANAGE", inherited: false }],
      },
    ]);
    expect((await call(admin, "GET", "/api/2.0/permissions/serving-endpoints/fraud-eu")).json).toEqual(
      patch.json,
    );
    // Databricks' SDK addresses the endpoint by its id (`serving_endpoint_id`).
    expect((await call(admin, "GET", `/api/2.0/permissions/serving-endpoints/${id}`)).json).toEqual(
      patch.json,
    );
    expect((await infer()).status).toBe(200);

    const levels = await call(
      admin,
      "GET",
      "/api/2.0/permissions/serving-endpoints/fraud-eu/permissionLevels",
    );
    expect(
      levels.json.permission_levels.map((l: { permission_level: string }) => l.permission_level),
    ).toEqual(["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"]);

    // Bad bodies change nothing and name the field.
    const bad = await call(admin, "PATCH", "/api/2.0/permissions/serving-endpoints/fraud-eu", {
      access_control_list: [{ user_name: "ci-bot", permission_level: "CAN_EVERYTHING" }],
    });
    expectError(bad, 400, "INVALID_PARAMETER_VALUE");
    expect(bad.json.message).toBe(
      'access_control_list[0].permission_level: expected one of CAN_VIEW, CAN_QUERY, CAN_MANAGE, got "CAN_EVERYTHING"',
    );
    const noList = await call(admin, "PUT", "/api/2.0/permissions/serving-endpoints/fraud-eu", { acl: [] });
    expectError(noList, 400, "INVALID_PARAMETER_VALUE");
    expect(noList.json.message).toContain("access_control_list");
    expect((await call(admin, "GET", "/api/2.0/permissions/serving-endpoints/fraud-eu")).json).toEqual(
      patch.json,
    );

    // PUT replaces: ci-bot is gone, and fraud-eu is hidden from it again.
    const replaced = await call(admin, "PUT", "/api/2.0/permissions/serving-endpoints/fraud-eu", {
      access_control_list: [{ service_principal_name: "deployer", permission_level: "CAN_MANAGE" }],
    });
    expect(replaced.json.access_control_list).toHaveLength(1);
    for (const base of [http, second.url]) {
      const r = await eventually(async () => {
        const res = await infer(base);
        return res.status === 200 ? undefined : res;
      }, `grant removal seen by ${base}`);
      expectError(r, 404, "RESOURCE_DOES_NOT_EXIST");
    }
    expectError(
      await call(admin, "GET", "/api/2.0/permissions/serving-endpoints/never-made"),
      404,
      "RESOURCE_DOES_NOT_EXIST",
    );
  });

  it("deleting an endpoint deletes its grants, through the bridge or the CLI", async () => {
    const kv = await new Kvm(nc).open(clusterNames(up.info().cluster).buckets.cluster);
    for (const [name, how] of [
      ["tmp-http", "http"],
      ["tmp-cli", "cli"],
    ] as const) {
      const made = await call(admin, "POST", "/api/2.0/serving-endpoints", {
        name,
        config: {
          served_entities: [{ entity_name: "tok_sum", entity_version: "1", workload_size: "Small" }],
        },
      });
      expect(made.status, made.text).toBe(200);
      const put = await call(admin, "PUT", `/api/2.0/permissions/serving-endpoints/${name}`, {
        access_control_list: [{ group_name: "team", permission_level: "CAN_VIEW" }],
      });
      expect(put.status, put.text).toBe(200);
      expect((await kv.get(`grants.${name}`))?.operation).toBe("PUT");
      if (how === "http") {
        expect((await call(admin, "DELETE", `/api/2.0/serving-endpoints/${name}`)).status).toBe(200);
      } else {
        const r = await cli(["endpoints", "delete", name], env());
        expect(r.code, r.stderr).toBe(0);
      }
      await eventually(
        async () => ((await kv.get(`grants.${name}`))?.operation === "PUT" ? undefined : true),
        `grants.${name} deleted`,
      );
    }
  });
});
