// Shadow config rules without a cluster: what normalisation accepts and refuses, naming the field, and what
// routers are told.
import { describe, expect, it } from "vitest";
import { normalizeEndpointConfig } from "../src/endpoint.js";
import { routesShadowOf, sameShadow } from "../src/shadow.js";

const base = {
  served_entities: [
    { name: "a", entity_name: "m", entity_version: "1" },
    { name: "b", entity_name: "m", entity_version: "2" },
  ],
};
const withShadow = (shadow: unknown, routes = [{ served_model_name: "a", traffic_percentage: 100 }]) =>
  normalizeEndpointConfig({ ...base, traffic_config: { routes }, shadow_config: shadow });

describe("shadow_config", () => {
  it("accepts a shadow that takes no traffic (a 0 % route or none), fractions allowed, default bound filled", () => {
    expect(
      withShadow({ routes: [{ served_model_name: "b", mirror_percentage: 2.5 }] }).config?.shadow_config,
    ).toEqual({ routes: [{ served_model_name: "b", mirror_percentage: 2.5 }], max_in_flight: 64 });
    const zero = withShadow(
      { routes: [{ served_model_name: "b", mirror_percentage: 100 }], max_in_flight: 3 },
      [
        { served_model_name: "a", traffic_percentage: 100 },
        { served_model_name: "b", traffic_percentage: 0 },
      ],
    );
    expect(zero.problems).toEqual([]);
    expect(zero.config?.shadow_config?.max_in_flight).toBe(3);
  });

  it("names the field of every problem", () => {
    const fields = (shadow: unknown, routes?: { served_model_name: string; traffic_percentage: number }[]) =>
      withShadow(shadow, routes).problems.map((p) => `${p.field}: ${p.message}`);
    expect(fields({ routes: [{ served_model_name: "z", mirror_percentage: 1 }] })).toEqual([
      "config.shadow_config.routes[0].served_model_name: 'z' is not the name of a served model of this config",
    ]);
    expect(
      fields({ routes: [{ served_model_name: "b", mirror_percentage: 1 }] }, [
        { served_model_name: "a", traffic_percentage: 50 },
        { served_model_name: "b", traffic_percentage: 50 },
      ]),
    ).toEqual([
      "config.shadow_config.routes[0].served_model_name: 'b' takes 50% of the traffic; a shadow takes none " +
        "(give it traffic_percentage 0)",
    ]);
    expect(
      fields({
        routes: [
          { served_model_name: "b", mirror_percentage: 1 },
          { served_model_name: "b", mirror_percentage: 2 },
        ],
      }),
    ).toEqual(["config.shadow_config.routes[1].served_model_name: 'b' is shadowed twice"]);
    expect(fields({ routes: [{ served_model_name: "b", mirror_percentage: 150 }] })).toEqual([
      "config.shadow_config.routes.0.mirror_percentage: expected a number from 0 to 100",
    ]);
    expect(
      fields({ routes: [{ served_model_name: "b", mirror_percentage: 1 }], max_in_flight: 1.5 }),
    ).toEqual(["config.shadow_config.max_in_flight: expected a positive integer"]);
  });

  it("tells routers only of shadows that mirror something", () => {
    const config = { routes: [{ served_model_name: "b", mirror_percentage: 0 }], max_in_flight: 64 };
    expect(routesShadowOf(undefined)).toBeUndefined();
    expect(routesShadowOf(config)).toBeUndefined();
    const on = routesShadowOf({
      routes: [...config.routes, { served_model_name: "c", mirror_percentage: 5 }],
      max_in_flight: 4,
    });
    expect(on).toEqual({ routes: [{ served_model_name: "c", mirror_percentage: 5 }], max_in_flight: 4 });
    expect(
      sameShadow(on, { routes: [{ served_model_name: "c", mirror_percentage: 5 }], max_in_flight: 4 }),
    ).toBe(true);
    expect(sameShadow(on, { ...on!, max_in_flight: 5 })).toBe(false);
    expect(sameShadow(undefined, undefined)).toBe(true);
  });
});
