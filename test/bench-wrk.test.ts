// The benches' HTTP load generator (bench/load/wrk.ts): what it reports is what a server saw and answered —
// bodies drawn from the pool, the headers given, successes and error replies counted apart, latencies in ms.
import { once } from "node:events";
import { rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { tempDir } from "@switchyard/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWrk, runWrk } from "../bench/load/wrk.js";

const OK_BODY = '{"dataframe_split":{"columns":["x"],"data":[[1]]}}';
const BAD_BODY = '{"dataframe_split":{"columns":["x"],"data":[[2]]}}';
/** Every reply waits this long, so the reported latencies have a known floor. */
const DELAY_MS = 20;
const CONNECTIONS = 2;

describe("bench load generator: wrk", () => {
  let server: Server;
  let url: string;
  let bodiesFile: string;
  const seen = { ok: 0, bad: 0, foreignBody: 0, wrongHeaders: 0 };

  beforeAll(async () => {
    ensureWrk(() => {});
    bodiesFile = join(tempDir("sy-bench-wrk-test-"), "bodies.jsonl");
    writeFileSync(bodiesFile, `${OK_BODY}\n${BAD_BODY}\n`);
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString();
      });
      req.on("end", () => {
        if (
          req.method !== "POST" ||
          req.headers["content-type"] !== "application/json" ||
          req.headers.authorization !== "Bearer sekret"
        ) {
          seen.wrongHeaders++;
        }
        let status = 400;
        if (body === OK_BODY) {
          seen.ok++;
          status = 200;
        } else if (body === BAD_BODY) {
          seen.bad++;
          status = 503;
        } else {
          seen.foreignBody++;
        }
        setTimeout(() => res.writeHead(status, { "content-type": "application/json" }).end("{}"), DELAY_MS);
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/serving-endpoints/m/invocations`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dirname(bodiesFile), { recursive: true, force: true });
  });

  it("posts random pool lines with the headers and counts successes, error replies and latency", async () => {
    const r = await runWrk({
      url,
      bodiesFile,
      connections: CONNECTIONS,
      durationS: 1,
      headers: { authorization: "Bearer sekret" },
    });
    expect(seen.foreignBody).toBe(0);
    expect(seen.wrongHeaders).toBe(0);
    expect(r.errors).toBe(0);
    // wrk counts the replies it read; the server may have taken up to one more request per connection as it stopped.
    expect(r.requests).toBeGreaterThan(0);
    expect(r.non2xx).toBeGreaterThan(0);
    expect(seen.ok - r.requests).toBeGreaterThanOrEqual(0);
    expect(seen.bad - r.non2xx).toBeGreaterThanOrEqual(0);
    expect(seen.ok + seen.bad - (r.requests + r.non2xx)).toBeLessThanOrEqual(CONNECTIONS);
    // Milliseconds, not wrk's microseconds: every reply took at least DELAY_MS.
    expect(r.p50Ms).toBeGreaterThanOrEqual(DELAY_MS);
    expect(r.p50Ms).toBeLessThan(DELAY_MS * 1000);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
    expect(r.rps).toBeCloseTo(r.requests / r.durationS, 0);
  });

  it("refuses a duration wrk would truncate, naming the field", async () => {
    await expect(runWrk({ url, bodiesFile, connections: 1, durationS: 0.5 })).rejects.toThrow(
      "wrk: durationS must be a whole number of seconds ≥ 1, got 0.5",
    );
  });
});
