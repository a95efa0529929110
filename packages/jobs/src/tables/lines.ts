// CSV and JSONL files whose rows are one line each: where every n-th row starts (found at inspect by counting
// newline bytes), and a shard's rows cut out by those byte offsets, so a worker parses only its own rows
// instead of every row before them. It never parses a value: DuckDB confirms, by its own count, that rows
// and lines agree before an index is used (a quoted field with a newline, or a blank line, breaks the match).
import { createReadStream, createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { pipeline } from "node:stream/promises";

/** Where rows start: `offsets[i]` is the byte at which row `i * step` starts; rows end at byte `end`. */
export interface RowIndex {
  step: number;
  offsets: number[];
  end: number;
}

/** At most this many offsets are kept per file; beyond it, every other one is dropped and the step doubles. */
const MAX_OFFSETS = 8192;
const NEWLINE = 0x0a;
/** Bytes read at a time: large reads keep copying a shard's bytes near disk speed. */
export const CHUNK = 1 << 20;

/** Counts the rows of `path` as lines after `headerLines` header lines, and indexes where they start. */
export async function indexLines(
  path: string,
  headerLines: 0 | 1,
): Promise<{ rows: number; index: RowIndex }> {
  const file = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let step = 1;
    let offsets: number[] = headerLines === 0 ? [0] : [];
    let newlines = 0;
    let position = 0;
    let last = -1;
    for (;;) {
      const { bytesRead } = await file.read(buf, 0, CHUNK, position);
      if (bytesRead === 0) break;
      for (let i = buf.indexOf(NEWLINE); i !== -1 && i < bytesRead; i = buf.indexOf(NEWLINE, i + 1)) {
        newlines++;
        // The line after this newline is data row `newlines - headerLines`.
        const row = newlines - headerLines;
        if (row >= 0 && row % step === 0) {
          offsets.push(position + i + 1);
          if (offsets.length > MAX_OFFSETS) {
            offsets = offsets.filter((_, k) => k % 2 === 0);
            step *= 2;
          }
        }
      }
      last = buf[bytesRead - 1]!;
      position += bytesRead;
    }
    const lines = newlines + (position > 0 && last !== NEWLINE ? 1 : 0);
    const rows = Math.max(0, lines - headerLines);
    // The offset recorded after the final newline starts no row.
    return { rows, index: { step, offsets: offsets.filter((_, k) => k * step < rows), end: position } };
  } finally {
    await file.close();
  }
}

/** Writes the header line of `path` (when `withHeader`) then its bytes `[start, end)` to `out`. */
export async function writeSlice(
  path: string,
  [start, end]: readonly [number, number],
  withHeader: boolean,
  out: string,
): Promise<void> {
  const sink = createWriteStream(out);
  if (withHeader) sink.write(await headerLine(path));
  await pipeline(createReadStream(path, { start, end: end - 1, highWaterMark: CHUNK }), sink);
}

async function headerLine(path: string): Promise<Buffer> {
  const file = await open(path, "r");
  try {
    const parts: Buffer[] = [];
    let position = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(64 * 1024);
      const { bytesRead } = await file.read(buf, 0, buf.length, position);
      const nl = buf.subarray(0, bytesRead).indexOf(NEWLINE);
      if (nl !== -1 || bytesRead === 0) {
        parts.push(buf.subarray(0, nl === -1 ? bytesRead : nl + 1));
        return Buffer.concat(parts);
      }
      parts.push(buf.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await file.close();
  }
}
