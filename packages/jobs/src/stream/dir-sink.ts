// LOCAL PLACEHOLDER (not committed)
import type { Outcome, Sink } from "./sink.js";
export class DirSink implements Sink {
  readonly acksOnWrite = false;
  static async open(_o: unknown): Promise<DirSink> {
    throw new Error("dir sink not merged yet");
  }
  holds(): boolean {
    return false;
  }
  async write(_o: Outcome[]): Promise<void> {}
  async commit(): Promise<void> {}
  async close(): Promise<void> {}
}
