// What `endpoints create|update` send, from their `--config` and `--name` as the Databricks CLI spells them.
// It must never guess: a value that fits none of the forms, or two names that disagree, is refused by name.

import { readFile } from "node:fs/promises";
import { SwitchyardError } from "@switchyard/protocol";

type Json = Record<string, unknown>;

const invalid = (message: string) => new SwitchyardError("INVALID_PARAMETER_VALUE", message);

/** Parses JSON text that must be an object; `what` names the source in the error. */
export function parseJsonObject(text: string, what: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalid(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(`${what} must be a JSON object, not ${Array.isArray(value) ? "an array" : String(value)}`);
  }
  return value as Json;
}

/** Reads a file holding a JSON object; `flag` names the option in the error, `hint` is added to it. */
export async function readJsonFile(file: string, flag: string, hint = ""): Promise<Json> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw invalid(`${flag}: cannot read '${file}'${hint}: ${(err as Error).message}`);
  }
  return parseJsonObject(text, `${flag} '${file}'`);
}

/**
 * The JSON object a `--config` value stands for: inline JSON when it starts with `{`, the file after the `@`
 * when it starts with `@`, else a file path.
 */
export async function parseConfigOption(value: string, flag = "--config"): Promise<Json> {
  const text = value.trim();
  if (text.startsWith("{")) return parseJsonObject(text, `${flag} (inline JSON)`);
  if (text.startsWith("@")) {
    const file = text.slice(1);
    if (!file) throw invalid(`${flag} @: expected a file name after '@', as in ${flag} @endpoint.json`);
    return readJsonFile(file, flag);
  }
  if (!text) {
    throw invalid(`${flag} is empty: expected inline JSON ({…}), @file, or a file path`);
  }
  return readJsonFile(text, flag, " (a value not starting with '{' or '@' is a file path)");
}

/** A whole create body (`{"name", "config": {…}}`) rather than the config part (`{"served_entities": …}`). */
function isCreateBody(value: Json): boolean {
  return "config" in value;
}

/** The name a whole create body carries, checked against the one given as `nameSource` (`--name`). */
function nameOfBody(
  body: Json,
  flagName: string | undefined,
  flag: string,
  nameSource = "--name",
): string | undefined {
  if (body.name === undefined) return flagName;
  if (typeof body.name !== "string") {
    throw invalid(`${flag}: "name" must be a string, not ${JSON.stringify(body.name)}`);
  }
  if (flagName !== undefined && flagName !== body.name) {
    throw invalid(
      `the endpoint name is given twice, differently: '${flagName}' (${nameSource}) and '${body.name}' (the "name" in ${flag})`,
    );
  }
  return body.name;
}

function checkConfigPart(config: Json, flag: string): void {
  if ("name" in config) {
    throw invalid(
      `${flag} has a "name" but no "config": give the config part ({"served_entities": …} or {"served_models": …}) ` +
        `or a whole create body ({"name": …, "config": {…}})`,
    );
  }
}

/** The Databricks create body from `--config` (a config part or a whole create body) and `--name`. */
export function createBody(config: Json, name: string | undefined, flag = "--config"): Json {
  if (isCreateBody(config)) {
    const bodyName = nameOfBody(config, name, flag);
    if (bodyName === undefined) {
      throw invalid(`no endpoint name: give --name, or "name" in the create body of ${flag}`);
    }
    return { ...config, name: bodyName };
  }
  checkConfigPart(config, flag);
  if (name === undefined) {
    throw invalid(`no endpoint name: give --name (${flag} holds only the config part)`);
  }
  return { name, config };
}

/** The endpoint name of `update`, from its argument and/or `--name`. */
export function updateName(argument: string | undefined, flagName: string | undefined): string {
  if (argument !== undefined && flagName !== undefined && argument !== flagName) {
    throw invalid(
      `the endpoint name is given twice, differently: '${argument}' (argument) and '${flagName}' (--name)`,
    );
  }
  const name = argument ?? flagName;
  if (name === undefined) throw invalid("no endpoint name: give it as the argument or with --name");
  return name;
}

/**
 * The config part `update` sends (the Databricks PUT …/config body) from `--config`, for endpoint `name`,
 * which came from `nameSource` (the argument or `--name`).
 */
export function updateConfig(config: Json, name: string, flag = "--config", nameSource = "--name"): Json {
  if (isCreateBody(config)) {
    nameOfBody(config, name, flag, nameSource);
    const part = config.config;
    if (part === null || typeof part !== "object" || Array.isArray(part)) {
      throw invalid(`${flag}: "config" must be a JSON object`);
    }
    return part as Json;
  }
  checkConfigPart(config, flag);
  return config;
}
