import { describe, expect, it } from "vitest";
import { splitNatsUrl } from "../src/mod.js";

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
