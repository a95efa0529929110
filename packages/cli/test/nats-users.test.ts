// What an external NATS user's `--endpoints` patterns grant, as the authorization file will say it.
import { clusterNames } from "@switchyard/protocol";
import { describe, expect, it } from "vitest";
import { clientPermissions, expandEndpoints, hasGlob, parseEndpointList } from "../src/nats-users.js";

const names = clusterNames("sy");

describe("NATS user endpoint patterns", () => {
  it("parses names, globs and '*', refusing anything else with --endpoints named", () => {
    expect(parseEndpointList("fraud, fraud-*,fraud")).toEqual(["fraud", "fraud-*"]);
    expect(parseEndpointList("*")).toEqual(["*"]);
    expect(() => parseEndpointList("a,*")).toThrow("--endpoints: '*' already means every endpoint");
    expect(() => parseEndpointList(" , ")).toThrow("--endpoints: expected a comma-separated list");
    for (const bad of ["fraud.*", "fraud->", "a b", "x".repeat(64)]) {
      expect(() => parseEndpointList(bad)).toThrow(`--endpoints: '${bad}' is not an endpoint name or glob`);
    }
  });

  it("expands globs to the existing endpoints they match, keeping plain names", () => {
    const existing = ["fraud-eu", "fraud-us", "fraud", "churn", "antifraud-x"];
    expect(expandEndpoints(["fraud-*"], existing)).toEqual(["fraud-eu", "fraud-us"]);
    expect(expandEndpoints(["*-eu", "churn", "later"], existing)).toEqual(["churn", "fraud-eu", "later"]);
    expect(expandEndpoints(["f*d"], existing)).toEqual(["fraud"]);
    expect(hasGlob(["fraud-*"])).toBe(true);
    expect(hasGlob(["*"])).toBe(false);
    expect(hasGlob(["fraud"])).toBe(false);
  });

  it("renders the invoke subjects a user may publish to, and nothing when its glob matches nothing", () => {
    expect(clientPermissions(names, "app", ["gl-*"], ["gl-a", "other"])).toEqual({
      publish: { allow: ["sy.invoke.gl-a"] },
      subscribe: { allow: ["_INBOX_app.>"] },
    });
    expect(clientPermissions(names, "app", ["gl-*"], ["other"])).toEqual({
      publish: { deny: [">"] },
      subscribe: { allow: ["_INBOX_app.>"] },
    });
    expect(clientPermissions(names, "app", ["*"], []).publish).toEqual({ allow: ["sy.invoke.*"] });
  });
});
