// `switchyard tokens …`: bearer tokens of the HTTP bridge. Only hashes are stored; a new token is shown once.

import { type TokenRecord, TokenStore } from "@switchyard/bridge";
import { invalid, parseDurationMs, parseScopes, SCOPE_FORMS } from "@switchyard/protocol";
import type { Command } from "commander";
import { table, when } from "../output.js";
import { type GlobalOptions, withConnection } from "./context.js";

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** What `tokens list --json` shows of a record: never a secret or a hash. */
function listed(t: TokenRecord) {
  return {
    id: t.id,
    name: t.name ?? null,
    scopes: t.scopes,
    created: iso(t.created_at),
    expires: iso(t.expires_at),
    last_used: iso(t.last_used_at),
  };
}

export function tokensCommand(program: Command, globals: () => GlobalOptions): void {
  const tokens = program.command("tokens").description("bearer tokens of the HTTP bridge");

  tokens
    .command("create")
    .description("create a token and print it once")
    .requiredOption("--scope <scopes>", `comma-separated: ${SCOPE_FORMS.join(", ")}`)
    .option("--ttl <duration>", "lifetime such as 30d, 12h, 90s (default: no expiry)")
    .option("--name <name>", "the principal Databricks permission grants name (user_name and the like)")
    .action(async (opts: { scope: string; ttl?: string; name?: string }) => {
      const scopes = parseScopes(opts.scope, "--scope");
      let ttlMs: number | undefined;
      if (opts.ttl !== undefined) {
        ttlMs = parseDurationMs(opts.ttl);
        if (!ttlMs)
          throw invalid(`--ttl: expected a duration such as 30d, 12h, 10m or 90s, got '${opts.ttl}'`);
      }
      await withConnection(globals(), async (nc, target, out) => {
        const store = await TokenStore.open(nc, { cluster: target.cluster, follow: false });
        try {
          const t = await store.createToken({ scopes, name: opts.name, ttlMs });
          const expires = iso(t.expires_at);
          out.print(
            `${t.token}\n(id ${t.id}; scopes ${t.scopes.join(",")}; expires ${expires ?? "never"}; shown once — keep it somewhere safe)`,
            { id: t.id, token: t.token, scopes: t.scopes, expires },
          );
        } finally {
          store.close();
        }
      });
    });

  tokens
    .command("list")
    .description("tokens of the cluster (never their secrets)")
    .action(async () => {
      await withConnection(globals(), async (nc, target, out) => {
        const store = await TokenStore.open(nc, { cluster: target.cluster, follow: false });
        try {
          const all = store.list();
          out.print(
            table(
              ["ID", "NAME", "SCOPES", "EXPIRES", "LAST USED"],
              all.map((t) => [
                t.id,
                t.name ?? "-",
                t.scopes.join(","),
                t.expires_at === undefined ? "never" : when(t.expires_at),
                t.last_used_at === undefined ? "never" : when(t.last_used_at),
              ]),
            ),
            all.map(listed),
          );
        } finally {
          store.close();
        }
      });
    });

  tokens
    .command("revoke")
    .argument("<id>", "token id (from `tokens list`)")
    .action(async (id: string) => {
      await withConnection(globals(), async (nc, target, out) => {
        const store = await TokenStore.open(nc, { cluster: target.cluster, follow: false });
        try {
          await store.revoke(id);
          out.print(`revoked token ${id}`, { id });
        } finally {
          store.close();
        }
      });
    });
}
