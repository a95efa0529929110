// The model registry: registered models, versions and aliases in KV `<cluster>_models`, files in object store
// `<cluster>_artifacts` (key layout in keys.ts). A version exists once its record is written, never before:
// artifacts are uploaded first and deleted again if anything fails before that record is committed.
import { mkdir } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve as resolvePath } from "node:path";
import type { KV } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  casUpdate,
  followReplication,
  openBucket,
  type ReplicationSetting,
  readAll,
  readValue,
  whileClusterSettles,
} from "@switchyard/nats";
import {
  type Artifact,
  assertAlias,
  assertModelName,
  type ClusterNames,
  clusterNames,
  type ModelRef,
  ModelVersion,
  notFound,
  parseModelUri,
  parseVersion,
  RegisteredModel,
  SwitchyardError,
} from "@switchyard/protocol";
import { downloadVerified, localCopyMatches, readVerified, uploadFile } from "./artifacts.js";
import { keys, objectPrefix } from "./keys.js";

export interface RegistryOptions {
  /** Cluster name (default `sy`): buckets are `<cluster>_models` and `<cluster>_artifacts`. */
  cluster?: string;
  /**
   * The replica count of the object store when this creates it, and the one an existing store is brought to;
   * without it a new store has one replica and an existing one is left as it is (clients and replicas).
   */
  replication?: ReplicationSetting;
}

/** A version's record before the registry gives it a number and artifacts. */
export type VersionDraft = Omit<ModelVersion, "name" | "version" | "artifacts" | "created_at">;

/** A file to store as an artifact: its path inside the version ('/'-separated) and where it is on disk. */
export interface LocalFile {
  path: string;
  abs: string;
}

export class Registry {
  private constructor(
    private readonly kv: KV,
    private readonly os: ObjectStore,
    readonly names: ClusterNames,
  ) {}

  /** Opens the registry of a cluster, creating its KV bucket and object store if missing. */
  static async open(nc: NatsConnection, opts: RegistryOptions = {}): Promise<Registry> {
    const names = clusterNames(opts.cluster);
    const replicas = opts.replication?.replicas;
    const [kv, os] = await Promise.all([
      openBucket(nc, names, "models"),
      whileClusterSettles(() => new Objm(nc).create(names.buckets.artifacts, replicas ? { replicas } : {})),
    ]);
    if (opts.replication) await followReplication(nc, `OBJ_${names.buckets.artifacts}`, opts.replication);
    return new Registry(kv, os, names);
  }

  /**
   * Stores local files as the next version of `name`: uploads every file (digests computed on the way), allocates
   * the version number with compare-and-set, then writes the version record — the commit point. Concurrent
   * callers get distinct consecutive versions; on any failure before the commit the uploads are deleted again.
   * Reading and checking a model's files is ingestion's job (`@switchyard/ingest`), not this one's.
   */
  async addVersion(name: string, draft: VersionDraft, files: readonly LocalFile[]): Promise<ModelVersion> {
    assertModelName(name);
    const prefix = objectPrefix(name);
    const uploaded: string[] = [];
    let committed = false;
    try {
      const artifacts: Artifact[] = [];
      for (const file of files) {
        const object = prefix + file.path;
        uploaded.push(object);
        const { digest, size } = await this.upload(object, file.abs, file.path);
        artifacts.push({ path: file.path, digest, size, object });
      }
      const now = Date.now();
      const { value: model, revision } = await this.mutateModel(name, (cur) =>
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
        ...draft,
        name,
        version: model.latest_version,
        artifacts,
        created_at: now,
      } satisfies ModelVersion);
      await this.commitVersion(version, model, revision);
      committed = true;
      return version;
    } finally {
      if (!committed) await Promise.all(uploaded.map((o) => this.os.delete(o).catch(() => undefined)));
    }
  }

  async listModels(): Promise<RegisteredModel[]> {
    const models = (await readAll(this.kv, keys.allModels, RegisteredModel, "registered model")).map(
      (r) => r.value,
    );
    return models.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async getModel(name: string): Promise<RegisteredModel> {
    assertModelName(name);
    const model = await readValue(this.kv, keys.model(name), RegisteredModel, "registered model");
    if (!model) throw notFound(`model '${name}' does not exist`);
    return model.value;
  }

  /** All committed versions of a model, ascending. */
  async listVersions(name: string): Promise<ModelVersion[]> {
    await this.getModel(name);
    const versions = (await readAll(this.kv, keys.versionsOf(name), ModelVersion, "model version")).map(
      (r) => r.value,
    );
    return versions.sort((a, b) => a.version - b.version);
  }

  async getVersion(name: string, version: number): Promise<ModelVersion> {
    assertModelName(name);
    const n = parseVersion(version);
    const found = await readValue(this.kv, keys.version(name, n), ModelVersion, "model version");
    if (found) return found.value;
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
          const found = await readValue(
            this.kv,
            keys.version(ref.name, model.latest_version),
            ModelVersion,
            "model version",
          );
          if (found) return found.value;
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
    const { value: model } = await this.mutateModel(name, (cur) => {
      if (!cur) throw notFound(`model '${name}' does not exist`);
      return { ...cur, aliases: { ...cur.aliases, [alias]: n }, updated_at: Date.now() };
    });
    return model;
  }

  async deleteAlias(name: string, alias: string): Promise<RegisteredModel> {
    assertModelName(name);
    assertAlias(alias);
    const { value: model } = await this.mutateModel(name, (cur) => {
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
      const landed = await readValue(this.kv, key, ModelVersion, "model version").catch(() => null);
      if (landed && landed.value.artifacts[0]?.object === v.artifacts[0]?.object) return;
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

  /** Read-modify-write of a registered model (compare-and-set; `change` may throw to abort). */
  private mutateModel(name: string, change: (current: RegisteredModel | null) => RegisteredModel) {
    return casUpdate(this.kv, keys.model(name), RegisteredModel, change, { what: `model '${name}'` });
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
