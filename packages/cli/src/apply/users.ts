// NATS users of the local cluster, by name: the declared endpoints against the stored ones. An update rewrites
// the user's permissions (its password stays) and reloads nats-server; a created user's password is shown
// once. --prune deletes only users apply created.
import type { DeclaredNatsUser } from "@switchyard/protocol";
import {
  createNatsUser,
  deleteNatsUser,
  type ManagedCluster,
  setNatsUserEndpoints,
} from "../commands/users.js";
import { readNatsUsers } from "../nats-users.js";
import { diffValues } from "./diff.js";
import type { Step } from "./plan.js";

const sorted = (list: string[]) => [...new Set(list)].sort();

export async function planUsers(
  cluster: ManagedCluster,
  declared: DeclaredNatsUser[],
  prune: boolean,
): Promise<Step[]> {
  const stored = await readNatsUsers(cluster.dataDir);
  const steps: Step[] = [];
  for (const decl of declared) {
    const wanted = sorted(decl.endpoints);
    const found = stored.find((u) => u.user === decl.name);
    if (!found) {
      const step: Step = { kind: "user", name: decl.name, action: "create" };
      step.run = async () => {
        const created = await createNatsUser(cluster, {
          name: decl.name,
          endpoints: wanted,
          managed: "apply",
        });
        step.password = created.password;
      };
      steps.push(step);
      continue;
    }
    const current = sorted(found.endpoints);
    if (current.join(",") === wanted.join(",")) {
      steps.push({ kind: "user", name: decl.name, action: "unchanged" });
      continue;
    }
    steps.push({
      kind: "user",
      name: decl.name,
      action: "update",
      diff: diffValues({ endpoints: current }, { endpoints: wanted }),
      run: () => setNatsUserEndpoints(cluster, decl.name, wanted),
    });
  }
  if (prune) {
    const keep = new Set(declared.map((d) => d.name));
    for (const u of stored) {
      if (u.managed !== "apply" || keep.has(u.user)) continue;
      steps.push({
        kind: "user",
        name: u.user,
        action: "delete",
        run: () => deleteNatsUser(cluster, u.user),
      });
    }
  }
  return steps;
}
