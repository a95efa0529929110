import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection, PermissionViolationError } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { goMaxProcs, NatsServer, startCluster } from "../src/mod.js";
import { processExists } from "./process-exists.js";

// Whatever a test started is stopped even when it fails half way.
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function started(opts: Parameters<typeof NatsServer.start>[0] = {}): Promise<NatsServer> {
  const server = await NatsServer.start(opts);
  cleanups.push(() => server.stop({ removeData: true }));
  return server;
}

async function connected(opts: Parameters<typeof connect>[0]): Promise<NatsConnection> {
  const nc = await connect(opts);
  cleanups.push(() => nc.close());
  return nc;
}

describe("NatsServer", () => {
  it("starts with JetStream on 127.0.0.1 and stops leaving no process or files behind", async () => {
    const server = await started();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);
    expect(processExists(server.pid)).toBe(true);

    const config = await readFile(server.configFile, "utf8");
    expect(config).toContain(`store_dir: ${JSON.stringify(server.storeDir)}`);
    expect(config).not.toContain("sync_interval");

    const nc = await connected({ servers: server.url });
    const info = await (await jetstreamManager(nc)).getAccountInfo();
    expect(info.streams).toBe(0);
    await nc.close();

    const { pid, configFile, storeDir } = server;
    await server.stop({ removeData: true });
    expect(server.running).toBe(false);
    expect(processExists(pid)).toBe(false);
    expect(existsSync(configFile)).toBe(false);
    expect(existsSync(storeDir)).toBe(false);
  });

  it("runs nats-server with GOMAXPROCS from goMaxProcs()", async () => {
    const server = await started();
    const environ = (await readFile(`/proc/${server.pid}/environ`, "utf8")).split("\0");
    expect(environ).toContain(`GOMAXPROCS=${goMaxProcs()}`);
  });

  it("keeps the store on a plain stop", async () => {
    const server = await started();
    await server.stop();
    expect(existsSync(server.storeDir)).toBe(true);
    await rm(server.storeDir, { recursive: true, force: true });
  });

  it("restart() keeps the port and the JetStream data", async () => {
    const server = await started();
    const { port, pid } = server;
    const nc = await connected({ servers: server.url });
    const kv = await new Kvm(nc).create("restart_test");
    await kv.put("model", "fraud@champion");
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "RESTART_TEST", subjects: ["restart.test"] });
    await (await jetstreamManager(nc)).jetstream().publish("restart.test", "event-1");
    await nc.close();

    await server.restart();
    expect(server.port).toBe(port);
    expect(server.pid).not.toBe(pid);
    expect(processExists(pid)).toBe(false);

    const nc2 = await connected({ servers: server.url });
    const kv2 = await new Kvm(nc2).open("restart_test");
    expect((await kv2.get("model"))?.string()).toBe("fraud@champion");
    const jsm2 = await jetstreamManager(nc2);
    const msg = await jsm2.streams.getMessage("RESTART_TEST", { seq: 1 });
    expect(msg?.string()).toBe("event-1");
  });

  it("kill() is a crash: the process is gone at once, and restart() recovers the data", async () => {
    const server = await started();
    const nc = await connected({ servers: server.url });
    const kv = await new Kvm(nc).create("kill_test");
    await kv.put("k", "v1");
    await nc.close();

    const { pid, port } = server;
    await server.kill();
    expect(server.running).toBe(false);
    expect(processExists(pid)).toBe(false);

    await server.restart();
    expect(server.port).toBe(port);
    const nc2 = await connected({ servers: server.url });
    expect((await (await new Kvm(nc2).open("kill_test")).get("k"))?.string()).toBe("v1");
  });

  it("users/password: refuses a wrong password, accepts the right one", async () => {
    const server = await started({ users: [{ user: "alice", password: "s3cret" }] });
    await expect(
      connect({ servers: server.url, user: "alice", pass: "wrong", reconnect: false }),
    ).rejects.toThrow(/authorization/i);
    await expect(connect({ servers: server.url, reconnect: false })).rejects.toThrow(/authorization/i);
    const nc = await connected({ servers: server.url, user: "alice", pass: "s3cret" });
    expect((await (await jetstreamManager(nc)).getAccountInfo()).streams).toBe(0);
    expect(server.urlWithCredentials("alice", "s3cret")).toBe(`nats://alice:s3cret@127.0.0.1:${server.port}`);
  });

  it("authorizationFile: permissions hold, and reloadAuthorization changes users without a restart", async () => {
    const dir = await mkdtemp(join(tmpdir(), "natsd-auth-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "authorization.conf");
    const admin = { user: "admin", password: "a" };
    const bob = {
      user: "bob",
      password: "b",
      permissions: { publish: { allow: ["ok.>"] }, subscribe: { allow: ["_INBOX_bob.>"] } },
    };
    const server = await started({ users: [admin, bob], authorizationFile: file });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(server.configFile, "utf8")).toMatch(/^include "[^"]*authorization\.conf"$/m);
    const pid = server.pid;

    const nc = await connect({
      servers: server.url,
      user: "bob",
      pass: "b",
      reconnect: false,
      inboxPrefix: "_INBOX_bob",
    });
    cleanups.push(() => nc.close());
    const sub = nc.subscribe("secret.>");
    const ended = await sub.closed;
    expect(ended).toBeInstanceOf(PermissionViolationError);
    expect((ended as PermissionViolationError).subject).toBe("secret.>");

    await server.reloadAuthorization([admin, { user: "carol", password: "c" }]);
    // The server closes bob's connection itself once it re-read the file; the process is the same one.
    await nc.closed();
    expect(server.pid).toBe(pid);
    await expect(connect({ servers: server.url, user: "bob", pass: "b", reconnect: false })).rejects.toThrow(
      /authorization/i,
    );
    const carol = await connected({ servers: server.url, user: "carol", pass: "c" });
    await carol.flush();
  });

  it("token: refuses a wrong token, accepts the right one", async () => {
    const server = await started({ token: "t0ken" });
    await expect(connect({ servers: server.url, token: "nope", reconnect: false })).rejects.toThrow(
      /authorization/i,
    );
    const nc = await connected({ servers: server.url, token: "t0ken" });
    await nc.flush();
  });

  it("syncAlways writes `sync_interval: always` and the server runs with it", async () => {
    const server = await started({ syncAlways: true, monitorPort: -1 });
    expect(await readFile(server.configFile, "utf8")).toMatch(
      /jetstream \{[^}]*\n {2}sync_interval: always\n\}/,
    );
    // The server's own view of its config, not just our file.
    const varz = (await (await fetch(`http://127.0.0.1:${server.monitorPort}/varz`)).json()) as {
      jetstream: { config: { sync_always?: boolean } };
    };
    expect(varz.jetstream.config.sync_always).toBe(true);
  });

  it("an early exit rejects with the server's own words", async () => {
    const first = await started();
    // The port is taken, so nats-server exits at once.
    await expect(NatsServer.start({ port: first.port })).rejects.toThrow(
      /exited .* before it was ready[\s\S]*address already in use/,
    );
    await expect(NatsServer.start({ extraConfig: "jetstream { store_dir: " })).rejects.toThrow(/exited/);
  });

  it("writes the server log to logFile when given", async () => {
    const dir = await mkdtemp(join(tmpdir(), "natsd-log-test-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const logFile = join(dir, "nats.log");
    const server = await started({ logFile });
    const log = await readFile(logFile, "utf8");
    expect(log).toContain("Server is ready");
    expect(server.logs()).toContain("Server is ready");
  });

  it("names a bad option", async () => {
    await expect(NatsServer.start({ port: 70000 })).rejects.toThrow(
      "NatsServerOptions.port must be an integer from -1 to 65535, got 70000",
    );
    await expect(NatsServer.start({ users: [{ user: "a", password: "b" }], token: "t" })).rejects.toThrow(
      /users and NatsServerOptions.token are exclusive/,
    );
  });
});

describe("goMaxProcs", () => {
  it("is half the cores, at least one, unless GOMAXPROCS is set", () => {
    expect([1, 2, 3, 8].map((cores) => goMaxProcs({}, cores))).toEqual(["1", "1", "1", "4"]);
    expect(goMaxProcs({ GOMAXPROCS: "3" }, 8)).toBe("3");
    expect(goMaxProcs({ GOMAXPROCS: " " }, 8)).toBe("4");
  });
});

describe("startCluster", () => {
  it("forms a 3-node JetStream cluster where an R3 stream can be created", async () => {
    const cluster = await startCluster(3);
    cleanups.push(() => cluster.stop({ removeData: true }));
    expect(cluster.urls).toHaveLength(3);
    expect(new Set(cluster.servers.map((s) => s.port)).size).toBe(3);

    const nc = await connected({ servers: cluster.urls });
    const jsm = await jetstreamManager(nc);
    // JetStream answers once a meta leader exists, which can be before it has heard from every peer
    // ("no suitable peers for placement"): an R3 stream can be created eventually — within 120 s, since on a
    // loaded 2-core machine (the whole suite running beside it) the peers' first reports have taken over 60 s.
    const addDeadline = Date.now() + 120_000;
    let info = await jsm.streams
      .add({ name: "R3_TEST", subjects: ["r3.test"], num_replicas: 3 })
      .catch((err: Error) => err);
    while (info instanceof Error && Date.now() < addDeadline) {
      await new Promise((r) => setTimeout(r, 250));
      info = await jsm.streams
        .add({ name: "R3_TEST", subjects: ["r3.test"], num_replicas: 3 })
        .catch((err: Error) => err);
    }
    if (info instanceof Error) throw info;
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.name).toBe("sy-cluster");
    expect(info.cluster?.leader).toMatch(/^sy-n[123]$/);

    expect(info.cluster?.replicas).toHaveLength(2);

    await jsm.jetstream().publish("r3.test", "scored");
    await nc.close();
    // Kill the stream leader: a follower must take over with the message, or it was never replicated.
    const leader = cluster.servers[Number(info.cluster!.leader!.slice(-1)) - 1]!;
    await leader.kill();
    const survivors = cluster.servers.filter((s) => s !== leader).map((s) => s.url);
    const nc2 = await connected({ servers: survivors });
    const jsm2 = await jetstreamManager(nc2, { checkAPI: false, timeout: 1_000 });
    const deadline = Date.now() + 30_000;
    let stored: string | undefined;
    while (stored === undefined && Date.now() < deadline) {
      // Until a new stream leader is elected the request fails or times out; that is expected.
      stored = await jsm2.streams
        .getMessage("R3_TEST", { seq: 1 })
        .then((m) => m?.string())
        .catch(() => undefined);
      if (stored === undefined) await new Promise((r) => setTimeout(r, 250));
    }
    expect(stored).toBe("scored");
    await nc2.close();

    const pids = cluster.servers.map((s) => s.pid);
    await cluster.stop({ removeData: true });
    for (const pid of pids) expect(processExists(pid)).toBe(false);
  }, 210_000);
});
