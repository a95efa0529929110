// nats-server users and their permissions, rendered into the `authorization {}` block of a separate file
// the main config includes: rewriting that file and sending SIGHUP changes who may connect and what they
// may touch without restarting the server (reload also closes the connections of users that disappeared).
import { chmod, rename, writeFile } from "node:fs/promises";

/** One direction of nats-server 2.10 permissions: subjects (NATS wildcards) allowed and denied. */
export interface SubjectRules {
  allow?: string[];
  deny?: string[];
}

export interface NatsPermissions {
  publish?: SubjectRules;
  subscribe?: SubjectRules;
}

export interface NatsUser {
  user: string;
  /** Plain, or a bcrypt hash (`$2a$…`), which nats-server compares as such. */
  password: string;
  /** Absent: the user may publish and subscribe to everything. */
  permissions?: NatsPermissions;
}

/** The `authorization { users: [...] }` block, nats-server 2.10 syntax (JSON-quoted strings). */
export function renderAuthorization(users: readonly NatsUser[]): string {
  const q = (s: string) => JSON.stringify(s);
  const list = (xs: string[]) => `[${xs.map(q).join(", ")}]`;
  const rules = (name: string, r: SubjectRules | undefined): string[] => {
    if (!r || (!r.allow && !r.deny)) return [];
    const parts = [
      ...(r.allow ? [`allow: ${list(r.allow)}`] : []),
      ...(r.deny ? [`deny: ${list(r.deny)}`] : []),
    ];
    return [`${name}: { ${parts.join(", ")} }`];
  };
  const lines = [
    "# Written by Switchyard; rewritten whenever users change.",
    "authorization {",
    "  users: [",
  ];
  for (const u of users) {
    const perms = [
      ...rules("publish", u.permissions?.publish),
      ...rules("subscribe", u.permissions?.subscribe),
    ];
    const permissions = perms.length > 0 ? `, permissions: { ${perms.join(", ")} }` : "";
    lines.push(`    { user: ${q(u.user)}, password: ${q(u.password)}${permissions} }`);
  }
  lines.push("  ]", "}");
  return `${lines.join("\n")}\n`;
}

/** Writes the block whole then renames it (mode 0600: it holds passwords), so a reload never reads half a file. */
export async function writeAuthorizationFile(file: string, users: readonly NatsUser[]): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, renderAuthorization(users), { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** Asks a running nats-server to re-read its config (and so its authorization file): SIGHUP. */
export function reloadNatsServer(pid: number): void {
  process.kill(pid, "SIGHUP");
}
