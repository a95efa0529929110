// The model registry: registered models, versions and aliases in KV `<cluster>_models`, files in object store
// `<cluster>_artifacts` (key layout in keys.ts). A version exists once its record is written, never before:
// artifacts are uploaded first and deleted again if anything fails before that record is committed.
import { mkdir } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve as resolvePath } from "node:path";
import type { KV, KvEntry } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type Artifact,
  assertAlias,
  assertModelName,
  type ClusterNames,
  clusterNames,
  type Flavor,
  invalid,
  listKeys,
  type ModelRef,
  ModelVersion,
  notFound,
  openBucket,
  parseModelUri,
  parseVersion,
  RegisteredModel,
  SwitchyardError,
} from "@switchyard/protocol";
import { downloadVerified, localCopyMatches, readVerified, uploadFile } from "./artifacts.js";
import { type CustomSource, readCustomSource } from "./custom.js";
import { keys, objectPrefix } from "./keys.js";
import { type ModelSource, readModelSource } from "./source.js";

export interface RegistryOptions {
  /** Cluster name (default `sy`): buckets are `<cluster>_models` and `<cluster>_artifacts`. */
  cluster?: string;
}

export interface RegisterOptions {
  /** Point this alias at the new version once it is committed. */
  alias?: string;
  description?: string;
  tags?: Record<string, string>;
  /**
   * `onnx` (default): an `.onnx` file or an MLflow directory. `custom`: a directory whose entry module
   * default-exports a class with `predict`; it is bundled with esbuild and stored with every file.
   */
  flavor?: Flavor;
  /** `custom` only: the entry module, relative to the directory (default: model.ts, model.js, index.ts, index.js). */
  entry?: string;
}

/** Compare-and-set retries before giving up with RESOURCE_CONFLICT; contention clears within a few. */
const CAS_ATTEMPTS = 100;

export class Registry {
  private constructor(
    private readonly kv: KV,
    private readonly os: ObjectStore,
    readonly names: ClusterNames,
  ) {}

  /** Opens the registry of a cluster, creating its KV bucket and object store if missing. */
  static async open(nc: NatsConnection, opts: RegistryOptions = {}): Promise<Registry> {
    const names = clusterNames(opts.cluster);
    const [kv, os] = await Promise.all([
      openBucket(nc, names, "models"),
      new Objm(nc).create(names.buckets.artifacts),
    ]);
    return new Registry(kv, os, names);
  }

  /**
   * Registers an `.onnx` file, an MLflow model directory, or (flavor `custom`) a custom model directory as the
   * next version of `name`. Concurrent registrations of one name get distinct consecutive versions.
   */
  async register(name: string, path: string, opts: RegisterOptions = {}): Promise<ModelVersion> {
    assertModelName(name);
    if (opts.alias !== undefined) assertAlias(opts.alias);
    const flavor = opts.flavor ?? "onnx";
    if (flavor !== "onnx" && flavor !== "custom") {
      throw invalid(`unknown flavor '${flavor}': expected 'onnx' or 'custom'`);
    }
    if (opts.entry !== undefined && flavor !== "custom") {
      throw invalid("an entry module (--entry) is only for the custom flavor");
    }
    const tags = opts.tags ?? {};
    for (const [k, v] of Object.entries(tags)) {
      if (typeof v !== "string") throw invalid(`tag '${k}' must be a string, got ${typeof v}`);
    }
    if (opts.description !== undefined && typeof opts.description !== "string") {
      throw invalid("description must be a string");
    }
    // Everything that can refuse the model (bundling, the import check, signatures) runs before any upload.
    const src: ModelSource | CustomSource =
      flavor === "custom" ? await readCustomSource(path, opts.entry) : await readModelSource(path);

    const prefix = objectPrefix(name);
    const uploaded: string[] = [];
    let committed = false;
    try {
      const artifacts: Artifact[] = [];
      for (const file of src.files) {
        const object = prefix + file.path;
        uploaded.push(object);
        const { digest, size } = await this.upload(object, file.abs, file.path);
        artifacts.push({ path: file.path, digest, size, object });
      }

      const now = Date.now();
      const { model, revision } = await this.mutateModel(name, (cur) =>
        cur
          ? { ...cur, latest_version: cur.latest_version + 1, updated_at: now }
          : {
              name,
              latest_version: 1,
              aliases: {},
              description: "",
              tags: {},
              created_at: now,
              updated_at: now,
            },
      );
      const version = ModelVersion.parse({
        name,
        version: model.latest_version,
        flavor,
        entry: src.entry,
        signature: src.signature,
        mlflow_signature: src.mlflowSignature,
        artifacts,
        source: src.source,
        description: opts.description ?? "",
        tags,
        created_at: now,
      } satisfies ModelVersion);
      await this.commitVersion(version, model, revision);
      committed = true;
      if (opts.alias !== undefined) await this.setAlias(name, opts.alias, version.version);
      return version;
    } finally {
      if (!committed) await Promise.all(uploaded.map((o) => this.os.delete(o).catch(() => undefined)));
      if ("cleanup" in src) await src.cleanup().catch(() => undefined);
    }
  }

  async listModels(): Promise<RegisteredModel[]> {
    const models = await this.readAll(keys.allModels, RegisteredModel, "registered model");
    return models.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async getModel(name: string): Promise<RegisteredModel> {
    assertModelName(name);
    const model = await this.readRecord(keys.model(name), RegisteredModel, "registered model");
    if (!model) throw notFound(`model '${name}' does not exist`);
    return model.record;
  }

  /** All committed versions of a model, ascending. */
  async listVersions(name: string): Promise<ModelVersion[]> {
    await this.getModel(name);
    const versions = await this.readAll(keys.versionsOf(name), ModelVersion, "model version");
    return versions.sort((a, b) => a.version - b.version);
  }

  async getVersion(name: string, version: number): Promise<ModelVersion> {
    assertModelName(name);
    const n = parseVersion(version);
    const found = await this.readRecord(keys.version(name, n), ModelVersion, "model version");
    if (found) return found.record;
    const model = await this.getModel(name);
    throw notFound(
      model.latest_version > 0
        ? `version ${n} of model '${name}' does not exist (latest is ${model.latest_version})`
        : `version ${n} of model '${name}' does not exist (it has no versions)`,
    );
  }

  /** `models:/n/3`, `models:/n@alias`, `models:/n/latest`, or a parsed reference. */
  async resolve(uriOrRef: string | ModelRef): Promise<ModelVersion> {
    const ref = typeof uriOrRef === "string" ? parseModelUri(uriOrRef) : uriOrRef;
    switch (ref.kind) {
      case "version":
        return this.getVersion(ref.name, ref.version);
      case "alias": {
        const model = await this.getModel(ref.name);
        const version = model.aliases[ref.alias];
        if (version === undefined) {
          const known = Object.keys(model.aliases);
          throw notFound(
            `alias '${ref.alias}' of model '${ref.name}' does not exist` +
              (known.length ? ` (aliases: ${known.join(", ")})` : " (it has no aliases)"),
          );
        }
        return this.getVersion(ref.name, version);
      }
      case "latest": {
        const model = await this.getModel(ref.name);
        if (model.latest_version > 0) {
          const found = await this.readRecord(
            keys.version(ref.name, model.latest_version),
            ModelVersion,
            "model version",
          );
          if (found) return found.record;
        }
        // latest_version is allocated before its record is committed (or a registration died in between):
        // the latest committed version is the highest one recorded.
        const last = (await this.listVersions(ref.name)).at(-1);
        if (!last) throw notFound(`model '${ref.name}' has no versions`);
        return last;
      }
    }
  }

  /** Points `alias` at `version` (which must exist); an alias that points elsewhere moves. */
  async setAlias(name: string, alias: string, version: number): Promise<RegisteredModel> {
    assertModelName(name);
    assertAlias(alias);
    const n = parseVersion(version);
    await this.getVersion(name, n);
    const { model } = await this.mutateModel(name, (cur) => {
      if (!cur) throw notFound(`model '${name}' does not exist`);
      return { ...cur, aliases: { ...cur.aliases, [alias]: n }, updated_at: Date.now() };
    });
    return model;
  }

  async deleteAlias(name: string, alias: string): Promise<RegisteredModel> {
    assertModelName(name);
    assertAlias(alias);
    const { model } = await this.mutateModel(name, (cur) => {
      if (!cur) throw notFound(`model '${name}' does not exist`);
      if (!Object.hasOwn(cur.aliases, alias))
        throw notFound(`alias '${alias}' of model '${name}' does not exist`);
      const { [alias]: _removed, ...aliases } = cur.aliases;
      return { ...cur, aliases, updated_at: Date.now() };
    });
    return model;
  }

  /** One artifact's bytes, verified against the version record's SHA-256. */
  async readArtifact(v: ModelVersion, path: string): Promise<Uint8Array> {
    return readVerified(this.os, v, artifactOf(v, path));
  }

  /**
   * Downloads every artifact of a version into `dir` (verified, written to a temp file then renamed) and returns
   * relative path → absolute path. A local file that already matches its digest is reused.
   */
  async fetchArtifacts(v: ModelVersion, dir: string): Promise<Record<string, string>> {
    const root = resolvePath(dir);
    await mkdir(root, { recursive: true });
    const out: Record<string, string> = {};
    for (const a of v.artifacts) {
      const target = resolvePath(root, ...a.path.split("/"));
      const rel = relative(root, target);
      if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
        throw new SwitchyardError(
          "INTEGRITY_ERROR",
          `artifact path '${a.path}' of models:/${v.name}/${v.version} escapes the model directory`,
        );
      }
      await mkdir(dirname(target), { recursive: true });
      if (!(await localCopyMatches(target, a))) await downloadVerified(this.os, v, a, target);
      out[a.path] = target;
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------------------

  private async upload(object: string, abs: string, path: string): Promise<{ digest: string; size: number }> {
    try {
      return await uploadFile(this.os, object, abs);
    } catch (err) {
      throw new SwitchyardError(
        "INTERNAL_ERROR",
        `uploading '${path}' to object store ${this.names.buckets.artifacts} failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /**
   * Writes the version record: the commit point of a registration. If the write fails (and did not in fact land,
   * as a timed-out publish may have), gives the allocated number back when no one has allocated after it.
   */
  private async commitVersion(v: ModelVersion, allocated: RegisteredModel, revision: number): Promise<void> {
    const key = keys.version(v.name, v.version);
    try {
      await this.kv.create(key, JSON.stringify(v));
      return;
    } catch (err) {
      const landed = await this.readRecord(key, ModelVersion, "model version").catch(() => null);
      if (landed && landed.record.artifacts[0]?.object === v.artifacts[0]?.object) return;
      try {
        if (allocated.latest_version === 1) {
          await this.kv.delete(keys.model(v.name), { previousSeq: revision });
        } else {
          const back = { ...allocated, latest_version: allocated.latest_version - 1 };
          await this.kv.update(keys.model(v.name), JSON.stringify(back), revision);
        }
      } catch {
        // Someone allocated after us: the number stays a gap, as a deleted version would.
      }
      throw err;
    }
  }

  /**
   * Read-modify-write of a registered model with compare-and-set on its KV revision (`create` when absent),
   * retried with jitter on the "wrong last sequence" conflict. `change` may throw to abort.
   */
  private async mutateModel(
    name: string,
    change: (current: RegisteredModel | null) => RegisteredModel,
  ): Promise<{ model: RegisteredModel; revision: number }> {
    const key = keys.model(name);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await this.readRecord(key, RegisteredModel, "registered model");
      const next = RegisteredModel.parse(change(current?.record ?? null));
      try {
        const revision = current
          ? await this.kv.update(key, JSON.stringify(next), current.revision)
          : await this.kv.create(key, JSON.stringify(next));
        return { model: next, revision };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        await sleep(Math.random() * Math.min(50, 2 + attempt * 2));
      }
    }
    throw new SwitchyardError(
      "RESOURCE_CONFLICT",
      `model '${name}' is being changed concurrently; gave up after ${CAS_ATTEMPTS} attempts, retry`,
    );
  }

  private async readRecord<T>(
    key: string,
    schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: Error } },
    what: string,
  ): Promise<{ record: T; revision: number } | null> {
    const entry = await this.kv.get(key);
    if (entry?.operation !== "PUT") return null;
    return { record: this.parseEntry(entry, schema, what), revision: entry.revision };
  }

  private async readAll<T>(
    filter: string,
    schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: Error } },
    what: string,
  ): Promise<T[]> {
    const found = await listKeys(this.kv, filter);
    const records = await Promise.all(found.map((key) => this.readRecord(key, schema, what)));
    return records.flatMap((r) => (r ? [r.record] : []));
  }

  private parseEntry<T>(
    entry: KvEntry,
    schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: Error } },
    what: string,
  ): T {
    let json: unknown;
    try {
      json = entry.json();
    } catch {
      json = undefined;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new SwitchyardError(
        "INTEGRITY_ERROR",
        `record '${entry.key}' in ${this.names.buckets.models} is not a valid ${what}: ${parsed.error.message}`,
      );
    }
    return parsed.data;
  }
}

function artifactOf(v: ModelVersion, path: string): Artifact {
  const a = v.artifacts.find((x) => x.path === path);
  if (!a) {
    throw notFound(
      `artifact '${path}' is not part of models:/${v.name}/${v.version} (artifacts: ${v.artifacts.map((x) => x.path).join(", ")})`,
    );
  }
  return a;
}

/** nats.js reports a failed compare-and-set as JetStream API error 10071 ("wrong last sequence"). */
function isCasConflict(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return (
    e?.code === 10071 ||
    e?.code === 10164 ||
    (typeof e?.message === "string" && /wrong last sequence/i.test(e.message))
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
