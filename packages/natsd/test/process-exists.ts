import { readFileSync } from "node:fs";

/**
 * True while a process with this pid runs. A zombie counts as gone: in a container the orphaned
 * child of a dead parent may never be reaped, yet it is no longer running.
 */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc (not Linux): signal 0 succeeded, so it exists
  }
}
