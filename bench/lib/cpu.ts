// CPU time of server processes from /proc: utime + stime of each given pid and all its descendants
// (replicas a node agent spawned, nats-server under `switchyard up`), in seconds.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticks: number | undefined;
/** `getconf CLK_TCK` (100 on Linux), read once. */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

interface Stat {
  ppid: number;
  /** utime + stime, clock ticks. */
  cpu: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined; // exited meanwhile
  }
}

/** CPU ticks per pid of `roots` and every descendant alive now. */
export function treeCpuTicks(roots: number[]): Map<number, number> {
  const stats = new Map<number, Stat>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) stats.set(Number(name), s);
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  const out = new Map<number, number>();
  const queue = roots.filter((p) => stats.has(p));
  while (queue.length) {
    const pid = queue.pop()!;
    if (out.has(pid)) continue;
    out.set(pid, stats.get(pid)!.cpu);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * CPU seconds the trees used between two snapshots. A process started in between counts from zero; one
 * that exited in between is lost (none should during a measurement).
 */
export function cpuSecondsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let t = 0;
  for (const [pid, cpu] of after) t += cpu - (before.get(pid) ?? 0);
  return t / clockTicks();
}

/** Busy CPU of the whole machine, all cores (user+nice+system+irq+softirq+steal from /proc/stat), in seconds. */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (
    ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / clockTicks()
  );
}

/** CPU seconds of this process's children that have exited and been reaped (cutime + cstime of /proc/self/stat). */
export function reapedChildrenCpuSeconds(): number {
  const text = readFileSync("/proc/self/stat", "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) / clockTicks();
}

/** The command name of a process (/proc/<pid>/comm), or "" once it has exited. */
export function processName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** CPU seconds per group between two snapshots of treeCpuTicks, `groupOf` naming each pid's group. */
export function cpuSecondsByGroup(
  before: Map<number, number>,
  after: Map<number, number>,
  groupOf: (pid: number) => string,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [pid, cpu] of after) {
    const g = groupOf(pid);
    out.set(g, (out.get(g) ?? 0) + (cpu - (before.get(pid) ?? 0)) / clockTicks());
  }
  return out;
}
