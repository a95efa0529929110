// Bad input and abuse against a live cluster with auth on: oversized, deeply nested and wrongly typed bodies,
// header injection, path traversal in names and paths, a token in the query string, a huge number of columns,
// a slow body. Each gets a clean 4xx (or, for the slow body, a 408 and a closed socket); after each, the same
// replica process still answers predictions equal to raw onnxruntime-node's on the same model bytes.
import { existsSync, readdirSync } from "node:fs";
import { connect as netConnect } from "node:net";
import path from "node:path";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { listenBridge, type RunningBridge } from "@switchyard/bridge";
import { SwitchyardClient } from "@switchyard/client";
import { connectNats } from "@switchyard/nats";
import { clusterNames, SwitchyardError } from "@switchyard/protocol";
import { buildLinear, tempDir, writeTempModel } from "@switchyard/testkit";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, clusterClient, spawnUp, startUp, type Up } from "./helpers/up.js";

const LR = buildLinear({ inputs: 2, sigmoid: true, bias: [0.25] });
const ROWS = [
  [1.0, 3.5],
  [-2.0, 0.5],
];

async function lrReference(rows: number[][]): Promise<number[]> {
  const session = await ort.InferenceSession.create(LR);
  const out = await session.run({
    input: new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, 2]),
  });
  await session.release();
  return Array.from(out.output!.data as Float32Array);
}

/** `depth` nested lists around one number, built as text (JSON.stringify would itself overflow the stack). */
const nestedList = (depth: number) => `${"[".repeat(depth)}1${"]".repeat(depth)}`;
/** `depth` nested objects `{"a":{"a":…}}`. */
const nestedObject = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
const DEEP = 100_000;

/** Sends raw bytes on a fresh TCP connection; resolves with what came back once the server closed it. */
function rawHttp(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(port), hostname, () => socket.write(request));
    let out = "";
    socket.setEncoding("latin1");
    socket.on("data", (d) => (out += d));
    socket.on("close", () => resolve(out));
    socket.on("error", reject);
    socket.setTimeout(30_000, () => {
      socket.destroy();
      reject(new Error(`no close within 30 s; got: ${out}`));
    });
  });
}

describe("bad input and abuse", () => {
  let up: Up;
  let c: ReturnType<typeof clusterClient>;
  let pid: number;
  let reference: number[];
  const env = () => ({ SWITCHYARD_DATA_DIR: up.dataDir });
  const good = { dataframe_split: { columns: ["a", "b"], data: ROWS } };

  /** The replica that served before the abuse still serves, in the same process, the reference values. */
  const stillServing = async () => {
    const r = await c.invoke("lr", good);
    expect(r.status).toBe(200);
    const got = r.json.predictions as number[];
    expect(got).toHaveLength(reference.length);
    got.forEach((v, i) => {
      expect(Math.abs(v - reference[i]!)).toBeLessThan(1e-6);
    });
    expect(await c.replicaPids("lr")).toEqual([pid]);
  };

  const expectError = (r: { status: number; json: any }, status: number, code: string, message?: RegExp) => {
    expect({ status: r.status, code: r.json?.error_code }).toEqual({ status, code });
    if (message) expect(r.json.message).toMatch(message);
  };

  beforeAll(async () => {
    up = await startUp(path.join(tempDir("sy-abuse-"), "data"));
    c = clusterClient(up);
    const reg = await cli(["models", "register", "lr", writeTempModel(LR), "--json"], env());
    expect(reg.stderr).toBe("");
    const created = await c.call("POST", "/api/2.0/serving-endpoints", {
      name: "lr",
      config: { served_entities: [{ entity_name: "lr", entity_version: "1", workload_size: "Small" }] },
    });
    expect(created.status).toBe(200);
    await c.waitReady("lr");
    reference = await lrReference(ROWS);
    const pids = await c.replicaPids("lr");
    expect(pids).toHaveLength(1);
    pid = pids[0]!;
    await stillServing();
  });

  afterAll(async () => {
    if (up) expect(await up.stop()).toBe(0);
  });

  it("refuses a body over the bridge's limit with 413 naming the limit", async () => {
    const big = JSON.stringify({ inputs: [[1, 2]], pad: "x".repeat(17 * 1024 * 1024) });
    const r = await c.invoke("lr", big);
    expectError(r, 413, "REQUEST_TOO_LARGE", /16777216 bytes/);
    await stillServing();
  });

  it("refuses a body larger than one NATS message with 413 naming max_payload, over HTTP and the SDK path", async () => {
    // Under the bridge's 16 MiB but over the 1 MiB NATS message the cluster runs with.
    const body = JSON.stringify({
      dataframe_split: { columns: ["a", "b"], data: ROWS },
      pad: "x".repeat(2 << 20),
    });
    const r = await c.invoke("lr", body);
    expectError(r, 413, "REQUEST_TOO_LARGE", /max_payload/);
    expect(r.headers.get("retry-after")).toBeNull();
    // The SDK refuses it the same way, at once, instead of retrying a request that can never be sent.
    const client = await SwitchyardClient.connect({ servers: up.info().natsUrl, cluster: up.info().cluster });
    try {
      const err = await client
        .invoke("lr", {
          dataframe_split: { columns: ["a", "b"], data: ROWS },
          params: { pad: "x".repeat(2 << 20) },
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(SwitchyardError);
      expect((err as SwitchyardError).code).toBe("REQUEST_TOO_LARGE");
      expect((err as SwitchyardError).message).toMatch(/max_payload = \d+ bytes/);
    } finally {
      await client.close();
    }
    await stillServing();
  });

  it("refuses 100,000-level nested JSON with 400 naming the limit, over HTTP", async () => {
    const cases: [string, string, string, RegExp][] = [
      ["inputs", `{"inputs": ${nestedList(DEEP)}}`, "INVALID_PARAMETER_VALUE", /32 dimensions/],
      ["instances", `{"instances": ${nestedList(DEEP)}}`, "INVALID_PARAMETER_VALUE", /32 dimensions/],
      [
        "instance field",
        `{"instances": [{"input": ${nestedList(DEEP)}}]}`,
        "INVALID_PARAMETER_VALUE",
        /32 dimensions/,
      ],
      [
        "named inputs",
        `{"inputs": {"input": ${nestedList(DEEP)}}}`,
        "INVALID_PARAMETER_VALUE",
        /32 dimensions/,
      ],
      [
        "split cell",
        `{"dataframe_split": {"columns": ["a", "b"], "data": [[${nestedList(DEEP)}, 1]]}}`,
        "INVALID_PARAMETER_VALUE",
        /column 'a'.*a list; a column holds numbers/,
      ],
      [
        "records cell",
        `{"dataframe_records": [{"a": ${nestedObject(DEEP)}, "b": 1}]}`,
        "INVALID_PARAMETER_VALUE",
        /column 'a'.*an object; a column holds numbers/,
      ],
      [
        "params",
        `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}, "params": ${nestedObject(DEEP)}}`,
        "BAD_REQUEST",
        /params.*32 levels/,
      ],
    ];
    for (const [what, body, code, message] of cases) {
      const r = await c.invoke("lr", body);
      expect({ what, status: r.status, code: r.json?.error_code }).toEqual({ what, status: 400, code });
      expect(r.json.message).toMatch(message);
    }
    const oip = await c.call(
      "POST",
      "/v2/models/lr/infer",
      `{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": ${nestedList(DEEP)}}]}`,
    );
    expectError(oip, 400, "BAD_REQUEST", /32/);
    // Management bodies: deeper than 64 levels is refused before anything reads them.
    const mgmt = await c.call(
      "POST",
      "/api/2.0/serving-endpoints",
      `{"name": "deep", "config": ${nestedObject(DEEP)}}`,
    );
    expectError(mgmt, 400, "BAD_REQUEST", /64 levels/);
    expect((await c.call("GET", "/api/2.0/serving-endpoints/deep")).status).toBe(404);
    await stillServing();
  });

  it("refuses 100,000-level nested JSON over the NATS invoke subject", async () => {
    const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
    try {
      const subject = clusterNames(up.info().cluster).subjects.invoke("lr");
      for (const body of [`{"inputs": ${nestedList(DEEP)}}`, `{"instances": [{"a": ${nestedList(DEEP)}}]}`]) {
        const reply = await nc.request(subject, body, { timeout: 20_000 });
        expect(reply.json<{ error_code: string }>().error_code).toBe("INVALID_PARAMETER_VALUE");
        expect(reply.headers?.get("x-switchyard-error-code")).toBe("INVALID_PARAMETER_VALUE");
      }
      const params = await nc.request(subject, `{"inputs": [[1, 2]], "params": ${nestedObject(DEEP)}}`, {
        timeout: 20_000,
      });
      expect(params.json<{ error_code: string }>().error_code).toBe("BAD_REQUEST");
    } finally {
      await nc.close();
    }
    await stillServing();
  });

  it("refuses a NATS request the invoke actor cannot forward in one message with REQUEST_TOO_LARGE", async () => {
    const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
    try {
      const max = nc.info!.max_payload;
      const subject = clusterNames(up.info().cluster).subjects.invoke("lr");
      // Fits one message from the client, but not once the actor adds its deadline and request id headers.
      const prefix = '{"inputs": [[1, 2]], "pad": "';
      const body = `${prefix}${"x".repeat(max - prefix.length - 2 - 16)}"}`;
      const reply = await nc.request(subject, body, { timeout: 20_000 });
      expect(reply.headers?.get("x-switchyard-error-code")).toBe("REQUEST_TOO_LARGE");
      expect(reply.json<{ message: string }>().message).toMatch(/max_payload/);
    } finally {
      await nc.close();
    }
    await stillServing();
  });

  it("answers wrong content types with 415", async () => {
    for (const type of [
      "text/plain",
      "application/xml",
      "multipart/form-data; boundary=x",
      "application/x-www-form-urlencoded",
    ]) {
      const r = await c.invoke("lr", good, { "content-type": type });
      expect({ type, status: r.status, code: r.json?.error_code }).toEqual({
        type,
        status: 415,
        code: "UNSUPPORTED_MEDIA_TYPE",
      });
    }
    const none = await fetch(`${c.http}/serving-endpoints/lr/invocations`, {
      method: "POST",
      headers: { authorization: `Bearer ${c.token}` },
      body: new Blob([JSON.stringify(good)]),
    });
    expect(none.status).toBe(415);
    expect(((await none.json()) as { error_code: string }).error_code).toBe("UNSUPPORTED_MEDIA_TYPE");
    await stillServing();
  });

  it("refuses CR/LF in headers and replaces unsafe request ids before they reach NATS", async () => {
    const body = JSON.stringify(good);
    const head = (extra: string) =>
      `POST /serving-endpoints/lr/invocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${c.token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n${extra}\r\n${body}`;
    // A bare CR inside a header value: Node's parser refuses the request before any of our code runs.
    const injected = await rawHttp(c.http, head("X-Request-Id: abc\rX-Switchyard-Deadline: 1\r\n"));
    expect(injected).toMatch(/^HTTP\/1\.1 400 /);
    // An obsolete line folding (LF + space) smuggling a second header.
    const folded = await rawHttp(c.http, head("X-Request-Id: abc\r\n x-switchyard-error-code: OOPS\r\n"));
    expect(folded).toMatch(/^HTTP\/1\.1 400 /);

    for (const id of ["has space", "ünïcode", "x".repeat(201), "tab\there"]) {
      const r = await c.invoke("lr", good, { "x-request-id": id });
      expect(r.status).toBe(200);
      expect(r.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    }
    const kept = await c.invoke("lr", good, { "x-request-id": "client-id-42" });
    expect(kept.headers.get("x-request-id")).toBe("client-id-42");

    // Over NATS the invoke actor applies the same rule to the id it forwards and echoes.
    const nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
    try {
      const subject = clusterNames(up.info().cluster).subjects.invoke("lr");
      const h = natsHeaders();
      h.set("x-request-id", "x".repeat(5_000));
      const reply = await nc.request(subject, body, { timeout: 20_000, headers: h });
      expect(reply.json<{ predictions: number[] }>().predictions).toHaveLength(ROWS.length);
      expect(reply.headers?.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await nc.close();
    }
    await stillServing();
  });

  it("refuses path traversal in endpoint, job and stream names", async () => {
    const created = await c.call("POST", "/api/2.0/serving-endpoints", {
      name: "../../etc",
      config: { served_entities: [{ entity_name: "lr", entity_version: "1", workload_size: "Small" }] },
    });
    expectError(created, 400, "INVALID_PARAMETER_VALUE", /name/);
    // Names are checked before any lookup: a traversal is a bad name (400 naming it), never a path anywhere.
    for (const p of [
      "/api/2.0/serving-endpoints/..%2F..%2Fetc",
      "/api/2.0/switchyard/batch/jobs/..%2F..%2Fetc",
      "/api/2.0/switchyard/streams/..%2F..%2Fetc",
    ]) {
      const r = await c.call("GET", p);
      expect({ p, status: r.status, code: r.json?.error_code }).toEqual({
        p,
        status: 400,
        code: "INVALID_PARAMETER_VALUE",
      });
      expect(r.json.message).toContain("../../etc");
    }
    const oip = await c.call("GET", "/v2/models/..%2F..%2Fetc");
    expectError(oip, 404, "RESOURCE_DOES_NOT_EXIST");
    const inv = await c.invoke("..%2F..%2Fetc", good);
    expect([400, 404]).toContain(inv.status);
    expect(["INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"]).toContain(inv.json?.error_code);
    const stream = await c.call("POST", "/api/2.0/switchyard/streams", {
      name: "../../etc",
      endpoint: "lr",
      source_stream: "x",
      sink_subject: "y",
    });
    expectError(stream, 400, "INVALID_PARAMETER_VALUE", /name/);
    await stillServing();
  });

  it("refuses a model registered under a traversal name", async () => {
    const r = await cli(["models", "register", "../../etc", writeTempModel(LR)], env());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\.\.\/\.\.\/etc/);
    const list = await cli(["models", "list", "--json"], env());
    expect(list.stdout).not.toMatch(/etc/);
  });

  it("refuses batch and stream paths outside the data roots, naming the field, and writes nothing there", async () => {
    const outside = tempDir("sy-abuse-outside-");
    const cases: [Record<string, string>, string][] = [
      [{ input: "../../etc/passwd", output: path.join(up.dataDir, "out/") }, "input"],
      [{ input: "/etc/passwd", output: path.join(up.dataDir, "out/") }, "input"],
      [
        { input: path.join(up.dataDir, "../../../../etc/passwd"), output: path.join(up.dataDir, "out/") },
        "input",
      ],
      [{ input: path.join(up.dataDir, "in.csv"), output: path.join(outside, "out/") }, "output"],
      [
        { input: path.join(up.dataDir, "in.csv"), output: `${up.dataDir}/../../../../${outside}/x/` },
        "output",
      ],
    ];
    for (const [paths, field] of cases) {
      const r = await c.call("POST", "/api/2.0/switchyard/batch/jobs", { model: "models:/lr/1", ...paths });
      expect({ paths, status: r.status, code: r.json?.error_code }).toEqual({
        paths,
        status: 400,
        code: "INVALID_PARAMETER_VALUE",
      });
      expect(r.json.message).toMatch(new RegExp(`^${field}: `));
    }
    for (const [body, field] of [
      [{ source_dir: "/etc", sink_subject: "out.x" }, "source_dir"],
      [{ source_stream: "x", sink_dir: path.join(outside, "sink") }, "sink_dir"],
      [{ source_stream: "x", sink_dir: `${up.dataDir}/../../../../${outside}/sink` }, "sink_dir"],
    ] as const) {
      const r = await c.call("POST", "/api/2.0/switchyard/streams", {
        name: `s-${field}`,
        endpoint: "lr",
        ...body,
      });
      expect({ field, status: r.status, code: r.json?.error_code }).toEqual({
        field,
        status: 400,
        code: "INVALID_PARAMETER_VALUE",
      });
      expect(r.json.message).toContain(field);
    }
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(path.join(up.dataDir, "out"))).toBe(false);
    await stillServing();
  });

  it("refuses a token sent in the query string", async () => {
    const r = await fetch(`${c.http}/api/2.0/serving-endpoints?token=${c.token}`);
    expect(r.status).toBe(401);
    expect(((await r.json()) as { error_code: string }).error_code).toBe("UNAUTHENTICATED");
    const inv = await fetch(`${c.http}/serving-endpoints/lr/invocations?token=${c.token}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(good),
    });
    expect(inv.status).toBe(401);
  });

  it("refuses 50,000 columns with 400 naming the limit", async () => {
    const columns = Array.from({ length: 50_000 }, (_, i) => `c${i}`);
    const split = await c.invoke("lr", { dataframe_split: { columns, data: [columns.map(() => 1)] } });
    expectError(split, 400, "INVALID_PARAMETER_VALUE", /10000 columns/);
    const record = Object.fromEntries(columns.map((k) => [k, 1]));
    const records = await c.invoke("lr", { dataframe_records: [record] });
    expectError(records, 400, "INVALID_PARAMETER_VALUE", /10000 columns/);
    const instances = await c.invoke("lr", { instances: [record] });
    expectError(instances, 400, "INVALID_PARAMETER_VALUE", /10000 columns/);
    await stillServing();
  });

  it("names --body-timeout when switchyard up is given a bad deadline", async () => {
    const bad = spawnUp(path.join(tempDir("sy-abuse-flag-"), "data"), ["--body-timeout", "soon"]);
    expect(await bad.exited).not.toBe(0);
    expect(bad.output()).toContain("--body-timeout: expected a duration");
  });

  describe("a slow body", () => {
    let bridge: RunningBridge;
    let nc: Awaited<ReturnType<typeof connectNats>>;
    beforeAll(async () => {
      nc = await connectNats({ servers: up.info().natsUrl, reconnect: false });
      bridge = await listenBridge({ nc, cluster: up.info().cluster, auth: true, bodyTimeoutMs: 1_000 });
    });
    afterAll(async () => {
      await bridge?.close();
      await nc?.close();
    });

    /** Sends a request's headers, then its body one byte every 200 ms; resolves when the bridge closes. */
    const slowly = (body: string, token: string) => {
      const { hostname, port } = new URL(bridge.url);
      return new Promise<{ text: string; sent: number }>((resolve, reject) => {
        const socket = netConnect(Number(port), hostname);
        let text = "";
        let sent = 0;
        let timer: NodeJS.Timeout | undefined;
        socket.setEncoding("latin1");
        socket.on("connect", () => {
          socket.write(
            `POST /serving-endpoints/lr/invocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
              `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
          );
          // One byte every 200 ms: the whole body would take far longer than the 1 s deadline.
          timer = setInterval(() => {
            if (sent < body.length - 1 && !socket.destroyed) socket.write(body[sent++]!);
          }, 200);
        });
        socket.on("data", (d) => (text += d));
        socket.on("close", () => {
          clearInterval(timer);
          resolve({ text, sent });
        });
        socket.on("error", () => {});
        socket.setTimeout(30_000, () => {
          socket.destroy();
          reject(new Error(`the bridge did not close a slow body's connection within 30 s; got: ${text}`));
        });
      });
    };

    it("is cut off at the body deadline with 408 and a closed connection", async () => {
      const body = JSON.stringify(good);
      const reply = await slowly(body, c.token);
      expect(reply.text).toMatch(/^HTTP\/1\.1 408 /);
      expect(reply.text).toContain('"error_code":"REQUEST_TIMEOUT"');
      expect(reply.sent).toBeLessThan(body.length - 1);
      // The bridge keeps serving normal requests.
      const ok = await fetch(`${bridge.url}/serving-endpoints/lr/invocations`, {
        method: "POST",
        headers: { authorization: `Bearer ${c.token}`, "content-type": "application/json" },
        body,
      });
      expect(ok.status).toBe(200);
      await stillServing();
    });

    it("closes the connection of a refused client that keeps trickling its body at the same deadline", async () => {
      const body = JSON.stringify(good);
      const reply = await slowly(body, "not-a-token");
      expect(reply.text).toMatch(/^HTTP\/1\.1 401 /);
      expect(reply.sent).toBeLessThan(body.length - 1);
    });
  });
});
