// The baseline users compare Switchyard with: a hand-written Fastify 5 + onnxruntime-node server, one
// `session.run` per request, no batching, logger off. It answers MLflow `dataframe_split` bodies on the
// Databricks invocation path with `{"predictions": [...]}` (an [N, 1] output flattened to N values).
//   node bench/dist/baseline/fastify-onnx.js --model <file.onnx> --port <port>   (0: any free port)
// Threads: `intraOpNumThreads: 1`, the setting the realtime issue measured this server with (ORT's default of
// one spinning intra-op thread per core fights the event loop for the same 2 cores on small models).
// onnxruntime-node runs `session.run` synchronously on the main thread (behind a setImmediate), so requests
// queue on the event loop.
import { parseArgs } from "node:util";
import Fastify from "fastify";
import * as ort from "onnxruntime-node";

const { values } = parseArgs({
  options: { model: { type: "string" }, port: { type: "string", default: "0" } },
});
if (!values.model) throw new Error("usage: fastify-onnx --model <file.onnx> [--port <port>]");

const session = await ort.InferenceSession.create(values.model, { intraOpNumThreads: 1 });
const [inputName] = session.inputNames;
const [outputName] = session.outputNames;

interface Body {
  dataframe_split?: { columns?: string[]; data?: number[][] };
}

const app = Fastify({ logger: false });
app.post<{ Body: Body; Params: { name: string } }>(
  "/serving-endpoints/:name/invocations",
  async (req, reply) => {
    const data = req.body?.dataframe_split?.data;
    if (!Array.isArray(data) || data.length === 0 || !Array.isArray(data[0])) {
      return reply
        .code(400)
        .send({ error_code: "BAD_REQUEST", message: "expected dataframe_split.data rows" });
    }
    const cols = data[0].length;
    const x = new Float32Array(data.length * cols);
    for (let r = 0; r < data.length; r++) {
      const row = data[r]!;
      if (row.length !== cols)
        return reply.code(400).send({ error_code: "BAD_REQUEST", message: "ragged rows" });
      for (let c = 0; c < cols; c++) x[r * cols + c] = row[c]!;
    }
    const out = await session.run({ [inputName!]: new ort.Tensor("float32", x, [data.length, cols]) });
    const y = out[outputName!]!;
    const values = Array.from(y.data as Float32Array);
    const width = y.dims.length > 1 ? Number(y.dims[1]) : 1;
    const predictions =
      width === 1
        ? values
        : Array.from({ length: data.length }, (_, r) => values.slice(r * width, (r + 1) * width));
    return { predictions };
  },
);

await app.listen({ host: "127.0.0.1", port: Number(values.port) });
const address = app.server.address();
console.log(
  JSON.stringify({ port: typeof address === "object" && address ? address.port : Number(values.port) }),
);
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => app.close().then(() => process.exit(0)));
