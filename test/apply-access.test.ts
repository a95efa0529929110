// `switchyard apply` for access: the `tokens` and `users` sections of cluster.config.ts, applied with the built
// CLI to a running `switchyard up` (through its data dir, as `switchyard users` works). Asserts what a user sees:
// the printed token or password works with exactly what the file grants, a second apply changes nothing and
// keeps the secrets working, an update changes the grant of the same secret, --prune removes only what apply made.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { connect, type NatsConnection, PermissionViolationError } from "@nats-io/transport-node";
import { splitNatsUrl } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";
import { buildLinear, linearPredict } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, eventually, root, startUpWithModel, type Up } from "./helpers/up.js";

const MODEL = { inputs: 2, weights: [0.5, -1.5], bias: [0.25] } as const;
const ROWS = [
  [1, 2],
  [-0.5, 3.25],
];
const names = clusterNames("sy");

type Entry = {
  kind: string;
  name: string;
  action: string;
  diff?: string[];
  token?: string;
  password?: string;
};

let up: Up;
let api: ReturnType<typeof clusterClient>;
let dir: string;
const open: NatsConnection[] = [];
const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });

function writeConfig(body: Record<string, unknown>): void {
  writeFileSync(
    path.join(dir, "cluster.config.ts"),
    `import { defineConfig } from "@switchyard/cli";\n\nexport default defineConfig(${JSON.stringify(body, null, 2)});\n`,
  );
}

async function apply(args: string[] = []): Promise<Entry[]> {
  const r = await cli(["apply", "--file", path.join(dir, "cluster.config.ts"), "--json", ...args], env());
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { plan: Entry[] }).plan;
}

const bare = (plan: Entry[]) => plan.map(({ kind, name, action }) => ({ kind, name, action }));

/** Invokes with a given bearer token; the status is what matters. */
async function invokeWith(token: string, endpoint: string): Promise<number> {
  const res = await fetch(`${api.http}/serving-endpoints/${endpoint}/invocations`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ inputs: ROWS }),
  });
  await res.text();
  return res.status;
}

const invokeBody = JSON.stringify({ dataframe_split: { columns: ["a", "b"], data: ROWS } });

async function natsClient(user: string, pass: string): Promise<NatsConnection> {
  const nc = await connect({
    servers: splitNatsUrl(up.info().natsUrl).server,
    user,
    pass,
    maxReconnectAttempts: 0,
    inboxPrefix: `_INBOX_${user}`,
  });
  open.push(nc);
  return nc;
}

async function natsPredictions(nc: NatsConnection, endpoint: string): Promise<number[]> {
  const reply = await nc.request(names.subjects.invoke(endpoint), invokeBody, { timeout: 30_000 });
  return reply.json<{ predictions: number[] }>().predictions.flat();
}

/** The server's own refusal of a publish: nats.js wraps the violation in the request's error. */
async function publishRefused(nc: NatsConnection, endpoint: string): Promise<PermissionViolationError> {
  const err = await nc.request(names.subjects.invoke(endpoint), invokeBody, { timeout: 10_000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const v = err instanceof PermissionViolationError ? err : (err as Error | undefined)?.cause;
  expect(v).toBeInstanceOf(PermissionViolationError);
  return v as PermissionViolationError;
}

function expectReference(got: number[]) {
  const want = linearPredict(MODEL, ROWS).flat();
  expect(got).toHaveLength(want.length);
  for (const [i, g] of got.entries()) expect(Math.abs(g - want[i]!)).toBeLessThan(1e-5);
}

beforeAll(async () => {
  up = await startUpWithModel("catalog.schema.lr", buildLinear(MODEL), "champion");
  api = clusterClient(up);
  for (const name of ["fraud-a", "churn"]) {
    const r = await api.call("POST", "/api/2.0/serving-endpoints", {
      name,
      config: {
        served_entities: [
          { entity_name: "catalog.schema.lr", entity_version: "@champion", workload_size: "Small" },
        ],
      },
    });
    expect(r.status, r.text).toBe(200);
  }
  await api.waitReady("fraud-a");
  await api.waitReady("churn");
  dir = path.join(root, ".cache", `apply-access-${process.pid}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
}, 180_000);

afterAll(async () => {
  await Promise.all(open.map((nc) => nc.close().catch(() => {})));
  await up?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("switchyard apply: tokens", () => {
  let ci = "";

  // `view:*` so the forbidden call is 403: without view an endpoint answers as if it did not exist (404).
  it("creates a token whose printed secret has exactly its scopes", async () => {
    writeConfig({ tokens: [{ name: "ci", scopes: ["query:fraud-*", "view:*"], ttl: "30d" }] });
    const plan = await apply();
    expect(bare(plan)).toEqual([{ kind: "token", name: "ci", action: "create" }]);
    expect(Object.keys(plan[0]!).sort()).toEqual(["action", "kind", "name", "token"]);
    ci = plan[0]!.token!;
    expect(ci).toMatch(/^syt_[A-Za-z0-9_-]{43}$/);
    expect(await invokeWith(ci, "fraud-a")).toBe(200);
    expect(await invokeWith(ci, "churn")).toBe(403);
  });

  it("applied again: unchanged, no secret printed, and the same token still works", async () => {
    expect(await apply()).toEqual([{ kind: "token", name: "ci", action: "unchanged" }]);
    expect(await invokeWith(ci, "fraud-a")).toBe(200);
    const list = await cli(["tokens", "list", "--json"], env());
    expect(list.code, list.stderr).toBe(0);
    expect(
      (JSON.parse(list.stdout) as { name: string | null }[]).filter((t) => t.name === "ci"),
    ).toHaveLength(1);
  });

  it("changed scopes: one update with its diff, and the SAME token gets the new scopes", async () => {
    writeConfig({ tokens: [{ name: "ci", scopes: ["query:churn", "view:*"] }] });
    expect(await apply()).toEqual([
      {
        kind: "token",
        name: "ci",
        action: "update",
        diff: ['scopes[0]: "query:fraud-*" → "query:churn"'],
      },
    ]);
    await eventually(
      async () => ((await invokeWith(ci, "churn")) === 200 ? true : undefined),
      "the updated token reaches churn",
      30_000,
    );
    expect(await invokeWith(ci, "fraud-a")).toBe(403);
  });

  it("--prune revokes an apply-created token and leaves the admin and hand-made tokens working", async () => {
    const hand = await cli(["tokens", "create", "--scope", "read", "--name", "hand", "--json"], env());
    expect(hand.code, hand.stderr).toBe(0);
    const handToken = (JSON.parse(hand.stdout) as { token: string }).token;
    writeConfig({ tokens: [] });
    expect(bare(await apply(["--dry-run", "--prune"]))).toEqual([
      { kind: "token", name: "ci", action: "delete" },
    ]);
    expect(await invokeWith(ci, "churn")).toBe(200);
    expect(bare(await apply(["--prune"]))).toEqual([{ kind: "token", name: "ci", action: "delete" }]);
    await eventually(
      async () => ((await invokeWith(ci, "churn")) === 401 ? true : undefined),
      "the pruned token is refused",
      30_000,
    );
    expect(await invokeWith(api.token, "churn")).toBe(200);
    const read = await fetch(`${api.http}/api/2.0/serving-endpoints`, {
      headers: { authorization: `Bearer ${handToken}` },
    });
    expect(read.status).toBe(200);
    expect(await apply(["--prune"])).toEqual([]);
  });

  it("names every bad token entry and changes nothing", async () => {
    writeConfig({
      tokens: [
        { name: "dup", scopes: ["read"] },
        { name: "dup", scopes: ["fly:away"], ttl: "soon" },
      ],
    });
    const r = await cli(["apply", "--file", path.join(dir, "cluster.config.ts")], env());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("nothing was changed");
    expect(r.stderr).toContain("tokens[1].name: 'dup' is declared twice");
    expect(r.stderr).toContain("tokens[1].scopes: 'fly:away' is not a scope");
    expect(r.stderr).toContain("tokens[1].ttl: expected a duration");
    const list = await cli(["tokens", "list", "--json"], env());
    expect((JSON.parse(list.stdout) as { name: string | null }[]).some((t) => t.name === "dup")).toBe(false);
  });
});

describe("switchyard apply: printed plan", () => {
  it("prints a created token's secret once, after the plan, and it works", async () => {
    writeConfig({ tokens: [{ name: "human", scopes: ["query:churn", "view:*"] }] });
    const r = await cli(["apply", "--file", path.join(dir, "cluster.config.ts")], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\+ create +token +human$/m);
    const secret = /^token human: (syt_[A-Za-z0-9_-]{43})$/m.exec(r.stdout)?.[1];
    expect(secret).toBeDefined();
    expect(r.stdout).toContain("shown once");
    expect(await invokeWith(secret!, "churn")).toBe(200);
    const again = await cli(["apply", "--file", path.join(dir, "cluster.config.ts")], env());
    expect(again.stdout).not.toContain("syt_");
  });
});

describe("switchyard apply: NATS users", () => {
  let password = "";

  it("creates a user that may invoke its endpoint over NATS and is refused another", async () => {
    writeConfig({ users: [{ name: "svc-a", endpoints: ["fraud-a"] }] });
    const plan = await apply();
    expect(bare(plan)).toEqual([{ kind: "user", name: "svc-a", action: "create" }]);
    expect(Object.keys(plan[0]!).sort()).toEqual(["action", "kind", "name", "password"]);
    password = plan[0]!.password!;
    const nc = await natsClient("svc-a", password);
    expectReference(await natsPredictions(nc, "fraud-a"));
    const refused = await publishRefused(nc, "churn");
    expect(refused.subject).toBe(names.subjects.invoke("churn"));
  });

  it("applied again: unchanged, and the password still connects", async () => {
    expect(await apply()).toEqual([{ kind: "user", name: "svc-a", action: "unchanged" }]);
    const nc = await natsClient("svc-a", password);
    expectReference(await natsPredictions(nc, "fraud-a"));
  });

  it("changed endpoints: one update; the same password now reaches the new endpoint", async () => {
    writeConfig({ users: [{ name: "svc-a", endpoints: ["fraud-a", "churn"] }] });
    expect(await apply()).toEqual([
      {
        kind: "user",
        name: "svc-a",
        action: "update",
        diff: ['endpoints: ["fraud-a"] → ["churn","fraud-a"]'],
      },
    ]);
    const nc = await natsClient("svc-a", password);
    expectReference(await natsPredictions(nc, "churn"));
    expect(await apply()).toEqual([{ kind: "user", name: "svc-a", action: "unchanged" }]);
  });

  it("--prune deletes only users apply created", async () => {
    const hand = await cli(["users", "create", "--endpoints", "churn", "--name", "hand", "--json"], env());
    expect(hand.code, hand.stderr).toBe(0);
    writeConfig({ users: [] });
    expect(bare(await apply(["--prune"]))).toEqual([{ kind: "user", name: "svc-a", action: "delete" }]);
    const list = await cli(["users", "list", "--json"], env());
    expect((JSON.parse(list.stdout) as { user: string }[]).map((u) => u.user)).toEqual(["hand"]);
    await expect(natsClient("svc-a", password)).rejects.toThrow();
  });

  it("a users section against a cluster that is not local (--nats) is a problem and changes nothing", async () => {
    writeConfig({
      tokens: [{ name: "remote", scopes: ["read"] }],
      users: [{ name: "svc-b", endpoints: ["churn"] }],
    });
    const r = await cli([
      "apply",
      "--file",
      path.join(dir, "cluster.config.ts"),
      "--nats",
      up.info().natsUrl,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("nothing was changed");
    expect(r.stderr).toContain(
      "users: switchyard users manages the NATS users of a cluster started by `switchyard up`",
    );
    const list = await cli(["tokens", "list", "--json"], env());
    expect((JSON.parse(list.stdout) as { name: string | null }[]).some((t) => t.name === "remote")).toBe(
      false,
    );
  });
});
