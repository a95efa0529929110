// Reads the machine's apt sources (one-line `.list` files and deb822 `.sources` stanzas) to find the Debian mirror
// it already uses. It must never write apt state nor know a mirror of its own: the host always comes from the machine.

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** One source entry; a deb822 stanza may hold several URIs and suites, a one-line entry holds one of each. */
export interface AptSource {
  /** "deb", "deb-src", or both. */
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  /** `signed-by` and `trusted`, the options a copy of the entry for another suite still needs. */
  options: Record<string, string>;
  /** The file it came from, for messages. */
  file: string;
}

export const DEFAULT_APT_DIR = "/etc/apt";

/** The Debian release whose nats-server package (2.10) is new enough; bookworm's 2.9.10 is not. */
export const NATS_SERVER_DEBIAN_SUITE = "trixie";

/** Release code names and the archive's aliases for them; derivatives' suites (jammy, daedalus, …) are not Debian. */
const DEBIAN_SUITES = new Set([
  ..."buzz rex bo hamm slink potato woody sarge etch lenny squeeze wheezy jessie stretch buster".split(" "),
  ..."bullseye bookworm trixie forky duke sid".split(" "),
  ..."oldoldstable oldstable stable testing unstable experimental".split(" "),
]);

const CARRIED_OPTIONS = new Set(["signed-by", "trusted"]);

/** Parses one-line sources.list text: `deb [opt=value …] URI suite [component …]`; `#` starts a comment. */
export function parseSourcesList(text: string, file = "sources.list"): AptSource[] {
  const sources: AptSource[] = [];
  for (const rawLine of text.split("\n")) {
    let line = rawLine.replace(/#.*/, "").trim();
    const type = /^(deb|deb-src)\s+/.exec(line);
    if (!type) continue;
    line = line.slice(type[0].length);
    const options: Record<string, string> = {};
    if (line.startsWith("[")) {
      const end = line.indexOf("]");
      if (end < 0) continue; // apt refuses the line too
      for (const option of line.slice(1, end).trim().split(/\s+/)) {
        const eq = option.indexOf("=");
        if (eq <= 0) continue;
        const key = option.slice(0, eq).replace(/[+-]$/, "").toLowerCase();
        if (CARRIED_OPTIONS.has(key)) options[key] = option.slice(eq + 1);
      }
      line = line.slice(end + 1).trim();
    }
    const [uri, suite, ...components] = line.split(/\s+/);
    if (!uri || !suite) continue;
    sources.push({ types: [type[1] as string], uris: [uri], suites: [suite], components, options, file });
  }
  return sources;
}

/** Parses deb822 `.sources` text: stanzas of `Types:`, `URIs:`, `Suites:`, `Components:` split by blank lines. */
export function parseDeb822Sources(text: string, file = "debian.sources"): AptSource[] {
  const sources: AptSource[] = [];
  let fields = new Map<string, string>();
  let last: string | undefined;
  const endStanza = () => {
    const words = (name: string) => (fields.get(name) ?? "").split(/\s+/).filter(Boolean);
    if (fields.size > 0 && !/^(no|false|0)$/i.test((fields.get("enabled") ?? "yes").trim())) {
      const options: Record<string, string> = {};
      for (const key of CARRIED_OPTIONS) {
        const value = fields.get(key)?.trim();
        // An inline key block (several lines) cannot be written into a one-line entry; apt's own keys then apply.
        if (value && !/\s/.test(value)) options[key] = value;
      }
      const source = {
        types: words("types"),
        uris: words("uris"),
        suites: words("suites"),
        components: words("components"),
        options,
        file,
      };
      if (source.types.length > 0 && source.uris.length > 0 && source.suites.length > 0) sources.push(source);
    }
    fields = new Map();
    last = undefined;
  };
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    if (line.trim() === "") {
      endStanza();
    } else if (/^\s/.test(line)) {
      // A continuation line; " ." stands for an empty line inside a multi-line value.
      if (last) fields.set(last, `${fields.get(last)}\n${line.trim() === "." ? "" : line.trim()}`);
    } else {
      const field = /^([^\s:]+):\s*(.*)$/.exec(line);
      if (!field) continue;
      last = (field[1] as string).toLowerCase();
      fields.set(last, (field[2] as string).trim());
    }
  }
  endStanza();
  return sources;
}

/**
 * Every source apt reads, in apt's order: `<aptDir>/sources.list`, then `<aptDir>/sources.list.d/*.list` and
 * `*.sources` by name. Missing or unreadable files are skipped: the caller only needs the ones that exist.
 */
export async function readAptSources(aptDir: string = DEFAULT_APT_DIR): Promise<AptSource[]> {
  const files = [join(aptDir, "sources.list")];
  const partsDir = join(aptDir, "sources.list.d");
  const parts = await readdir(partsDir).catch(() => [] as string[]);
  for (const name of parts.sort()) {
    if (name.endsWith(".list") || name.endsWith(".sources")) files.push(join(partsDir, name));
  }
  const sources: AptSource[] = [];
  for (const file of files) {
    const text = await readFile(file, "utf8").catch(() => undefined);
    if (text === undefined) continue;
    sources.push(
      ...(file.endsWith(".sources") ? parseDeb822Sources(text, file) : parseSourcesList(text, file)),
    );
  }
  return sources;
}

/** True for a Debian release suite (`bookworm`, `stable`), false for `bookworm-security`, `bookworm-updates`, etc. */
export function isDebianReleaseSuite(suite: string): boolean {
  return DEBIAN_SUITES.has(suite);
}

/**
 * The sources.list lines for Debian trixie's main component, one per mirror of the Debian release sources (binary
 * packages with a `main` component, not security or updates) in `sources`, to be tried in order; empty when there
 * is none. Apt's order is kept, except that URIs whose path ends in `/debian` (how Debian's mirrors and the proxies
 * in front of them are laid out) come first: a vendor's repository may also name a Debian release as its suite.
 */
export function trixieSourceLines(sources: AptSource[]): string[] {
  const lines: { line: string; debianPath: boolean }[] = [];
  for (const source of sources) {
    if (!source.types.includes("deb") || !source.components.includes("main")) continue;
    if (!source.suites.some(isDebianReleaseSuite)) continue;
    const options = Object.entries(source.options).map(([k, v]) => `${k}=${v}`);
    const optionText = options.length > 0 ? `[${options.join(" ")}] ` : "";
    for (const uri of source.uris) {
      if (uri.startsWith("cdrom:")) continue;
      const line = `deb ${optionText}${uri} ${NATS_SERVER_DEBIAN_SUITE} main`;
      if (lines.some((l) => l.line === line)) continue;
      lines.push({ line, debianPath: /\/debian\/?$/.test(uri) });
    }
  }
  return [...lines.filter((l) => l.debianPath), ...lines.filter((l) => !l.debianPath)].map((l) => l.line);
}
