// The `switchyard` command line: parses arguments, runs one command, turns errors into one line + exit code.

import { SwitchyardError } from "@switchyard/protocol";
import { Command, CommanderError } from "commander";
import { applyCommand } from "./commands/apply.js";
import { batchCommand } from "./commands/batch.js";
import { captureCommand } from "./commands/capture.js";
import type { GlobalOptions } from "./commands/context.js";
import { endpointsCommand } from "./commands/endpoints.js";
import { feedbackCommand } from "./commands/feedback.js";
import { modelsCommand } from "./commands/models.js";
import { roleCommands } from "./commands/roles.js";
import { streamCommand } from "./commands/stream.js";
import { tokensCommand } from "./commands/tokens.js";
import { upCommand } from "./commands/up.js";
import { usersCommand } from "./commands/users.js";

export function buildProgram(): Command {
  const program = new Command("switchyard")
    .description("Self-hosted model serving on NATS: realtime endpoints, batch and streaming scoring")
    .option(
      "--nats <url>",
      "NATS URL of the cluster (default: $SWITCHYARD_NATS_URL, else <data-dir>/cluster.json)",
    )
    .option("--creds <file>", "NATS credentials file (default: $SWITCHYARD_NATS_CREDS)")
    .option("--data-dir <dir>", "local cluster data dir (default: $SWITCHYARD_DATA_DIR or ./.switchyard)")
    .option("--cluster <name>", "cluster name prefix (default: sy)")
    .option("--json", "print JSON")
    .showHelpAfterError()
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  upCommand(program, () => globals().dataDir);
  modelsCommand(program, globals);
  endpointsCommand(program, globals);
  batchCommand(program, globals);
  captureCommand(program, globals);
  feedbackCommand(program, globals);
  streamCommand(program, globals);
  tokensCommand(program, globals);
  usersCommand(program, globals);
  roleCommands(program, globals);
  applyCommand(program, globals);
  for (const cmd of allCommands(program)) cmd.exitOverride();
  return program;
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((c) => [c, ...allCommands(c)]);
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    // A command that printed its result and still failed (a batch job that ended FAILED) sets exitCode.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? 0 : 2;
    }
    const json = program.opts<GlobalOptions>().json;
    if (err instanceof SwitchyardError) {
      process.stderr.write(json ? `${JSON.stringify(err.toBody())}\n` : `error: ${err.message}\n`);
    } else {
      process.stderr.write(
        json
          ? `${JSON.stringify({ error_code: "INTERNAL_ERROR", message: String((err as Error).message ?? err) })}\n`
          : `error: ${(err as Error).message ?? err}\n`,
      );
    }
    return 1;
  }
}
