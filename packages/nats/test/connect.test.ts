import { describe, expect, it } from "vitest";
import { parseReplication, serverList, splitNatsUrl } from "../src/mod.js";

describe("NATS URLs", () => {
  it("splits embedded credentials off the server URL", () => {
    expect(splitNatsUrl("nats://admin:p%40ss@127.0.0.1:4222")).toEqual({
      server: "nats://127.0.0.1:4222",
      user: "admin",
      pass: "p@ss",
    });
    expect(splitNatsUrl("nats://s3cret@host:1")).toEqual({ server: "nats://host:1", token: "s3cret" });
    expect(splitNatsUrl("127.0.0.1:4222")).toEqual({
      server: "nats://127.0.0.1:4222",
      user: undefined,
      pass: undefined,
    });
  });
});

describe("several server URLs", () => {
  it("reads a comma-separated list, an array, or an array of lists, in order", () => {
    const three = ["nats://a:4222", "nats://b:4222", "nats://c:4222"];
    expect(serverList("nats://a:4222,nats://b:4222, nats://c:4222")).toEqual(three);
    expect(serverList(["nats://a:4222", "nats://b:4222,nats://c:4222"])).toEqual(three);
    expect(serverList("nats://a:4222")).toEqual(["nats://a:4222"]);
  });

  it("keeps credentials embedded in any URL of the list", () => {
    const [first, second] = serverList("nats://b:4222,nats://admin:p%40ss@c:4222").map(splitNatsUrl);
    expect(first).toEqual({ server: "nats://b:4222", user: undefined, pass: undefined });
    expect(second).toEqual({ server: "nats://c:4222", user: "admin", pass: "p@ss" });
  });

  it("refuses a list with no URL in it", () => {
    expect(() => serverList(" , ")).toThrow("servers: no NATS server URL in ' , '");
  });
});

describe("the replication setting", () => {
  it("takes an integer from 1 to 5", () => {
    expect(parseReplication("3", "--replication")).toBe(3);
    expect(parseReplication(1, "cluster.replication")).toBe(1);
    expect(parseReplication("5", "--replication")).toBe(5);
  });

  it.each(["0", "6", "2.5", "three", "", "-1"])("refuses '%s' naming the field", (bad) => {
    expect(() => parseReplication(bad, "--replication")).toThrow(
      `--replication: expected an integer from 1 to 5, got '${bad}'`,
    );
  });
});
