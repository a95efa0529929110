import { describe, expect, it } from "vitest";
import {
  compareNatsServerVersions,
  isSupportedNatsServerVersion,
  MIN_NATS_SERVER_VERSION,
  parseNatsServerVersion,
} from "../src/mod.js";

describe("nats-server version parsing", () => {
  it("reads `nats-server --version` output", () => {
    expect(parseNatsServerVersion("nats-server: v2.10.27\n")).toEqual({
      major: 2,
      minor: 10,
      patch: 27,
      text: "2.10.27",
    });
    expect(parseNatsServerVersion("nats-server: v2.9.10")).toEqual({
      major: 2,
      minor: 9,
      patch: 10,
      text: "2.9.10",
    });
  });

  it("reads bare versions, pre-release suffixes and cache directory names", () => {
    expect(parseNatsServerVersion("2.11.0-RC.1")?.text).toBe("2.11.0-RC.1");
    expect(parseNatsServerVersion("v2.12.1")?.minor).toBe(12);
  });

  it("returns undefined when there is no version", () => {
    expect(parseNatsServerVersion("nats-server: unknown")).toBeUndefined();
    expect(parseNatsServerVersion("")).toBeUndefined();
  });

  it("rejects Debian bookworm's 2.9.10 and accepts 2.10 and later", () => {
    const v = (s: string) => parseNatsServerVersion(s)!;
    expect(isSupportedNatsServerVersion(v("nats-server: v2.9.10"))).toBe(false);
    expect(isSupportedNatsServerVersion(v("2.9.99"))).toBe(false);
    expect(isSupportedNatsServerVersion(v("1.99.99"))).toBe(false);
    expect(isSupportedNatsServerVersion(v("2.10.0"))).toBe(true);
    expect(isSupportedNatsServerVersion(v("2.10.27"))).toBe(true);
    expect(isSupportedNatsServerVersion(v("2.11.4"))).toBe(true);
    expect(isSupportedNatsServerVersion(v("3.0.0"))).toBe(true);
    expect(MIN_NATS_SERVER_VERSION.text).toBe("2.10.0");
  });

  it("orders numerically, not as text", () => {
    const v = (s: string) => parseNatsServerVersion(s)!;
    expect(compareNatsServerVersions(v("2.10.0"), v("2.9.10"))).toBeGreaterThan(0);
    expect(compareNatsServerVersions(v("2.10.2"), v("2.10.10"))).toBeLessThan(0);
    expect(compareNatsServerVersions(v("2.10.27"), v("v2.10.27"))).toBe(0);
  });
});
