// Loads onnxruntime into a process before its first model: the native library and ORT's process-wide environment,
// which the first session of a process pays for (~70 ms here) and every later session — in any worker thread of the
// process — reuses. A warm spare calls it, so its replica's threads create their sessions in a few ms.

/** y = 1·x + 0 (float32 [batch, 1]): `buildLinear({ inputs: 1, weights: [1], bias: [0], inputName: "x",
 * outputName: "y" })` from @switchyard/testkit, kept as bytes so the runtime needs no model builder. */
const TINY_MODEL =
  "CAgSGHN3aXRjaHlhcmQtdGVzdC1maXh0dXJlcxoBMTqEAQoaCgF4CgFXCgFCEgF5GgZHZW1tX3kiBEdlbW0SEWxpbmVhcl9yZWdyZXNzaW9uKg8KAgEBEAFCAVdKBAAAgD8qDgoBARABQgFCSgQAAAAAWhgKAXgSEwoRCAESDQoHEgViYXRjaAoCCAFiGAoBeRITChEIARINCgcSBWJhdGNoCgIIAUIECgAQDQ==";

/** Creates and releases one session of a one-weight model: afterwards ORT is initialised in this process. */
export async function preloadOnnxRuntime(): Promise<void> {
  const { default: ort } = await import("onnxruntime-node");
  const session = await ort.InferenceSession.create(Buffer.from(TINY_MODEL, "base64"), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
  });
  await session.release();
}
