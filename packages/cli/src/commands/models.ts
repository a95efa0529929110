// `switchyard models …`: register ONNX files, MLflow directories and custom models, list them, and move aliases.

import { registerModel } from "@switchyard/ingest";
import type { Flavor, ModelVersion, RegisteredModel, TensorSpec } from "@switchyard/protocol";
import { formatModelRef, parseVersion } from "@switchyard/protocol";
import type { Command } from "commander";
import { table, when } from "../output.js";
import { type GlobalOptions, withRegistry } from "./context.js";

const spec = (t: TensorSpec) => `${t.name}: ${t.dtype}[${(t.shape ?? ["?"]).join(", ")}]`;
const uriOf = (v: ModelVersion) => formatModelRef({ name: v.name, kind: "version", version: v.version });

function aliasesOf(model: RegisteredModel, version: number): string[] {
  return Object.entries(model.aliases)
    .filter(([, v]) => v === version)
    .map(([a]) => `@${a}`);
}

function describeVersion(v: ModelVersion, model: RegisteredModel): string {
  const lines = [
    `${uriOf(v)}`,
    `  flavor:    ${v.flavor}`,
    `  aliases:   ${aliasesOf(model, v.version).join(" ") || "-"}`,
    `  created:   ${when(v.created_at)}`,
    `  source:    ${v.source}`,
    `  entry:     ${v.entry}`,
  ];
  if (v.signature) {
    lines.push("  inputs:");
    for (const i of v.signature.inputs) lines.push(`    ${spec(i)}`);
    lines.push("  outputs:");
    for (const o of v.signature.outputs) lines.push(`    ${spec(o)}`);
  }
  lines.push("  artifacts:");
  for (const a of v.artifacts) lines.push(`    ${a.path}  ${a.size} bytes  ${a.digest}`);
  return lines.join("\n");
}

export function modelsCommand(program: Command, globals: () => GlobalOptions): void {
  const models = program.command("models").description("the model registry: versions and aliases");

  models
    .command("register")
    .description(
      "register an .onnx file, an MLflow model directory, or a custom model directory (--flavor custom) as a new version",
    )
    .argument("<name>", "model name, e.g. fraud or catalog.schema.fraud")
    .argument("<path>", "an .onnx file, a directory with an MLmodel file, or a custom model directory")
    .option(
      "--flavor <flavor>",
      "onnx, or custom: a TypeScript/JavaScript class bundled with esbuild",
      "onnx",
    )
    .option(
      "--entry <file>",
      "custom flavor: the entry module (default: model.ts, model.js, index.ts, index.js)",
    )
    .option("--alias <alias>", "point this alias (e.g. champion) at the new version")
    .option("--description <text>", "a description kept with the version")
    .action(
      async (
        name: string,
        file: string,
        opts: { alias?: string; description?: string; flavor: string; entry?: string },
      ) => {
        await withRegistry(globals(), async (registry, out) => {
          const v = await registerModel(registry, name, file, {
            alias: opts.alias,
            description: opts.description,
            flavor: opts.flavor as Flavor,
            ...(opts.entry !== undefined ? { entry: opts.entry } : {}),
          });
          const sig = v.signature
            ? `, ${v.signature.inputs.length} input(s), ${v.signature.outputs.length} output(s)`
            : "";
          out.print(`Registered ${uriOf(v)} (${v.flavor}${sig})${opts.alias ? ` as @${opts.alias}` : ""}`, v);
        });
      },
    );

  models
    .command("list")
    .description("list registered models")
    .action(async () => {
      await withRegistry(globals(), async (registry, out) => {
        const all = await registry.listModels();
        const rows = all.map((m) => [
          m.name,
          m.latest_version,
          Object.entries(m.aliases)
            .map(([a, v]) => `@${a}=${v}`)
            .join(" ") || "-",
          when(m.updated_at),
        ]);
        out.print(
          all.length ? table(["NAME", "LATEST", "ALIASES", "UPDATED"], rows) : "no models registered",
          all,
        );
      });
    });

  models
    .command("versions")
    .description("list the versions of a model")
    .argument("<name>", "model name")
    .action(async (name: string) => {
      await withRegistry(globals(), async (registry, out) => {
        const model = await registry.getModel(name);
        const versions = await registry.listVersions(name);
        const rows = versions.map((v) => [
          v.version,
          v.flavor,
          aliasesOf(model, v.version).join(" ") || "-",
          when(v.created_at),
          v.artifacts.find((a) => a.path === v.entry)?.digest.slice(0, 19) ?? "-",
        ]);
        out.print(table(["VERSION", "FLAVOR", "ALIASES", "CREATED", "DIGEST"], rows), versions);
      });
    });

  models
    .command("get")
    .description("show one version: flavor, signature, artifacts with digests and sizes")
    .argument("<uri>", "models:/<name>/<version>, models:/<name>@<alias> or models:/<name>/latest")
    .action(async (uri: string) => {
      await withRegistry(globals(), async (registry, out) => {
        const v = await registry.resolve(uri);
        const model = await registry.getModel(v.name);
        out.print(describeVersion(v, model), {
          ...v,
          aliases: aliasesOf(model, v.version).map((a) => a.slice(1)),
        });
      });
    });

  const alias = models
    .command("alias")
    .description("set or delete aliases such as @champion and @challenger");
  alias
    .command("set")
    .argument("<name>", "model name")
    .argument("<alias>", "alias, e.g. champion")
    .argument("<version>", "version number")
    .action(async (name: string, a: string, version: string) => {
      await withRegistry(globals(), async (registry, out) => {
        const model = await registry.setAlias(name, a, parseVersion(version, "<version>"));
        out.print(`models:/${name}@${a} -> version ${model.aliases[a]}`, model);
      });
    });
  alias
    .command("delete")
    .argument("<name>", "model name")
    .argument("<alias>", "alias")
    .action(async (name: string, a: string) => {
      await withRegistry(globals(), async (registry, out) => {
        const model = await registry.deleteAlias(name, a);
        out.print(`deleted alias @${a} of ${name}`, model);
      });
    });
}
