// Config problems: a field and what was wrong with it, all reported together. Its own module so that the
// endpoint config and the sections it embeds (the canary's `rollout`) can share it without importing each other.
import type { z } from "zod";

/** A problem found while validating a config; all are reported together. */
export interface ConfigProblem {
  field: string;
  message: string;
}

/** zod issues as problems whose field is the dotted path under `prefix`. */
export function zodProblems(err: z.ZodError, prefix: string): ConfigProblem[] {
  return err.issues.map((i) => ({
    field: [prefix, ...i.path.map(String)].filter(Boolean).join("."),
    message: i.message,
  }));
}
