// The bits of SQL the batch bench builds around file paths: quoting, and which DuckDB reader or COPY format
// a file takes from its extension. Only CSV and Parquet, the formats the batch bench measures.

export type FileFormat = "csv" | "parquet";

/** A SQL string literal: single quotes doubled. */
export const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

export function formatOf(file: string): FileFormat {
  if (file.endsWith(".csv")) return "csv";
  if (file.endsWith(".parquet")) return "parquet";
  throw new Error(`${file}: expected a .csv or .parquet file`);
}

/** `read_csv('…')` or `read_parquet('…')`: a table expression for FROM. */
export const readTable = (file: string) => `read_${formatOf(file)}(${sqlString(file)})`;

/** The options of `COPY … TO file (…)` for the file's format. */
export const copyOptions = (file: string) =>
  formatOf(file) === "csv" ? "FORMAT csv, HEADER true" : "FORMAT parquet";
