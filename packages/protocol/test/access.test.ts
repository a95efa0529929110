import { describe, expect, it } from "vitest";
import { allows, endpointLevel, globMatches, parseScopes, SwitchyardError } from "../src/mod.js";

describe("parseScopes", () => {
  it("reads a comma-separated list, trimmed and deduplicated", () => {
    expect(parseScopes("query:fraud-*, view:*,read,read")).toEqual(["query:fraud-*", "view:*", "read"]);
    expect(parseScopes(["admin"])).toEqual(["admin"]);
  });

  it("names every bad scope and the expected forms", () => {
    let err: unknown;
    try {
      parseScopes("query:fraud,writ,query:,view:../etc");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SwitchyardError);
    expect((err as SwitchyardError).code).toBe("INVALID_PARAMETER_VALUE");
    expect((err as SwitchyardError).message).toBe(
      "scope: 'writ', 'query:', 'view:../etc' are not scopes; expected a comma-separated list of " +
        "query:<endpoint glob>, view:<endpoint glob>, manage:endpoints, manage:models, jobs, read, admin " +
        "(globs use '*', e.g. query:fraud-*)",
    );
  });

  it("refuses an empty list", () => {
    expect(() => parseScopes("")).toThrow(/no scope given/);
    expect(() => parseScopes([])).toThrow(/no scope given/);
  });
});

describe("globMatches", () => {
  it.each([
    ["*", "anything", true],
    ["fraud-*", "fraud-eu", true],
    ["fraud-*", "fraud-", true],
    ["fraud-*", "antifraud-eu", false],
    ["*-eu", "fraud-eu", true],
    ["*-eu", "fraud-us", false],
    ["a*b*c", "aXbYc", true],
    ["a*b*c", "acb", false],
    ["ab*ba", "aba", false],
    ["fraud", "fraud", true],
    ["fraud", "fraud2", false],
  ])("%s ~ %s → %s", (glob, name, expected) => {
    expect(globMatches(glob, name)).toBe(expected);
  });
});

describe("allows", () => {
  it("admin may do everything", () => {
    for (const need of [
      { kind: "manage:endpoints" },
      { kind: "manage:models" },
      { kind: "jobs" },
      { kind: "read" },
      { kind: "admin" },
      { kind: "manage", endpoint: "x" },
    ] as const) {
      expect(allows(["admin"], need)).toBe(true);
    }
  });

  it("query implies view of the same endpoints, not manage and not others", () => {
    const s = ["query:fraud-*"];
    expect(allows(s, { kind: "query", endpoint: "fraud-eu" })).toBe(true);
    expect(allows(s, { kind: "view", endpoint: "fraud-eu" })).toBe(true);
    expect(allows(s, { kind: "manage", endpoint: "fraud-eu" })).toBe(false);
    expect(allows(s, { kind: "query", endpoint: "churn" })).toBe(false);
    expect(allows(s, { kind: "view", endpoint: "churn" })).toBe(false);
    expect(allows(s, { kind: "read" })).toBe(false);
  });

  it("view does not allow query", () => {
    expect(allows(["view:*"], { kind: "view", endpoint: "a" })).toBe(true);
    expect(allows(["view:*"], { kind: "query", endpoint: "a" })).toBe(false);
  });

  it("manage:endpoints manages, queries and views every endpoint, but is not jobs or read", () => {
    const s = ["manage:endpoints"];
    expect(allows(s, { kind: "manage:endpoints" })).toBe(true);
    expect(allows(s, { kind: "manage", endpoint: "a" })).toBe(true);
    expect(allows(s, { kind: "query", endpoint: "a" })).toBe(true);
    expect(allows(s, { kind: "jobs" })).toBe(false);
    expect(allows(s, { kind: "read" })).toBe(false);
    expect(allows(s, { kind: "manage:models" })).toBe(false);
  });

  it("fixed scopes allow exactly themselves", () => {
    expect(allows(["jobs"], { kind: "jobs" })).toBe(true);
    expect(allows(["jobs"], { kind: "read" })).toBe(false);
    expect(allows(["read"], { kind: "read" })).toBe(true);
    expect(allows(["read"], { kind: "view", endpoint: "a" })).toBe(false);
    expect(allows(["manage:models"], { kind: "manage:models" })).toBe(true);
    expect(allows(["manage:models"], { kind: "manage:endpoints" })).toBe(false);
  });

  it("grants add Databricks levels on one endpoint: CAN_MANAGE ⊃ CAN_QUERY ⊃ CAN_VIEW", () => {
    const g = [
      { endpoint: "a", level: "CAN_VIEW" },
      { endpoint: "b", level: "CAN_QUERY" },
      { endpoint: "c", level: "CAN_MANAGE" },
    ] as const;
    expect(endpointLevel([], "a", g)).toBe(1);
    expect(endpointLevel([], "b", g)).toBe(2);
    expect(endpointLevel([], "c", g)).toBe(3);
    expect(endpointLevel([], "d", g)).toBe(0);
    expect(allows([], { kind: "query", endpoint: "a" }, g)).toBe(false);
    expect(allows([], { kind: "query", endpoint: "b" }, g)).toBe(true);
    expect(allows([], { kind: "manage", endpoint: "b" }, g)).toBe(false);
    expect(allows([], { kind: "manage", endpoint: "c" }, g)).toBe(true);
    // A grant on one endpoint is not manage:endpoints (creating endpoints).
    expect(allows([], { kind: "manage:endpoints" }, g)).toBe(false);
    // The higher of scope and grant wins.
    expect(endpointLevel(["query:*"], "a", g)).toBe(2);
  });
});
