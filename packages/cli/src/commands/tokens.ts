// `switchyard tokens …`: bearer tokens of the HTTP bridge. Only hashes are stored; a new token is shown once.

import { TOKEN_SCOPES, type TokenScope, TokenStore } from "@switchyard/bridge";
import { SwitchyardError } from "@switchyard/protocol";
import type { Command } from "commander";
import { table, when } from "../output.js";
import { type GlobalOptions, withConnection } from "./context.js";

export function tokensCommand(program: Command, globals: () => GlobalOptions): void {
  const tokens = program.command("tokens").description("bearer tokens of the HTTP bridge");

  tokens
    .command("create")
    .option("--scope <scope>", `one of ${TOKEN_SCOPES.join(", ")}`, "admin")
    .action(async (opts: { scope: string }) => {
      if (!(TOKEN_SCOPES as readonly string[]).includes(opts.scope)) {
        throw new SwitchyardError(
          "INVALID_PARAMETER_VALUE",
          `--scope: expected one of ${TOKEN_SCOPES.join(", ")}, got '${opts.scope}'`,
        );
      }
      await withConnection(globals(), async (nc, target, out) => {
        const store = await TokenStore.open(nc, { cluster: target.cluster });
        try {
          const t = await store.createToken(opts.scope as TokenScope);
          out.print(`${t.token}\n(id ${t.id}; shown once — keep it somewhere safe)`, t);
        } finally {
          store.close();
        }
      });
    });

  tokens.command("list").action(async () => {
    await withConnection(globals(), async (nc, target, out) => {
      const store = await TokenStore.open(nc, { cluster: target.cluster });
      try {
        const all = store.list();
        out.print(
          table(
            ["ID", "SCOPE", "CREATED"],
            all.map((t) => [t.id, t.scope, when(t.created_at)]),
          ),
          all,
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
        const store = await TokenStore.open(nc, { cluster: target.cluster });
        try {
          await store.revoke(id);
          out.print(`revoked token ${id}`, { id });
        } finally {
          store.close();
        }
      });
    });
}
