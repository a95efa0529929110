// The declarative sections of cluster.config.ts: the API's schemas under config paths, alias targets that must
// be declared versions, unique names, and problem paths written as in the file.
import { describe, expect, it } from "vitest";
import { ClusterConfig, issuePath } from "../src/mod.js";

const problems = (input: unknown) => {
  const r = ClusterConfig.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${issuePath(i.path)}: ${i.message}`);
};

describe("declarative sections", () => {
  it("accepts the issue's example and leaves undeclared sections absent", () => {
    const config = ClusterConfig.parse({
      cluster: { name: "sy" },
      models: {
        "catalog.schema.fraud": {
          versions: [{ path: "./models/fraud-v1.onnx" }, { path: "./models/fraud-v2", flavor: "custom" }],
          aliases: { champion: "./models/fraud-v1.onnx", challenger: "./models/fraud-v2" },
        },
      },
      endpoints: [
        {
          name: "fraud",
          config: {
            served_entities: [
              { entity_name: "catalog.schema.fraud", entity_version: "@champion", workload_size: "Small" },
            ],
          },
        },
      ],
    });
    expect(config.models?.["catalog.schema.fraud"]?.versions).toEqual([
      { path: "./models/fraud-v1.onnx", flavor: "onnx" },
      { path: "./models/fraud-v2", flavor: "custom" },
    ]);
    expect(config.streams).toBeUndefined();
    expect(config.schedules).toBeUndefined();
  });

  it("names every problem with its path as written in the file", () => {
    expect(
      problems({
        models: {
          "bad name!": {
            versions: [{ path: "./a.onnx" }],
            aliases: { champion: "./b.onnx", latest: "./a.onnx" },
          },
        },
        endpoints: [
          {
            name: "e",
            config: { served_entities: [{ entity_name: "m", entity_version: "1", workload_size: "Tiny" }] },
          },
          { name: "e", config: {} },
        ],
        streams: [{ name: "s", model: "models:/m/1" }],
        schedules: [{ name: "n", cron: "0 2 * * *", job: { model: "models:/m/1", input: "in" } }],
      }),
    ).toEqual([
      `models["bad name!"].aliases.champion: './b.onnx' is not one of this model's versions (expected one of: ./a.onnx)`,
      `models["bad name!"].aliases.latest: 'latest' is not an alias: expected 1-63 letters, digits, '_' or '-', not 'latest' or 'v<number>'`,
      `models["bad name!"]: 'bad name!' is not a model name (one to three parts of letters, digits, '_' or '-', joined by '.')`,
      `endpoints[0].config.served_entities[0].workload_size: Invalid option: expected one of "Small"|"Medium"|"Large"`,
      "endpoints[1].name: 'e' is declared twice",
      "streams[0].source_stream: expected exactly one of source_stream, source_dir (where the events come from), got none",
      "streams[0].sink_subject: expected exactly one of sink_subject, sink_dir (where the results go), got none",
      "schedules[0].job.output: Invalid input: expected string, received undefined",
    ]);
  });

  it("writes paths as people do", () => {
    expect(issuePath(["endpoints", 0, "config", "served_entities", 2, "workload_size"])).toBe(
      "endpoints[0].config.served_entities[2].workload_size",
    );
    expect(issuePath(["models", "catalog.schema.fraud", "versions", 1, "path"])).toBe(
      'models["catalog.schema.fraud"].versions[1].path',
    );
    expect(issuePath([])).toBe("(root)");
  });
});
