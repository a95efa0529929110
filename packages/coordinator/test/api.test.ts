// The management API against a real nats-server (no node agents: nothing becomes ready): Databricks
// shapes for create/get/list/delete, every validation problem at once, 409 while an update runs, and
// compare-and-set between concurrent updates; batch schedules' create/get/list/delete and their errors.
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { Coordinator } from "@switchyard/coordinator";
import { registerModel } from "@switchyard/ingest";
import { connectNats } from "@switchyard/nats";
import { type ApiOp, clusterNames, H } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { buildLinear, eventually, writeTempModel } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const log = pino({ level: "silent" });
let nc: NatsConnection;
let coordinator: Coordinator;
let cluster: string;
let registry: Registry;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "api-test" });
  cluster = `t${randomBytes(5).toString("hex")}`;
  registry = await Registry.open(nc, { cluster });
  const model = writeTempModel(buildLinear({ inputs: 2, weights: [1, 2], bias: [0.5] }));
  await registerModel(registry, "fraud", model, { alias: "champion" });
  await registerModel(registry, "fraud", model);
  coordinator = new Coordinator({ nc, cluster, logger: log });
  await coordinator.start();
});
afterAll(async () => {
  await coordinator?.stop();
  await nc?.close();
});

async function call(op: ApiOp, body: unknown) {
  const m = await nc.request(clusterNames(cluster).subjects.api(op), JSON.stringify(body), {
    timeout: 10_000,
  });
  return { code: m.headers?.get(H.errorCode) || undefined, body: m.json<Record<string, unknown>>() };
}

const createBody = (name: string) => ({
  name,
  config: {
    served_entities: [
      {
        name: "champ",
        entity_name: "fraud",
        entity_version: "@champion",
        workload_size: "Small",
        scale_to_zero_enabled: false,
      },
    ],
  },
  tags: [{ key: "team", value: "risk" }],
});

describe("management API", () => {
  it("creates, gets, lists and deletes in Databricks' shapes", async () => {
    const created = await call("endpoints.create", createBody("ep-a"));
    expect(created.code).toBeUndefined();
    expect(created.body).toMatchObject({
      name: "ep-a",
      creator: "switchyard",
      state: { ready: "NOT_READY", config_update: "IN_PROGRESS" },
      pending_config: {
        served_entities: [
          {
            name: "champ",
            entity_name: "fraud",
            entity_version: "1",
            entity_alias: "champion",
            workload_size: "Small",
            scale_to_zero_enabled: false,
            state: { deployment: "DEPLOYMENT_CREATING", deployment_state_message: "0/0 replicas ready" },
          },
        ],
        traffic_config: { routes: [{ served_model_name: "champ", traffic_percentage: 100 }] },
        config_version: 1,
      },
      tags: [{ key: "team", value: "risk" }],
    });
    expect(created.body.config).toBeUndefined();
    expect(typeof created.body.id).toBe("string");

    const got = await call("endpoints.get", { name: "ep-a" });
    expect(got.body).toEqual(created.body);
    const listed = await call("endpoints.list", {});
    expect((listed.body.endpoints as Array<{ name: string }>).map((e) => e.name)).toContain("ep-a");

    const again = await call("endpoints.create", createBody("ep-a"));
    expect(again).toMatchObject({
      code: "RESOURCE_ALREADY_EXISTS",
      body: { error_code: "RESOURCE_ALREADY_EXISTS" },
    });

    expect(await call("endpoints.delete", { name: "ep-a" })).toEqual({ code: undefined, body: {} });
    const gone = await call("endpoints.get", { name: "ep-a" });
    expect(gone).toEqual({
      code: "RESOURCE_DOES_NOT_EXIST",
      body: { error_code: "RESOURCE_DOES_NOT_EXIST", message: "endpoint 'ep-a' does not exist" },
    });
    expect((await call("endpoints.delete", { name: "ep-a" })).code).toBe("RESOURCE_DOES_NOT_EXIST");
    expect((await call("endpoints.update", { name: "nope", config: createBody("x").config })).code).toBe(
      "RESOURCE_DOES_NOT_EXIST",
    );
  });

  it("lists every problem of a config at once, each naming its field", async () => {
    const res = await call("endpoints.create", {
      name: "ep-bad",
      config: {
        served_entities: [
          { name: "a", entity_name: "fraud", entity_version: "1" },
          { name: "a", entity_name: "fraud", entity_version: "9" },
          { name: "b", entity_name: "nosuch", entity_version: "1" },
          { name: "c", entity_name: "fraud", entity_version: "@nosuch" },
        ],
        traffic_config: {
          routes: [
            { served_model_name: "a", traffic_percentage: 50 },
            { served_model_name: "b", traffic_percentage: 30 },
            { served_model_name: "c", traffic_percentage: 10 },
          ],
        },
      },
    });
    expect(res.code).toBe("INVALID_PARAMETER_VALUE");
    const msg = String(res.body.message);
    expect(msg).toMatch(/^invalid endpoint config \(5 problems\)/);
    expect(msg).toContain("config.traffic_config.routes: traffic percentages must sum to 100, got 90");
    expect(msg).toContain("config.served_entities: served model name 'a' is used twice");
    expect(msg).toContain(
      "config.served_entities[1].entity_version: version 9 of model 'fraud' does not exist",
    );
    expect(msg).toContain("config.served_entities[2].entity_name: model 'nosuch' does not exist");
    expect(msg).toContain(
      "config.served_entities[3].entity_version: alias 'nosuch' of model 'fraud' does not exist",
    );
    expect((await call("endpoints.get", { name: "ep-bad" })).code).toBe("RESOURCE_DOES_NOT_EXIST");
  });

  it("refuses an update while another is in progress (409 RESOURCE_CONFLICT), and a bad update changes nothing", async () => {
    await call("endpoints.create", createBody("ep-b"));
    const res = await call("endpoints.update", {
      name: "ep-b",
      config: { served_entities: [{ entity_name: "fraud", entity_version: "2" }] },
    });
    expect(res.code).toBe("RESOURCE_CONFLICT");
    expect(String(res.body.message)).toContain("update in progress");
    const bad = await call("endpoints.update", {
      name: "ep-b",
      config: { served_entities: [{ entity_name: "fraud", entity_version: "7" }] },
    });
    expect(bad.code).toBe("INVALID_PARAMETER_VALUE");
    const got = await call("endpoints.get", { name: "ep-b" });
    expect(got.body.pending_config).toMatchObject({ config_version: 1 });
  });

  it("lets exactly one of two concurrent updates win (compare-and-set on the KV revision)", async () => {
    // An endpoint whose first rollout failed is NOT_UPDATING-free: make one with no nodes and a short timeout.
    const c2 = `t${randomBytes(5).toString("hex")}`;
    const reg2 = await Registry.open(nc, { cluster: c2 });
    await registerModel(
      reg2,
      "fraud",
      writeTempModel(buildLinear({ inputs: 2, weights: [1, 2], bias: [0] })),
    );
    const coord = new Coordinator({ nc, cluster: c2, logger: log, rolloutTimeoutMs: 500, tickMs: 200 });
    await coord.start();
    try {
      const api = async (op: ApiOp, body: unknown) => {
        const m = await nc.request(clusterNames(c2).subjects.api(op), JSON.stringify(body), {
          timeout: 10_000,
        });
        return { code: m.headers?.get(H.errorCode) || undefined, body: m.json<Record<string, unknown>>() };
      };
      await api("endpoints.create", {
        name: "ep-c",
        config: { served_entities: [{ entity_name: "fraud", entity_version: "1" }] },
      });
      const failed = await until(async () => {
        const g = await api("endpoints.get", { name: "ep-c" });
        return (g.body.state as { config_update: string }).config_update === "UPDATE_FAILED" ? g : undefined;
      });
      expect(failed.body.state).toMatchObject({ ready: "NOT_READY", config_update: "UPDATE_FAILED" });
      expect(String((failed.body.state as { message: string }).message)).toMatch(/not ready within 1 s/);

      const upd = (v: string) =>
        api("endpoints.update", {
          name: "ep-c",
          config: { served_entities: [{ entity_name: "fraud", entity_version: v }] },
        });
      const results = await Promise.all([upd("1"), upd("1"), upd("1")]);
      expect(results.filter((r) => r.code === undefined)).toHaveLength(1);
      expect(results.filter((r) => r.code === "RESOURCE_CONFLICT")).toHaveLength(2);
    } finally {
      await coord.stop();
    }
  });
});

describe("schedules API", () => {
  const job = { model: "models:/fraud@champion", input: "in/{date}.csv", output: "scored/{date}/" };

  it("creates, gets, lists and deletes schedules", async () => {
    const before = Date.now();
    const created = await call("schedules.create", {
      name: "nightly",
      cron: "0 2 * * *",
      tz: "Europe/Madrid",
      job,
    });
    expect(created.code).toBeUndefined();
    const { created_at, next_tick, ...rest } = created.body as { created_at: number; next_tick: number };
    expect(rest).toEqual({ name: "nightly", cron: "0 2 * * *", tz: "Europe/Madrid", job, history: [] });
    expect(created_at).toBeGreaterThanOrEqual(before);
    expect(next_tick).toBe(nextWallClockHour(created_at, "Europe/Madrid", "02:00"));

    const utc = await call("schedules.create", { name: "hourly", cron: "0 * * * *", job });
    expect(utc.body).toMatchObject({ name: "hourly", tz: "UTC" });

    const got = await call("schedules.get", { name: "nightly" });
    expect(got).toEqual({ code: undefined, body: created.body });
    const listed = await call("schedules.list", {});
    expect((listed.body.schedules as Array<{ name: string }>).map((s) => s.name)).toEqual([
      "hourly",
      "nightly",
    ]);

    expect(await call("schedules.create", { name: "nightly", cron: "0 3 * * *", job })).toEqual({
      code: "RESOURCE_ALREADY_EXISTS",
      body: { error_code: "RESOURCE_ALREADY_EXISTS", message: "schedule 'nightly' already exists" },
    });
    expect((await call("schedules.get", { name: "nightly" })).body.cron).toBe("0 2 * * *");

    expect(await call("schedules.delete", { name: "nightly" })).toEqual({ code: undefined, body: {} });
    const gone = { error_code: "RESOURCE_DOES_NOT_EXIST", message: "schedule 'nightly' does not exist" };
    expect(await call("schedules.get", { name: "nightly" })).toEqual({
      code: "RESOURCE_DOES_NOT_EXIST",
      body: gone,
    });
    expect(await call("schedules.delete", { name: "nightly" })).toEqual({
      code: "RESOURCE_DOES_NOT_EXIST",
      body: gone,
    });
    const after = await call("schedules.list", {});
    expect((after.body.schedules as Array<{ name: string }>).map((s) => s.name)).toEqual(["hourly"]);
    // A deleted name can be used again.
    expect(
      (await call("schedules.create", { name: "nightly", cron: "0 3 * * *", job })).code,
    ).toBeUndefined();
  });

  it("refuses a bad cron, zone or job, naming each field, and stores nothing", async () => {
    const res = await call("schedules.create", {
      name: "bad",
      cron: "0 25 * * *",
      tz: "Europe/Atlantis",
      job: { ...job, resume: "0123abcd" },
    });
    expect(res).toEqual({
      code: "INVALID_PARAMETER_VALUE",
      body: {
        error_code: "INVALID_PARAMETER_VALUE",
        message:
          "invalid schedule (3 problems): " +
          "tz 'Europe/Atlantis' is not an IANA time zone (e.g. 'UTC', 'Europe/Madrid'); " +
          "cron '0 25 * * *' is invalid: Invalid value for hour: 25; " +
          "job.resume: a schedule cannot resume a job; each tick submits a new one",
      },
    });
    expect((await call("schedules.get", { name: "bad" })).code).toBe("RESOURCE_DOES_NOT_EXIST");
    expect((await call("schedules.get", { name: "a.b" })).body).toEqual({
      error_code: "INVALID_PARAMETER_VALUE",
      message: "name 'a.b' is invalid: expected 1-63 characters of letters, digits, '_' or '-'",
    });
  });
});

/** The first whole hour after `after` that reads `hhmm` on a clock in `tz` (found hour by hour, by Intl). */
function nextWallClockHour(after: number, tz: string, hhmm: string): number {
  const clock = new Intl.DateTimeFormat("en-GB", {
    timeZone: tz,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  for (let t = Math.floor(after / 3_600_000) * 3_600_000 + 3_600_000; ; t += 3_600_000) {
    if (clock.format(t) === hhmm) return t;
  }
}

const until = <T>(f: () => Promise<T | undefined>, ms = 20_000) => eventually(f, "the condition", ms);
