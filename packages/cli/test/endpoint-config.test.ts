// `endpoints create|update --config/--name` as the Databricks CLI spells them: inline JSON, @file or a path,
// the config part or a whole create body, and a name from --name, the argument or the body.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "@switchyard/testkit";
import { describe, expect, it } from "vitest";
import { createBody, parseConfigOption, updateConfig, updateName } from "../src/endpoint-config.js";

const CONFIG = {
  served_models: [{ model_name: "catalog.schema.my_model", model_version: "1", workload_size: "Small" }],
};
const BODY = { name: "my-endpoint", config: CONFIG };

describe("parseConfigOption", () => {
  const dir = tempDir("sy-cli-config-");
  const file = path.join(dir, "endpoint.json");
  writeFileSync(file, JSON.stringify(BODY));

  it("takes inline JSON when the value starts with {", async () => {
    expect(await parseConfigOption(JSON.stringify(CONFIG))).toEqual(CONFIG);
    expect(await parseConfigOption(`  ${JSON.stringify(BODY)}\n`)).toEqual(BODY);
  });

  it("reads the file after @, and a bare value as a file path", async () => {
    expect(await parseConfigOption(`@${file}`)).toEqual(BODY);
    expect(await parseConfigOption(file)).toEqual(BODY);
  });

  it("names the flag and what was expected when the value does not parse or cannot be read", async () => {
    await expect(parseConfigOption("{served_models: []}")).rejects.toThrow(
      /^--config \(inline JSON\) is not valid JSON: /,
    );
    await expect(parseConfigOption('{"a": 1} trailing')).rejects.toThrow(
      "--config (inline JSON) is not valid JSON",
    );
    await expect(parseConfigOption("@")).rejects.toThrow("--config @: expected a file name after '@'");
    await expect(parseConfigOption("")).rejects.toThrow(
      "--config is empty: expected inline JSON ({…}), @file, or a file path",
    );
    const missing = path.join(dir, "missing.json");
    await expect(parseConfigOption(`@${missing}`)).rejects.toThrow(
      `--config: cannot read '${missing}': ENOENT`,
    );
    await expect(parseConfigOption("[1, 2]")).rejects.toThrow(
      "--config: cannot read '[1, 2]' (a value not starting with '{' or '@' is a file path): ENOENT",
    );
    const array = path.join(dir, "array.json");
    writeFileSync(array, "[1, 2]");
    await expect(parseConfigOption(array)).rejects.toThrow(
      `--config '${array}' must be a JSON object, not an array`,
    );
    await expect(parseConfigOption(`@${array}`)).rejects.toMatchObject({ code: "INVALID_PARAMETER_VALUE" });
  });
});

describe("createBody", () => {
  it("wraps a config part with --name", () => {
    expect(createBody(CONFIG, "my-endpoint")).toEqual(BODY);
  });

  it("takes a whole create body, named by itself, by --name, or by both when they agree", () => {
    expect(createBody(BODY, undefined)).toEqual(BODY);
    expect(createBody(BODY, "my-endpoint")).toEqual(BODY);
    expect(createBody({ config: CONFIG }, "my-endpoint")).toEqual(BODY);
  });

  it("refuses a missing name, two different names, and a name beside a config part", () => {
    expect(() => createBody(CONFIG, undefined)).toThrow(
      "no endpoint name: give --name (--config holds only the config part)",
    );
    expect(() => createBody({ config: CONFIG }, undefined)).toThrow(
      'no endpoint name: give --name, or "name" in the create body of --config',
    );
    expect(() => createBody(BODY, "other")).toThrow(
      `the endpoint name is given twice, differently: 'other' (--name) and 'my-endpoint' (the "name" in --config)`,
    );
    expect(() => createBody({ ...BODY, name: 7 }, undefined)).toThrow(
      '--config: "name" must be a string, not 7',
    );
    expect(() => createBody({ name: "my-endpoint", ...CONFIG }, undefined)).toThrow(
      '--config has a "name" but no "config"',
    );
  });
});

describe("update's name and config", () => {
  it("takes the name from the argument, --name, or both when they agree", () => {
    expect(updateName("my-endpoint", undefined)).toBe("my-endpoint");
    expect(updateName(undefined, "my-endpoint")).toBe("my-endpoint");
    expect(updateName("my-endpoint", "my-endpoint")).toBe("my-endpoint");
    expect(() => updateName("a", "b")).toThrow(
      "the endpoint name is given twice, differently: 'a' (argument) and 'b' (--name)",
    );
    expect(() => updateName(undefined, undefined)).toThrow(
      "no endpoint name: give it as the argument or with --name",
    );
  });

  it("sends the config part, taken from a whole create body when given one", () => {
    expect(updateConfig(CONFIG, "my-endpoint")).toEqual(CONFIG);
    expect(updateConfig(BODY, "my-endpoint")).toEqual(CONFIG);
    expect(updateConfig({ config: CONFIG }, "my-endpoint")).toEqual(CONFIG);
    expect(() => updateConfig(BODY, "other", "--config", "argument")).toThrow(
      `the endpoint name is given twice, differently: 'other' (argument) and 'my-endpoint' (the "name" in --config)`,
    );
    expect(() => updateConfig({ name: "my-endpoint", config: [1] }, "my-endpoint")).toThrow(
      '--config: "config" must be a JSON object',
    );
  });
});
