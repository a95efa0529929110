// The sections of `cluster.config.ts` that `switchyard apply` reconciles with a running cluster: models to
// register, endpoints, stream jobs and batch schedules. Each is validated with the schema its API takes, so a
// body that works with the API works here. Adding a section is one schema here and one planner in the CLI.
// config.ts spreads DECLARATIVE_SECTIONS into ClusterConfig; this module never imports config.ts.
import { z } from "zod";
import { parseScopes } from "./access.js";
import { BatchJobRequest } from "./batch.js";
import { parseDurationMs } from "./duration.js";
import { CreateEndpointRequest } from "./endpoint.js";
import { Flavor } from "./model.js";
import { isModelName, isResourceName } from "./names.js";
import { StreamJobRequest } from "./stream.js";

const ALIAS = /^[A-Za-z0-9_-]{1,63}$/;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Cross-field checks run even when a field inside already failed (zod skips them then by default), so a file
 * with several problems has every one named at once. They read the value defensively for that reason.
 */
const always = (shape: (v: unknown) => boolean) => ({ when: (p: { value: unknown }) => shape(p.value) });

/** One version to register: an `.onnx` file, an MLflow directory, or a custom model directory (relative to the file). */
export const DeclaredVersion = z
  .object({
    path: z.string().min(1),
    flavor: Flavor.default("onnx"),
    /** `custom` only: the entry module inside the directory. */
    entry: z.string().min(1).optional(),
    description: z.string().optional(),
  })
  .strict();
export type DeclaredVersion = z.infer<typeof DeclaredVersion>;

/** A model: its versions (identified by their artifact's digest) and aliases naming a version's path. */
export const DeclaredModel = z
  .object({
    versions: z.array(DeclaredVersion).min(1),
    aliases: z.record(z.string(), z.string().min(1)).default({}),
  })
  .strict()
  .superRefine((m, ctx) => {
    const versions: unknown[] = Array.isArray(m.versions) ? m.versions : [];
    const paths = new Set(
      versions.map((v) => (isRecord(v) ? v.path : undefined)).filter((p) => typeof p === "string"),
    );
    for (const [alias, target] of Object.entries(isRecord(m.aliases) ? m.aliases : {})) {
      if (!ALIAS.test(alias) || /^v\d+$/i.test(alias) || alias === "latest") {
        ctx.addIssue({
          code: "custom",
          path: ["aliases", alias],
          message: `'${alias}' is not an alias: expected 1-63 letters, digits, '_' or '-', not 'latest' or 'v<number>'`,
        });
      }
      if (!paths.has(target)) {
        ctx.addIssue({
          code: "custom",
          path: ["aliases", alias],
          message: `'${target}' is not one of this model's versions (expected one of: ${[...paths].join(", ")})`,
        });
      }
    }
  }, always(isRecord));
export type DeclaredModel = z.infer<typeof DeclaredModel>;

export const DeclaredModels = z.record(z.string(), DeclaredModel).superRefine((models, ctx) => {
  for (const name of Object.keys(models)) {
    if (!isModelName(name)) {
      ctx.addIssue({
        code: "custom",
        path: [name],
        message: `'${name}' is not a model name (one to three parts of letters, digits, '_' or '-', joined by '.')`,
      });
    }
  }
}, always(isRecord));

/** A batch schedule: the body of `schedules.create` (cron and tz are checked by the coordinator too). */
export const DeclaredSchedule = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,63}$/, "expected 1-63 letters, digits, '_' or '-'"),
    cron: z.string().min(1),
    tz: z.string().min(1).optional(),
    job: BatchJobRequest,
  })
  .strict();
export type DeclaredSchedule = z.input<typeof DeclaredSchedule>;

/**
 * A bearer token's name and scopes (never its secret: apply prints a new token once). `ttl` counts from the
 * token's creation; a token that exists keeps its expiry.
 */
export const DeclaredToken = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.@+-]{1,128}$/, "expected 1-128 letters, digits, '_', '.', '@', '+' or '-'"),
    scopes: z
      .array(z.string())
      .min(1)
      .superRefine((scopes, ctx) => {
        try {
          parseScopes(scopes, "scopes");
        } catch (err) {
          ctx.addIssue({ code: "custom", message: (err as Error).message.replace(/^scopes: /, "") });
        }
      }),
    ttl: z
      .string()
      .refine((t) => (parseDurationMs(t) ?? 0) > 0, "expected a duration such as 30d, 12h, 10m or 90s")
      .optional(),
  })
  .strict();
export type DeclaredToken = z.infer<typeof DeclaredToken>;

/** A NATS user for an external client: the endpoints it may invoke (names, or `*` alone for every endpoint). */
export const DeclaredNatsUser = z
  .object({
    name: z.string().refine(isResourceName, "expected 1-63 letters, digits, '_' or '-'"),
    endpoints: z
      .array(z.string())
      .min(1)
      .superRefine((list, ctx) => {
        list.forEach((e, i) => {
          if (e === "*" ? list.length > 1 : !isResourceName(e)) {
            ctx.addIssue({
              code: "custom",
              path: [i],
              message:
                e === "*"
                  ? "'*' already means every endpoint; give it alone"
                  : `'${e}' is not an endpoint name (1-63 letters, digits, '_' or '-'; NATS permissions cannot enforce globs)`,
            });
          }
        });
      }),
  })
  .strict();
export type DeclaredNatsUser = z.infer<typeof DeclaredNatsUser>;

/** A list of named objects whose names must be unique. */
function named<T extends z.ZodType>(item: T) {
  return z.array(item).superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((x, i) => {
      const name = isRecord(x) ? x.name : undefined;
      if (typeof name !== "string") return;
      if (seen.has(name))
        ctx.addIssue({ code: "custom", path: [i, "name"], message: `'${name}' is declared twice` });
      seen.add(name);
    });
  }, always(Array.isArray));
}

/**
 * The sections `switchyard apply` reconciles. Each is optional: a section the file leaves out is left alone
 * (and never pruned), so a file that manages only endpoints cannot delete the cluster's stream jobs.
 */
export const DECLARATIVE_SECTIONS = {
  models: DeclaredModels.optional(),
  /** The Databricks create body (`{name, config, …}`), as `POST /api/2.0/serving-endpoints` takes it. */
  endpoints: named(CreateEndpointRequest).optional(),
  /** Stream job bodies, as `switchyard stream create` and `POST /api/2.0/switchyard/streams` take them. */
  streams: named(StreamJobRequest).optional(),
  schedules: named(DeclaredSchedule).optional(),
  /** Bearer tokens by name; --prune revokes only tokens apply created. */
  tokens: named(DeclaredToken).optional(),
  /** NATS users of a cluster `switchyard up` runs (its data dir); --prune deletes only users apply created. */
  users: named(DeclaredNatsUser).optional(),
};

/** The kinds a plan has entries for, in the order they are applied (prune deletes in reverse). */
export const APPLY_KINDS = [
  "model_version",
  "alias",
  "endpoint",
  "stream",
  "schedule",
  "token",
  "user",
] as const;
export type ApplyKind = (typeof APPLY_KINDS)[number];

/** A zod issue's path as people write it: `endpoints[0].config.served_entities[0].workload_size`. */
export function issuePath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (typeof p === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || "(root)";
}
