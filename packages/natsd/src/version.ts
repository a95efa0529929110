// Parses and compares nats-server versions so every caller agrees on what "new enough" means.
// Pure: it never runs a binary or touches the file system.

/** A nats-server release number, e.g. 2.10.27. */
export interface NatsServerVersion {
  major: number;
  minor: number;
  patch: number;
  /** As printed, without the leading "v", e.g. "2.10.27" or "2.11.0-RC.1". */
  text: string;
}

/**
 * 2.9 lacks `jetstream { sync_interval }` and 2.9.10 (Debian bookworm's) has a known
 * authentication bypass, so nothing older than 2.10.0 is ever used.
 */
export const MIN_NATS_SERVER_VERSION: NatsServerVersion = { major: 2, minor: 10, patch: 0, text: "2.10.0" };

const VERSION_PATTERN = /v?(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.-]+)?/;

/**
 * Reads the version from `nats-server --version` output ("nats-server: v2.10.27") or from a bare
 * version ("2.10.27", "v2.10.27"). Returns undefined when there is no version in the text.
 */
export function parseNatsServerVersion(text: string): NatsServerVersion | undefined {
  const m = VERSION_PATTERN.exec(text);
  if (!m) return undefined;
  const [, major, minor, patch, suffix] = m;
  return {
    major: Number(major),
    minor: Number(minor),
    patch: Number(patch),
    text: `${major}.${minor}.${patch}${suffix ?? ""}`,
  };
}

/** Orders by major, minor, patch; pre-release suffixes are ignored (a 2.10.0 RC counts as 2.10.0). */
export function compareNatsServerVersions(a: NatsServerVersion, b: NatsServerVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

export function isSupportedNatsServerVersion(v: NatsServerVersion): boolean {
  return compareNatsServerVersions(v, MIN_NATS_SERVER_VERSION) >= 0;
}
