// How commands print: a plain table for people, or one JSON document with --json for scripts.

export interface Out {
  json: boolean;
  print(human: string, data: unknown): void;
}

export function output(json: boolean): Out {
  return {
    json,
    print(human, data) {
      process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${human}\n`);
    },
  };
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function when(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Resolves on Ctrl-C (or SIGTERM), or after `ms`: `--watch` sleeps through here. */
export function sleepUnlessStopped(ms: number, stopped: { value: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      stopped.value = true;
      done();
    };
    const done = () => {
      clearTimeout(timer);
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    const timer = setTimeout(done, ms);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
