import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  parseDeb822Sources,
  parseSourcesList,
  readAptSources,
  trixieSourceLines,
} from "../src/apt-sources.js";
import {
  downloadDebianNatsServer,
  findNatsServer,
  findRepoRoot,
  NatsServerNotFoundError,
  natsServerVersion,
} from "../src/mod.js";

// Source lines for the parser tests, built on the machine's own Debian mirror (its apt configuration) rather
// than a host written here: each stand-in source is a path under that mirror, `port` an explicit proxy port.
const MIRROR = (await readAptSources()).flatMap((s) => s.uris).find((u) => /^https?:\/\//.test(u));
function at(name: string, port?: number): string {
  const url = new URL(MIRROR ?? "http://localhost");
  if (port) url.port = String(port);
  return `${url.origin}/${name}`;
}

// A stand-in for Debian bookworm's nats-server: it only answers --version, like the real one would.
async function fakeNatsServer(dir: string, version: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "nats-server");
  await writeFile(path, `#!/bin/sh\necho "nats-server: v${version}"\n`);
  await chmod(path, 0o755);
  return path;
}

describe("findNatsServer", () => {
  let tmp: string;
  let realBinary: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "natsd-provision-test-"));
    // The real binary the rest of the suite uses; provisioning it here must not need the network.
    realBinary = await findNatsServer({ download: false });
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("finds a real nats-server ≥ 2.10 for this suite", async () => {
    const v = await natsServerVersion(realBinary);
    expect(v.major * 100 + v.minor).toBeGreaterThanOrEqual(210);
  });

  it("gives a clear error when SWITCHYARD_NATS_SERVER points to a missing file", async () => {
    const missing = join(tmp, "does-not-exist", "nats-server");
    const attempt = findNatsServer({ env: { SWITCHYARD_NATS_SERVER: missing, PATH: "" }, download: false });
    await expect(attempt).rejects.toThrow(NatsServerNotFoundError);
    await expect(attempt).rejects.toThrow(`SWITCHYARD_NATS_SERVER=${missing}: no such file`);
  });

  it("rejects SWITCHYARD_NATS_SERVER when it is 2.9.10, without falling back", async () => {
    const old = await fakeNatsServer(join(tmp, "env-old"), "2.9.10");
    await expect(
      findNatsServer({ env: { SWITCHYARD_NATS_SERVER: old, PATH: "" }, cacheDir: join(tmp, "none") }),
    ).rejects.toThrow(
      `SWITCHYARD_NATS_SERVER=${old} is nats-server 2.9.10; Switchyard needs 2.10.0 or newer.`,
    );
  });

  it("returns SWITCHYARD_NATS_SERVER when it is new enough", async () => {
    await expect(findNatsServer({ env: { SWITCHYARD_NATS_SERVER: realBinary, PATH: "" } })).resolves.toBe(
      realBinary,
    );
  });

  it("skips a 2.9.10 on PATH and takes the project cache", async () => {
    const pathDir = join(tmp, "path-old");
    await fakeNatsServer(pathDir, "2.9.10");
    const cacheDir = join(tmp, "cache-real");
    await mkdir(join(cacheDir, "2.10.27"), { recursive: true });
    await symlink(realBinary, join(cacheDir, "2.10.27", "nats-server"));
    const logs: string[] = [];
    const found = await findNatsServer({
      env: { PATH: pathDir },
      cacheDir,
      download: false,
      log: (m) => logs.push(m),
    });
    expect(found).toBe(join(cacheDir, "2.10.27", "nats-server"));
    expect(logs.join("\n")).toContain("version 2.9.10 is older than 2.10.0");
  });

  it("prefers a new enough nats-server on PATH over the cache", async () => {
    const pathDir = join(tmp, "path-new");
    const onPath = await fakeNatsServer(pathDir, "2.11.1");
    const found = await findNatsServer({
      env: { PATH: pathDir },
      cacheDir: join(tmp, "cache-real"),
      download: false,
    });
    expect(found).toBe(onPath);
  });

  it("does not trust a cache directory name over what the binary says", async () => {
    const cacheDir = join(tmp, "cache-lying");
    await fakeNatsServer(join(cacheDir, "2.10.99"), "2.9.10");
    await expect(findNatsServer({ env: { PATH: "" }, cacheDir, download: false })).rejects.toThrow(
      NatsServerNotFoundError,
    );
  });

  it("says exactly what to install when nothing is found", async () => {
    const attempt = findNatsServer({
      env: { PATH: join(tmp, "path-old") },
      cacheDir: join(tmp, "empty"),
      download: false,
    });
    await expect(attempt).rejects.toThrow(/Install nats-server ≥ 2\.10\.0 .* or set SWITCHYARD_NATS_SERVER=/);
    await expect(attempt).rejects.toThrow("is version 2.9.10, older than 2.10.0");
  });

  it("names the apt sources it read and what to do when they hold no Debian mirror", async () => {
    if (process.platform !== "linux") return;
    // A PATH with stand-in apt-get and dpkg, so step 4 gets as far as reading the (empty) apt sources.
    const binDir = join(tmp, "apt-tools");
    await mkdir(binDir, { recursive: true });
    for (const tool of ["apt-get", "dpkg"]) {
      await writeFile(join(binDir, tool), "#!/bin/sh\nexit 1\n");
      await chmod(join(binDir, tool), 0o755);
    }
    const aptDir = join(tmp, "apt-empty");
    await mkdir(join(aptDir, "sources.list.d"), { recursive: true });
    await writeFile(
      join(aptDir, "sources.list.d", "vendor.list"),
      `deb ${at("vendor")}/linux/debian bookworm stable\ndeb ${at("vendor")}/ubuntu noble main\n`,
    );
    const attempt = findNatsServer({ env: { PATH: binDir }, cacheDir: join(tmp, "empty"), aptDir });
    await expect(attempt).rejects.toThrow(`no Debian source in ${join(aptDir, "sources.list")}`);
    await expect(attempt).rejects.toThrow(/or set SWITCHYARD_NATS_SERVER=/);
    await expect(downloadDebianNatsServer({ cacheDir: join(tmp, "empty"), aptDir })).rejects.toThrow(
      "no Debian source in",
    );
  });

  it("finds the workspace root from this package", () => {
    const here = fileURLToPath(new URL(".", import.meta.url));
    const root = findRepoRoot(here);
    expect(root).toBeDefined();
    expect(existsSync(join(root!, "packages", "natsd", "package.json"))).toBe(true);
    expect(findRepoRoot("/")).toBeUndefined();
  });
});

describe("Debian mirror from the apt sources", () => {
  it("parses one-line entries with options, comments and components", () => {
    const text = [
      `# deb ${at("commented")}/debian bookworm main`,
      `deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${at("mirror")}/debian bookworm main contrib # trailing`,
      `deb-src ${at("mirror")}/debian bookworm main`,
      "deb [ trusted=yes ] file:/srv/mirror ./",
      "not a source line",
    ].join("\n");
    expect(parseSourcesList(text, "/x/sources.list")).toEqual([
      {
        types: ["deb"],
        uris: [`${at("mirror")}/debian`],
        suites: ["bookworm"],
        components: ["main", "contrib"],
        options: { "signed-by": "/usr/share/keyrings/debian-archive-keyring.gpg" },
        file: "/x/sources.list",
      },
      {
        types: ["deb-src"],
        uris: [`${at("mirror")}/debian`],
        suites: ["bookworm"],
        components: ["main"],
        options: {},
        file: "/x/sources.list",
      },
      {
        types: ["deb"],
        uris: ["file:/srv/mirror"],
        suites: ["./"],
        components: [],
        options: { trusted: "yes" },
        file: "/x/sources.list",
      },
    ]);
  });

  it("parses deb822 stanzas, skipping disabled ones and inline keys", () => {
    const text = [
      "Types: deb",
      "# a comment inside the stanza",
      `URIs: ${at("mirror")}/debian`,
      "Suites: bookworm bookworm-updates",
      "Components: main",
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
      "",
      "Types: deb",
      `URIs: ${at("disabled")}/debian`,
      "Suites: bookworm",
      "Components: main",
      "Enabled: no",
      "",
      "",
      "types: deb deb-src",
      `uris: ${at("mirror")}/debian-security`,
      "suites: bookworm-security",
      "components: main",
      "signed-by:",
      " -----BEGIN PGP PUBLIC KEY BLOCK-----",
      " .",
      " abc",
      " -----END PGP PUBLIC KEY BLOCK-----",
    ].join("\n");
    expect(parseDeb822Sources(text, "/x/debian.sources")).toEqual([
      {
        types: ["deb"],
        uris: [`${at("mirror")}/debian`],
        suites: ["bookworm", "bookworm-updates"],
        components: ["main"],
        options: { "signed-by": "/usr/share/keyrings/debian-archive-keyring.gpg" },
        file: "/x/debian.sources",
      },
      {
        types: ["deb", "deb-src"],
        uris: [`${at("mirror")}/debian-security`],
        suites: ["bookworm-security"],
        components: ["main"],
        options: {},
        file: "/x/debian.sources",
      },
    ]);
  });

  it("keeps each Debian release source's URI and puts trixie main in place of its suite", () => {
    const sources = parseSourcesList(
      [
        `deb-src ${at("src-only")}/debian bookworm main`,
        `deb ${at("proxy", 3142)}/debian-security bookworm-security main`,
        `deb ${at("proxy", 3142)}/debian bookworm-updates main`,
        `deb ${at("old-security")}/debian-security stretch/updates main`,
        `deb ${at("ubuntu")}/ubuntu jammy main`,
        `deb ${at("vendor")}/linux/debian bookworm stable`,
        `deb ${at("vendor")}/apt/chrome stable main`,
        "deb cdrom:[Debian GNU/Linux 12]/ bookworm main",
        `deb [signed-by=/etc/apt/keyrings/mirror.gpg arch=amd64] ${at("proxy", 3142)}/debian bookworm main contrib`,
        `deb ${at("later")}/debian bookworm main`,
        `deb ${at("later")}/debian bookworm-backports main`,
      ].join("\n"),
    );
    // A vendor's repository that names a Debian suite is kept, but after the `/debian` mirrors.
    expect(trixieSourceLines(sources)).toEqual([
      `deb [signed-by=/etc/apt/keyrings/mirror.gpg] ${at("proxy", 3142)}/debian trixie main`,
      `deb ${at("later")}/debian trixie main`,
      `deb ${at("vendor")}/apt/chrome trixie main`,
    ]);
    expect(
      trixieSourceLines(
        parseDeb822Sources(
          `Types: deb\nURIs: ${at("mirror")}/debian\nSuites: bookworm-updates stable\nComponents: main\n`,
        ),
      ),
    ).toEqual([`deb ${at("mirror")}/debian trixie main`]);
  });

  it("finds no source when the apt sources hold only security, updates or other distributions", () => {
    const sources = parseSourcesList(
      [
        `deb ${at("mirror")}/debian-security bookworm-security main`,
        `deb ${at("mirror")}/debian bookworm-updates main`,
        `deb ${at("ubuntu")}/ubuntu noble main`,
      ].join("\n"),
    );
    expect(trixieSourceLines(sources)).toEqual([]);
    expect(trixieSourceLines([])).toEqual([]);
  });

  it("reads sources.list first, then sources.list.d's .list and .sources files by name", async () => {
    const aptDir = await mkdtemp(join(tmpdir(), "natsd-apt-test-"));
    try {
      await mkdir(join(aptDir, "sources.list.d"));
      await writeFile(
        join(aptDir, "sources.list"),
        `deb ${at("mirror")}/debian-security bookworm-security main\n`,
      );
      await writeFile(
        join(aptDir, "sources.list.d", "b.sources"),
        `Types: deb\nURIs: ${at("b")}/debian\nSuites: bookworm\nComponents: main\n`,
      );
      await writeFile(join(aptDir, "sources.list.d", "a.list"), `deb ${at("a")}/debian bookworm main\n`);
      await writeFile(
        join(aptDir, "sources.list.d", "c.list.disabled"),
        `deb ${at("c")}/debian bookworm main\n`,
      );
      const sources = await readAptSources(aptDir);
      expect(sources.map((s) => s.uris[0])).toEqual([
        `${at("mirror")}/debian-security`,
        `${at("a")}/debian`,
        `${at("b")}/debian`,
      ]);
      expect(trixieSourceLines(sources)).toEqual([
        `deb ${at("a")}/debian trixie main`,
        `deb ${at("b")}/debian trixie main`,
      ]);
      expect(await readAptSources(join(aptDir, "missing"))).toEqual([]);
    } finally {
      await rm(aptDir, { recursive: true, force: true });
    }
  });
});
