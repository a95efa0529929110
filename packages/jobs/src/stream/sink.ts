// What a scorer hands its sink: one outcome per input — a result, a dead letter or a late event — and when the
// inputs may be acked. Two sinks: a subject captured by a stream with a duplicate window (subject-sink.ts), and
// rolling part files with a ledger in KV (dir-sink.ts).

/** Where an input came from: a stream message, or a row of a landing file. */
export type SourceRef = { stream: string; seq: number } | { file: string; row: number };

/** One input message, as far as the sink needs it. */
export interface InputRef {
  /** The message's sequence in the job's source stream (its consumer's stream). */
  seq: number;
  /** `<job>:<stream>:<seq>`, or `<job>:<file digest>:<row>` for a landing file's row. */
  msgId: string;
  source: SourceRef;
  /** When the source message was published (epoch ms): end-to-end latency starts here. */
  publishedMs: number;
}

export type OutcomeKind = "result" | "dlq" | "late";

export interface Outcome {
  input: InputRef;
  kind: OutcomeKind;
  /** The JSON object written: the result, or `{reason, payload, source}` for a dead letter, or the late event. */
  body: Record<string, unknown>;
}

export interface Sink {
  /**
   * Whether the outcome of source sequence `seq` is already written for good (a directory sink's ledger). A
   * subject sink answers false: its stream's duplicate window drops a result published twice.
   */
  holds(seq: number): boolean;
  /** Writes one batch's outcomes, in order; resolves once they are as durable as this sink makes them. */
  write(outcomes: Outcome[]): Promise<void>;
  /** Whether inputs may be acked as soon as `write` resolves (else only after `commit`). */
  readonly acksOnWrite: boolean;
  /** Makes everything written so far final (a directory sink's part file and ledger); then inputs are acked. */
  commit(ackFloor: number): Promise<void>;
  close(): Promise<void>;
}
