// The realtime messages on `sy.rt.<endpoint>.<served>`: what a router asks a replica and what it answers.
// Envelope fields are strict zod; the data (Frame or Tensor[]) is checked structurally, never copied.
import { z } from "zod";
import { type ErrorBody, isErrorCode, SwitchyardError } from "./errors.js";
import { Frame } from "./frame.js";
import type { Payload } from "./mlflow.js";
import { isResourceName } from "./names.js";
import { tensorProblem } from "./tensor.js";

/** Why `value` is not a Payload (a Frame, or a list of well-formed tensors), or null. */
export function payloadProblem(value: unknown): string | null {
  if (value instanceof Frame) return null;
  if (!Array.isArray(value)) return "must be a Frame or a list of tensors";
  const names = new Set<string>();
  for (let i = 0; i < value.length; i++) {
    const problem = tensorProblem(value[i], `tensor ${i}`);
    if (problem) return problem;
    const name = (value[i] as { name: string }).name;
    if (names.has(name)) return `tensor '${name}' appears twice`;
    names.add(name);
  }
  return null;
}

export const PayloadSchema = z.custom<Payload>().superRefine((value, ctx) => {
  const problem = payloadProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

const name = z.string().refine(isResourceName, "must be 1-63 letters, digits, '_' or '-'");
const micros = z.number().int().nonnegative();

export const InferenceRequest = z
  .object({
    request_id: z.string().min(1),
    endpoint: name,
    served_model: name,
    /** Epoch milliseconds after which the replica drops the request instead of running it. */
    deadline_ms: z.number().int().positive(),
    input: PayloadSchema,
    params: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type InferenceRequest = z.infer<typeof InferenceRequest>;

export const ReplyError = z
  .object({
    error_code: z.string().refine(isErrorCode, "must be a code from the error catalog"),
    message: z.string(),
  })
  .strict();

export const InferenceReply = z.union([
  z
    .object({
      request_id: z.string().min(1),
      output: PayloadSchema,
      /** Time queued in the replica before its batch ran, and the batch's model time. */
      timings: z.object({ queue_us: micros, compute_us: micros }).strict(),
      /** Rows in the batch this request ran in (≥ its own rows). */
      batch_size: z.number().int().positive(),
    })
    .strict(),
  z.object({ request_id: z.string().min(1), error: ReplyError }).strict(),
]);
export type InferenceReply = z.infer<typeof InferenceReply>;
export type InferenceSuccess = Extract<InferenceReply, { output: Payload }>;

function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  throw new SwitchyardError("BAD_REQUEST", `invalid ${what}: ${path}${issue?.message ?? "malformed"}`);
}

/** Validates a decoded request; a malformed one → BAD_REQUEST naming the field. */
export const parseInferenceRequest = (value: unknown): InferenceRequest =>
  parseWith(InferenceRequest, value, "inference request");

export const parseInferenceReply = (value: unknown): InferenceReply =>
  parseWith(InferenceReply, value, "inference reply");

/** An error reply; unexpected errors become INTERNAL_ERROR without their message. */
export function errorReply(requestId: string, err: unknown): InferenceReply {
  const body: ErrorBody = SwitchyardError.from(err).toBody();
  return { request_id: requestId, error: body };
}

/** The outputs of a reply, or its error rebuilt as a SwitchyardError and thrown. */
export function replyOutput(reply: InferenceReply): InferenceSuccess {
  if ("error" in reply) throw SwitchyardError.fromBody(reply.error);
  return reply;
}
