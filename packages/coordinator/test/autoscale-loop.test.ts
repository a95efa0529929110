// The autoscaler's loop against a real nats-server: a step slower than the interval does not queue the ticks
// that fire meanwhile (they would run back to back afterwards, and a router's wake would wait behind them).
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { SCALE_DEFAULTS } from "@switchyard/autoscaler";
import { Autoscale } from "@switchyard/coordinator";
import { connectNats } from "@switchyard/nats";
import { clusterNames } from "@switchyard/protocol";
import { eventually } from "@switchyard/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { openStores } from "../src/state.js";

let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectNats({ servers: inject("natsUrl"), name: "autoscale-loop-test" });
});
afterAll(async () => {
  await nc?.close();
});

describe("autoscale loop", () => {
  it("skips ticks while a step is still running", async () => {
    const names = clusterNames(`as${randomBytes(4).toString("hex")}`);
    const stores = await openStores(nc, names);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let steps = 0;
    const autoscale = new Autoscale({
      nc,
      names,
      stores,
      log: pino({ level: "silent" }),
      settings: SCALE_DEFAULTS,
      intervalMs: 1_000,
      windowMs: 3_000,
      isLeader: () => true,
      // The end of every step: the first one stays here until released.
      streams: {
        running: async () => {
          steps++;
          await gate;
          return [];
        },
        lag: async () => 0,
      },
      onChange: () => {},
    });
    // The loop's ticks, fired by hand.
    const ticks: Array<() => void> = [];
    const spy = vi.spyOn(globalThis, "setInterval").mockImplementation(((fn: () => void) => {
      ticks.push(fn);
      return setTimeout(() => {}, 0);
    }) as unknown as typeof setInterval);
    try {
      autoscale.start();
    } finally {
      spy.mockRestore();
    }
    expect(ticks).toHaveLength(1);
    const tick = ticks[0]!;
    tick();
    await eventually(() => (steps === 1 ? true : undefined), "the first step to reach the stream jobs");
    for (let i = 0; i < 50; i++) tick();
    release();
    await autoscale.stop();
    expect(steps).toBe(1);
  });
});
