// The replica's wire contract (docs/realtime.md): request bodies (MLflow JSON, CSV, msgpack, OIP v2) → model
// feeds, and outputs/errors → replies in the request's own family. No zod here: this runs per request.

import { Frame, type Payload, payloadProblem, type Tensor } from "@switchyard/data";
import { decode, decodeJsonOrMsgpack, encode } from "@switchyard/data/codec";
import {
  bodyToModelBatch,
  type ModelBatch,
  oipResponse,
  type Params,
  parseCsv,
  parseJsonBody,
  parseOipRequest,
  predictionsJson,
  toModelBatch,
} from "@switchyard/formats";
import {
  CSV_TYPE,
  deeperThan,
  type ErrorBody,
  invalid,
  JSON_TYPE,
  MAX_PARAMS_DEPTH,
  MSGPACK,
  type Signature,
  SwitchyardError,
} from "@switchyard/protocol";

/** How a reply is written: MLflow JSON `{"predictions"}`, OIP v2 JSON, or msgpack `{output}`. */
export type ReplyFamily = "mlflow" | "oip" | "msgpack";

export interface DecodedRequest {
  family: ReplyFamily;
  /** ONNX models: feeds in signature order (empty for custom models). */
  feeds: Tensor[];
  /** Custom models: the frame `predict` gets (null for ONNX models). */
  frame: Frame | null;
  params: Params;
  /** OIP only: the request's `id` and its requested outputs (null: all). */
  oipId?: string | undefined;
  oipOutputs?: string[] | null;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

/** The reply family to use for an error before (or without) decoding the body. */
export function familyOf(contentType: string, format: string): ReplyFamily {
  if (format === "oip") return "oip";
  return contentType.includes("msgpack") ? "msgpack" : "mlflow";
}

/**
 * Decodes one request into feeds for `signature`, or (`frames`, custom models) into the Frame `predict` gets,
 * checked against the signature when there is one. Throws SwitchyardErrors users can act on.
 */
export function decodeRequest(
  data: Uint8Array,
  contentType: string,
  format: string,
  signature: Signature | null,
  frames = false,
): DecodedRequest {
  const model = { signature, frames };
  const prepare = (input: Payload) => parts(toModelBatch(input, model));
  if (format === "oip") {
    const req = parseOipRequest(data);
    if (req.outputs && signature) {
      for (const name of req.outputs) {
        if (!signature.outputs.some((o) => o.name === name)) {
          throw invalid(
            `requested output '${name}' does not exist; the model's outputs are: ${signature.outputs.map((o) => o.name).join(", ")}`,
          );
        }
      }
    }
    return {
      family: "oip",
      ...prepare(req.inputs),
      params: req.params,
      oipId: req.id,
      oipOutputs: req.outputs,
    };
  }
  if (format !== "" && format !== "mlflow") {
    throw new SwitchyardError(
      "BAD_REQUEST",
      `unknown x-switchyard-format '${format}'; expected 'mlflow' or 'oip'`,
    );
  }
  const type = contentType.toLowerCase();
  if (type.startsWith(JSON_TYPE) || type.includes("+json")) {
    const { batch, params } = bodyToModelBatch(parseJsonBody(data), model);
    return { family: "mlflow", ...parts(batch), params };
  }
  if (type.startsWith(CSV_TYPE)) return { family: "mlflow", ...prepare(parseCsv(data)), params: {} };
  if (type.startsWith(MSGPACK)) return decodeMsgpack(decode(data, { copy: true }), prepare);
  if (type === "") {
    // A raw client that sent no content type: JSON if it looks like JSON, msgpack otherwise.
    const { format: wire, value } = decodeJsonOrMsgpack(data);
    if (wire === "msgpack") return decodeMsgpack(value, prepare);
    const { batch, params } = bodyToModelBatch(value, model);
    return { family: "mlflow", ...parts(batch), params };
  }
  throw new SwitchyardError(
    "UNSUPPORTED_MEDIA_TYPE",
    `content type '${contentType}' is not supported; use ${JSON_TYPE}, ${CSV_TYPE} or ${MSGPACK}`,
  );
}

const parts = (batch: ModelBatch): Pick<DecodedRequest, "feeds" | "frame"> =>
  batch instanceof Frame ? { feeds: [], frame: batch } : { feeds: batch, frame: null };

function decodeMsgpack(
  value: unknown,
  prepare: (input: Payload) => Pick<DecodedRequest, "feeds" | "frame">,
): DecodedRequest {
  if (!isObject(value))
    throw new SwitchyardError("BAD_REQUEST", "a msgpack request must be a map {input, params}");
  const problem = payloadProblem(value.input);
  if (problem) throw new SwitchyardError("BAD_REQUEST", `invalid msgpack request: input ${problem}`);
  const params = value.params;
  if (params !== undefined && params !== null && !isObject(params)) {
    throw new SwitchyardError("BAD_REQUEST", "invalid msgpack request: params must be a map");
  }
  if (deeperThan(params, MAX_PARAMS_DEPTH)) {
    throw new SwitchyardError(
      "BAD_REQUEST",
      `invalid msgpack request: params nest deeper than ${MAX_PARAMS_DEPTH} levels, the most allowed`,
    );
  }
  return {
    family: "msgpack",
    ...prepare(value.input as Payload),
    params: (params ?? {}) as Params,
  };
}

const utf8 = new TextEncoder();

export interface ReplyIdentity {
  modelName: string;
  modelVersion: number;
  requestId: string;
}

/** The success body of one request's outputs. */
export function encodeReply(
  family: ReplyFamily,
  outputs: Tensor[],
  req: DecodedRequest,
  who: ReplyIdentity,
): Uint8Array {
  switch (family) {
    case "msgpack":
      return encode({ output: outputs });
    case "oip":
      return utf8.encode(
        JSON.stringify(
          oipResponse({
            modelName: who.modelName,
            modelVersion: who.modelVersion,
            id: req.oipId ?? who.requestId,
            outputs,
            requested: req.oipOutputs ?? null,
          }),
        ),
      );
    default:
      return utf8.encode(predictionsJson(outputs));
  }
}

/** The error body: `{"error_code","message"}` as JSON, or msgpack for msgpack requests. */
export function encodeError(family: ReplyFamily, body: ErrorBody): Uint8Array {
  return family === "msgpack" ? encode(body) : utf8.encode(JSON.stringify(body));
}
