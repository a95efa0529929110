// Creating an endpoint through a bridge's Databricks API and waiting for it to serve, as a user's client does.
import { eventually } from "@switchyard/testkit";
import { expect } from "vitest";

/** POSTs an endpoint serving version 1 of `model` (expects 200), then waits until its state is READY. */
export async function createReadyEndpoint(
  bridge: string,
  name: string,
  model: string,
  headers: Record<string, string> = {},
  ms = 90_000,
): Promise<void> {
  const created = await fetch(`${bridge}/api/2.0/serving-endpoints`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({
      name,
      config: { served_entities: [{ entity_name: model, entity_version: "1", workload_size: "Small" }] },
    }),
  });
  expect(created.status, await created.clone().text()).toBe(200);
  await eventually(
    async () => {
      const r = await fetch(`${bridge}/api/2.0/serving-endpoints/${name}`, { headers });
      const body = (await r.json()) as { state?: { ready?: string } };
      return body.state?.ready === "READY" ? true : undefined;
    },
    `${name} READY`,
    ms,
  );
}
