// Open Inference Protocol v2 model metadata from the registry signature of the served model an endpoint
// routes to. Model versions are immutable, so their metadata is cached for the life of the bridge.
import type { NatsConnection } from "@nats-io/transport-node";
import { type OipTensorMetadata, oipTensorMetadata } from "@switchyard/formats";
import { type EndpointRoutes, type LiveRoute, type ModelVersion, notFound } from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";

export interface OipModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: OipTensorMetadata[];
  outputs: OipTensorMetadata[];
}

/** A positive integer version from the path, or RESOURCE_DOES_NOT_EXIST. */
export function parseOipVersion(endpoint: string, v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw notFound(`endpoint '${endpoint}' has no model version '${v}' (versions are positive integers)`);
  }
  return n;
}

/** The route a `/v2/models/{endpoint}[/versions/{v}]` path means: that version, or the largest share. */
export function oipRoute(routes: EndpointRoutes, version: number | undefined): LiveRoute {
  let best: LiveRoute | undefined;
  for (const r of routes.routes) {
    if (version !== undefined && r.model_version !== version) continue;
    if (!best || r.traffic_percentage > best.traffic_percentage) best = r;
  }
  if (!best) {
    throw notFound(
      `endpoint '${routes.endpoint}' serves no model version ${version} ` +
        `(serves: ${[...new Set(routes.routes.map((r) => r.model_version))].join(", ")})`,
    );
  }
  return best;
}

export class OipMetadata {
  private registry: Promise<Registry> | undefined;
  private readonly versions = new Map<string, Promise<ModelVersion>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly cluster: string,
  ) {}

  private version(name: string, version: number): Promise<ModelVersion> {
    const key = `${name}/${version}`;
    let found = this.versions.get(key);
    if (!found) {
      if (!this.registry) this.registry = Registry.open(this.nc, { cluster: this.cluster });
      const registry = this.registry;
      found = registry.then((r) => r.getVersion(name, version));
      this.versions.set(key, found);
      found.catch(() => this.versions.delete(key));
    }
    return found;
  }

  async metadata(routes: EndpointRoutes, version: number | undefined): Promise<OipModelMetadata> {
    const route = oipRoute(routes, version);
    const mv = await this.version(route.model_name, route.model_version);
    const versions = [...new Set(routes.routes.map((r) => r.model_version))].sort((a, b) => a - b);
    return {
      name: routes.endpoint,
      versions: versions.map(String),
      platform: mv.flavor === "onnx" ? "onnxruntime_onnx" : "switchyard_custom",
      inputs: (mv.signature?.inputs ?? []).map(oipTensorMetadata),
      outputs: (mv.signature?.outputs ?? []).map(oipTensorMetadata),
    };
  }
}
