// Databricks' permissions API for serving endpoints, so a script granting CAN_QUERY works unchanged:
// `GET|PUT|PATCH /api/2.0/permissions/serving-endpoints/{name}` with `{"access_control_list": [...]}` (PUT
// replaces, PATCH merges) and `GET …/permissionLevels`. Principals are token names (`tokens create --name`).
// The endpoint must exist; authz.ts has already checked the caller may manage it.
import type { EndpointsApi } from "@switchyard/client";
import { PERMISSION_LEVELS } from "@switchyard/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { type GrantStore, parseAccessControlList, type StoredGrant } from "./grants.js";

type NameParams = { name: string };

const DESCRIPTIONS: Record<(typeof PERMISSION_LEVELS)[number], string> = {
  CAN_VIEW: "Can view the endpoint, its state and its metrics",
  CAN_QUERY: "Can view and query the endpoint",
  CAN_MANAGE: "Can view, query, update, delete the endpoint and manage its permissions",
};

/** Databricks' answer: one entry per principal with `all_permissions`. */
function answer(id: string, grants: StoredGrant[]) {
  const byPrincipal = new Map<string, { field: string; principal: string; levels: string[] }>();
  for (const g of grants) {
    const key = `${g.principal_field}\u0000${g.principal}`;
    const entry = byPrincipal.get(key) ?? { field: g.principal_field, principal: g.principal, levels: [] };
    if (!entry.levels.includes(g.level)) entry.levels.push(g.level);
    byPrincipal.set(key, entry);
  }
  return {
    object_id: `/serving-endpoints/${id}`,
    object_type: "serving-endpoint",
    access_control_list: [...byPrincipal.values()].map((e) => ({
      [e.field]: e.principal,
      all_permissions: e.levels.map((permission_level) => ({ permission_level, inherited: false })),
    })),
  };
}

export function registerPermissionRoutes(
  app: FastifyInstance,
  o: { api: EndpointsApi; grants: GrantStore; jsonBody: (req: FastifyRequest) => Record<string, unknown> },
): void {
  const base = "/api/2.0/permissions/serving-endpoints/:name";
  /**
   * The endpoint by name, or by its id as Databricks' SDK sends it (`serving_endpoint_id`); RESOURCE_DOES_NOT_EXIST
   * as for any other route of a missing endpoint. By id only for callers who manage every endpoint: authz.ts
   * judged the path segment as a name.
   */
  const resolve = async (nameOrId: string): Promise<{ name: string; id: string }> => {
    try {
      const view = await o.api.get(nameOrId);
      return { name: nameOrId, id: String(view.id ?? nameOrId) };
    } catch (err) {
      const byId = (await o.api.list().catch(() => [])).find((v) => v.id === nameOrId);
      if (!byId) throw err;
      return { name: String(byId.name), id: nameOrId };
    }
  };

  app.get<{ Params: NameParams }>(base, async (req) => {
    const { name, id } = await resolve(req.params.name);
    return answer(id, o.grants.get(name));
  });
  for (const [method, mode] of [
    ["PUT", "replace"],
    ["PATCH", "merge"],
  ] as const) {
    app.route<{ Params: NameParams }>({
      method,
      url: base,
      handler: async (req) => {
        const grants = parseAccessControlList(o.jsonBody(req));
        const { name, id } = await resolve(req.params.name);
        return answer(id, await o.grants.write(name, grants, mode));
      },
    });
  }
  app.get<{ Params: NameParams }>(`${base}/permissionLevels`, async (req) => {
    await resolve(req.params.name);
    return {
      permission_levels: PERMISSION_LEVELS.map((permission_level) => ({
        permission_level,
        description: DESCRIPTIONS[permission_level],
      })),
    };
  });
}
