// Registry records as they are stored in KV `<cluster>_models`: registered models, versions, signatures,
// artifacts. Strict schemas: a record written by a newer Switchyard with unknown keys fails loudly.
import { z } from "zod";

/** Element types, named as onnxruntime names them. */
export const DTYPES = [
  "float32",
  "float64",
  "float16",
  "int8",
  "uint8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "uint64",
  "bool",
  "string",
] as const;
export const Dtype = z.enum(DTYPES);
export type Dtype = z.infer<typeof Dtype>;

/** One input or output of a model. Dimensions: a number when fixed, a string (symbolic) or -1 when dynamic. */
export const TensorSpec = z
  .object({
    name: z.string().min(1),
    dtype: Dtype,
    shape: z.array(z.union([z.number().int(), z.string()])).nullable(),
  })
  .strict();
export type TensorSpec = z.infer<typeof TensorSpec>;

export const Signature = z
  .object({
    inputs: z.array(TensorSpec),
    outputs: z.array(TensorSpec),
  })
  .strict();
export type Signature = z.infer<typeof Signature>;

/**
 * MLflow's own signature, kept as MLflow wrote it (each side a list of column or tensor specs), so a model
 * imported from an MLflow directory names its columns the way its authors did.
 */
export const MlflowSignature = z
  .object({
    inputs: z.array(z.record(z.string(), z.unknown())).nullable(),
    outputs: z.array(z.record(z.string(), z.unknown())).nullable(),
    params: z.array(z.record(z.string(), z.unknown())).nullable().default(null),
  })
  .strict();
export type MlflowSignature = z.infer<typeof MlflowSignature>;

export const Flavor = z.enum(["onnx", "custom"]);
export type Flavor = z.infer<typeof Flavor>;

export const Artifact = z
  .object({
    /** Path relative to the model directory, '/'-separated. */
    path: z.string().min(1),
    /** `sha256:<hex>` of the content; loading verifies it. */
    digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
    size: z.number().int().nonnegative(),
    /** Object name in the artifacts object store. */
    object: z.string().min(1),
  })
  .strict();
export type Artifact = z.infer<typeof Artifact>;

export const ModelVersion = z
  .object({
    name: z.string(),
    version: z.number().int().positive(),
    flavor: Flavor,
    /** The artifact the flavor loads first: the ONNX file, or the custom model's bundle. */
    entry: z.string().min(1),
    signature: Signature.nullable(),
    mlflow_signature: MlflowSignature.nullable().default(null),
    artifacts: z.array(Artifact),
    /** Where it was registered from (a local path or URI), for people reading `models get`. */
    source: z.string(),
    /**
     * `sha256:<hex>` of what was registered (the file, or a directory's files in a stable order), so
     * `switchyard apply` finds the version a file already is instead of registering it again.
     */
    source_digest: z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/)
      .optional(),
    description: z.string().default(""),
    tags: z.record(z.string(), z.string()).default({}),
    created_at: z.number().int(),
  })
  .strict();
export type ModelVersion = z.infer<typeof ModelVersion>;

export const RegisteredModel = z
  .object({
    name: z.string(),
    latest_version: z.number().int().nonnegative(),
    aliases: z.record(z.string(), z.number().int().positive()).default({}),
    description: z.string().default(""),
    tags: z.record(z.string(), z.string()).default({}),
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .strict();
export type RegisteredModel = z.infer<typeof RegisteredModel>;
