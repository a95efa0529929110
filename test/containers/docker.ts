// What an operator's faults look like to a compose project, done with the docker CLI: kill a container (SIGKILL,
// as a host losing power), start it again, restart it (SIGTERM, then SIGKILL after the grace period), cut it off
// the project's network and plug it back, see which processes still run in it.
import { spawnSync } from "node:child_process";

export function docker(...args: string[]): string {
  const r = spawnSync("docker", args, { encoding: "utf8", maxBuffer: 256 << 20 });
  if (r.status !== 0)
    throw new Error(`docker ${args.join(" ")} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** One compose project's containers, by service name (`nats1`, `node2`, …). */
export class Project {
  constructor(readonly name: string) {}

  container(service: string): string {
    return `${this.name}-${service}-1`;
  }

  get network(): string {
    return `${this.name}_default`;
  }

  kill(service: string): void {
    docker("kill", "--signal", "KILL", this.container(service));
  }

  start(service: string): void {
    docker("start", this.container(service));
  }

  /** `docker restart`: SIGTERM, up to `graceSeconds` to stop, then SIGKILL; then started again. */
  restart(service: string, graceSeconds = 30): void {
    docker("restart", "--time", String(graceSeconds), this.container(service));
  }

  disconnect(service: string): void {
    docker("network", "disconnect", this.network, this.container(service));
  }

  connect(service: string): void {
    docker("network", "connect", this.network, this.container(service));
  }

  /** The container's address on the project's network (the host routes to it). */
  ip(service: string): string {
    return docker(
      "inspect",
      "--format",
      `{{(index .NetworkSettings.Networks "${this.network}").IPAddress}}`,
      this.container(service),
    );
  }

  /** Which of `pids` (in the container's pid namespace) still run there; works while the container is cut off. */
  alive(service: string, pids: number[]): number[] {
    const out = this.exec(service, [
      "sh",
      "-c",
      `for p in ${pids.join(" ")}; do [ -d /proc/$p ] && echo $p; done; true`,
    ]);
    return out.split("\n").filter(Boolean).map(Number);
  }

  /** What the container wrote since `since` (epoch seconds), every run of it, stdout and stderr together. */
  logs(service: string, since: number): string {
    const r = spawnSync("docker", ["logs", "--since", String(since), this.container(service)], {
      encoding: "utf8",
      maxBuffer: 256 << 20,
    });
    return `${r.stdout}${r.stderr}`;
  }

  /** Runs `command` in the service's container; fails with its output when it exits non-zero. */
  exec(service: string, command: string[]): string {
    return docker("exec", this.container(service), ...command);
  }

  /** A file's text, read inside the service's container (the data volume is not on the host's path). */
  read(service: string, file: string): string {
    return this.exec(service, ["cat", file]);
  }
}
