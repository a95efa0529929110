// Processes in tests: whether one still runs, read from /proc (Linux, as the suite runs).
import { readFileSync } from "node:fs";

/** Whether pid runs; a zombie nobody reaped (this container's init reaps no orphans) counts as gone. */
export function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
