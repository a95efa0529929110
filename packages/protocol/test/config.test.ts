import { describe, expect, it } from "vitest";
import { ClusterConfig, clusterNames, defineConfig, ModelVersion } from "../src/mod.js";

describe("cluster config", () => {
  it("fills defaults", () => {
    expect(defineConfig({}).cluster).toEqual({
      name: "sy",
      dataDir: ".switchyard",
      host: "127.0.0.1",
      natsPort: 4222,
      httpPort: 8080,
      syncAlways: false,
      nodeThreads: null,
      auth: true,
      dataRoots: [],
      replication: 1,
    });
  });

  it("takes a replication from 1 to 5 and refuses others, naming the field", () => {
    expect(defineConfig({ cluster: { replication: 3 } }).cluster.replication).toBe(3);
    for (const replication of [0, 6, 2.5]) {
      const r = ClusterConfig.safeParse({ cluster: { replication } });
      expect(r.success).toBe(false);
      expect(r.error?.issues.map((i) => i.path.join("."))).toEqual(["cluster.replication"]);
    }
  });

  it("rejects unknown keys, naming them", () => {
    const r = ClusterConfig.safeParse({ cluster: { natsport: 1 } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/natsport/);
    expect(ClusterConfig.safeParse({ clusters: {} }).success).toBe(false);
  });

  it("rejects ports out of range", () => {
    expect(() => defineConfig({ cluster: { natsPort: 70000 } })).toThrow();
  });
});

describe("registry records", () => {
  it("reject unknown keys", () => {
    const v = {
      name: "m",
      version: 1,
      flavor: "onnx",
      entry: "model.onnx",
      signature: null,
      artifacts: [],
      source: "/tmp/m.onnx",
      created_at: 1,
    };
    expect(ModelVersion.safeParse(v).success).toBe(true);
    expect(ModelVersion.safeParse({ ...v, extra: 1 }).success).toBe(false);
    expect(ModelVersion.safeParse({ ...v, flavor: "pickle" }).success).toBe(false);
  });
});

describe("cluster names", () => {
  it("prefixes every bucket, stream and subject", () => {
    const n = clusterNames("prod");
    expect(n.buckets.models).toBe("prod_models");
    expect(n.buckets.artifacts).toBe("prod_artifacts");
    expect(n.streams.batch).toBe("PROD_BATCH");
    expect(n.subjects.invoke("my-endpoint")).toBe("prod.invoke.my-endpoint");
    expect(n.subjects.served("ep", "c.s.m-3")).toBe("prod.rt.ep.c_s_m-3");
  });

  it("refuses names that cannot prefix a bucket", () => {
    expect(() => clusterNames("Prod")).toThrow(/cluster name 'Prod' is invalid/);
    expect(() => clusterNames("a_b")).toThrow();
  });
});
