// Moves artifact bytes between disk and the object store, hashing everything that passes. Reads are checked
// against the digest in OUR version record, so an object replaced with other (self-consistent) bytes is refused.
import { createHash, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ObjectStore } from "@nats-io/obj";
import { type Artifact, type ModelVersion, SwitchyardError } from "@switchyard/protocol";

const hex = (digest: string) => digest.replace(/^sha256:/, "");
const label = (v: ModelVersion, a: Artifact) => `artifact ${a.path} of models:/${v.name}/${v.version}`;

function corrupted(v: ModelVersion, a: Artifact, found: string): SwitchyardError {
  return new SwitchyardError(
    "INTEGRITY_ERROR",
    `${label(v, a)} is corrupted: sha256 ${hex(a.digest)} expected, ${found} found`,
  );
}

/** Uploads a local file as `object`, returning the digest and size of exactly the bytes sent. */
export async function uploadFile(
  os: ObjectStore,
  object: string,
  abs: string,
): Promise<{ digest: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  const counted = (Readable.toWeb(createReadStream(abs)) as ReadableStream<Uint8Array>).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hash.update(chunk);
        size += chunk.length;
        controller.enqueue(chunk);
      },
    }),
  );
  await os.put({ name: object }, counted);
  return { digest: `sha256:${hash.digest("hex")}`, size };
}

/** Streams an artifact's object into `sink` while hashing it; rejects with INTEGRITY_ERROR on any mismatch. */
async function streamVerified(os: ObjectStore, v: ModelVersion, a: Artifact, sink: Writable): Promise<void> {
  let result: Awaited<ReturnType<ObjectStore["get"]>>;
  try {
    result = await os.get(a.object);
  } catch (err) {
    throw new SwitchyardError("INTEGRITY_ERROR", `${label(v, a)} cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!result) {
    throw new SwitchyardError(
      "INTEGRITY_ERROR",
      `${label(v, a)} is missing from the object store (object '${a.object}')`,
    );
  }
  const hash = createHash("sha256");
  const hashing = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      controller.enqueue(chunk);
    },
  });
  try {
    await Promise.all([
      pipeline(
        Readable.fromWeb(result.data.pipeThrough(hashing) as import("node:stream/web").ReadableStream),
        sink,
      ),
      result.error.then((err) => {
        if (err) throw err;
      }),
    ]);
  } catch (err) {
    // nats verifies its own digest of the object; a failure there is corruption too.
    throw new SwitchyardError(
      "INTEGRITY_ERROR",
      `${label(v, a)} is corrupted: ${firstLine((err as Error).message)}`,
      {
        cause: err,
      },
    );
  }
  const found = hash.digest("hex");
  if (found !== hex(a.digest)) throw corrupted(v, a, found);
}

/** The artifact's bytes, verified against the version record. */
export async function readVerified(os: ObjectStore, v: ModelVersion, a: Artifact): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await streamVerified(
    os,
    v,
    a,
    new Writable({
      write(chunk: Uint8Array, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(chunks);
}

/** Downloads to a temp file next to `target`, verifies, then renames; a failed download leaves no file. */
export async function downloadVerified(
  os: ObjectStore,
  v: ModelVersion,
  a: Artifact,
  target: string,
): Promise<void> {
  const tmp = `${target}.partial-${randomUUID()}`;
  try {
    await streamVerified(os, v, a, createWriteStream(tmp));
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Whether `path` already holds exactly the artifact's bytes (so a download can be skipped). */
export async function localCopyMatches(path: string, a: Artifact): Promise<boolean> {
  const info = await stat(path).catch(() => null);
  if (!info?.isFile() || info.size !== a.size) return false;
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex") === hex(a.digest);
}

const firstLine = (s: string) => s.split("\n", 1)[0] ?? s;
