// `switchyard feedback <endpoint> --file labels.jsonl`: labels for requests an endpoint served (one
// `{"request_id","label"}` object per line), checked whole first — every bad line is reported by number and
// nothing is sent — then sent in chunks to the feedback stream, where the coordinators join them to captures.
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { EndpointsApi, FeedbackApi } from "@switchyard/client";
import {
  clusterNames,
  type FeedbackLabel,
  invalid,
  FeedbackLabel as LabelSchema,
} from "@switchyard/protocol";
import type { Command } from "commander";
import { type GlobalOptions, withConnection } from "./context.js";

/** Labels sent per call. */
const CHUNK = 1_000;
/** Bad lines listed in the error at most. */
const SHOWN_PROBLEMS = 20;

/** Every label of a JSONL file; throws listing bad lines (`line N: field: message`) when any is bad. */
export async function readLabels(file: string): Promise<FeedbackLabel[]> {
  const labels: FeedbackLabel[] = [];
  const problems: string[] = [];
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  try {
    for await (const line of lines) {
      n++;
      if (line.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        problems.push(`line ${n}: not valid JSON`);
        continue;
      }
      const parsed = LabelSchema.safeParse(value);
      if (parsed.success) labels.push(parsed.data);
      else {
        for (const issue of parsed.error.issues) {
          problems.push(`line ${n}: ${issue.path.map(String).join(".") || "line"}: ${issue.message}`);
        }
      }
    }
  } catch (err) {
    throw invalid(`--file: cannot read '${file}': ${(err as Error).message}`);
  }
  if (problems.length > 0) {
    const more = problems.length > SHOWN_PROBLEMS ? `; and ${problems.length - SHOWN_PROBLEMS} more` : "";
    throw invalid(
      `${file}: ${problems.slice(0, SHOWN_PROBLEMS).join("; ")}${more} ` +
        '(expected one {"request_id": "…", "label": …} object per line; nothing was sent)',
    );
  }
  return labels;
}

export function feedbackCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command("feedback")
    .description("send labels for an endpoint's requests (by x-request-id) to measure its live accuracy")
    .argument("<endpoint>", "endpoint name")
    .requiredOption("--file <labels.jsonl>", 'one {"request_id": "…", "label": …} object per line')
    .action(async (endpoint: string, flags: { file: string }) => {
      const labels = await readLabels(flags.file);
      await withConnection(globals(), async (nc, target, out) => {
        const names = clusterNames(target.cluster);
        const feedback = new FeedbackApi(nc, names, new EndpointsApi(nc, names));
        let accepted = 0;
        for (let i = 0; i < labels.length; i += CHUNK) {
          accepted += (await feedback.send(endpoint, labels.slice(i, i + CHUNK))).accepted;
          if (!out.json && labels.length > CHUNK) process.stderr.write(`${accepted}/${labels.length} sent\n`);
        }
        out.print(
          `${accepted} label${accepted === 1 ? "" : "s"} accepted for ${endpoint}; ` +
            `'switchyard endpoints metrics ${endpoint}' shows the accuracy once they are joined`,
          { endpoint, accepted },
        );
      });
    });
}
