/**
 * The one NDJSON reader and writer every command uses.
 *
 * Reading: CRLF and LF line ends, blank lines skipped, lines split across chunks, a UTF-8 BOM at
 * the start ignored, UTF-16 with a BOM decoded (PowerShell 5's `>` writes that); a line that is
 * not a JSON object with a string `type` is an error naming the line number and the input. Writing: one `JSON.stringify` line per record, waits for `drain`
 * when the stream's buffer is full, and stops quietly when the reader went away (EPIPE), so
 * `rtexport … | head` exits 0 without an error message.
 */
import { bomEncoding } from "../fs/text.ts";
import type { RtRecord } from "./types.ts";
import { isRecord } from "./types.ts";

/** Anything that yields text or bytes: a Node Readable (e.g. `process.stdin`), a web ReadableStream, a generator. */
export type RecordSource = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/**
 * A line of NDJSON input could not be parsed; `line` and `input` say where.
 *
 * @example
 * ```ts
 * try {
 *   await collectRecords(readRecords(["{\"type\":\"file\"}\n", "{oops\n"]));
 * } catch (e) {
 *   if (e instanceof RecordParseError) console.error(e.input, e.line); // "stdin" 2
 * }
 * ```
 */
export class RecordParseError extends Error {
  /** 1-based line number in the input. */
  readonly line: number;
  /** Name of the input, e.g. `stdin` or a file path. */
  readonly input: string;
  constructor(input: string, line: number, detail: string) {
    super(`Cannot parse NDJSON line ${line} of ${input}: ${detail}`);
    this.name = "RecordParseError";
    this.line = line;
    this.input = input;
  }
}

/** Options for {@linkcode readRecords}. */
export interface ReadRecordsOptions {
  /** Name of the input used in error messages (default `stdin`). */
  input?: string;
  /**
   * Take a line that does not start with `{` as a path, `{"type":"file","path":…}`, so that a list
   * of paths (`find … | rtexport search`) works where records are expected (default false).
   */
  pathLines?: boolean;
}

/**
 * Read NDJSON records from a byte or text stream.
 *
 * @example
 * ```ts
 * import { readRecords } from "./ndjson.ts";
 * for await (const record of readRecords(process.stdin)) {
 *   if (record.type === "file") console.error(record.path);
 * }
 * ```
 */
export async function* readRecords(source: RecordSource, options: ReadRecordsOptions = {}): AsyncGenerator<RtRecord> {
  const input = options.input ?? "stdin";
  let decoder: TextDecoder | undefined;
  // The first bytes, until there are two: enough to tell a UTF-16 byte order mark.
  let head: Uint8Array | undefined;
  let pending = "";
  let lineNumber = 0;
  for await (let chunk of source as AsyncIterable<Uint8Array | string>) {
    if (typeof chunk !== "string" && decoder === undefined) {
      if (head) chunk = concat(head, chunk);
      if (chunk.length < 2) {
        head = chunk;
        continue;
      }
      head = undefined;
      decoder = new TextDecoder(bomEncoding(chunk), { ignoreBOM: false });
    }
    pending += typeof chunk === "string" ? chunk : decoder!.decode(chunk, { stream: true });
    let start = 0;
    let newline: number;
    while ((newline = pending.indexOf("\n", start)) !== -1) {
      lineNumber++;
      const record = parseLine(pending.slice(start, newline), lineNumber, input, options.pathLines === true);
      start = newline + 1;
      if (record !== undefined) yield record;
    }
    pending = start === 0 ? pending : pending.slice(start);
  }
  if (head) pending += new TextDecoder().decode(head);
  pending += decoder?.decode() ?? "";
  if (pending.length > 0) {
    lineNumber++;
    const record = parseLine(pending, lineNumber, input, options.pathLines === true);
    if (record !== undefined) yield record;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function parseLine(line: string, lineNumber: number, input: string, pathLines: boolean): RtRecord | undefined {
  if (lineNumber === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
  if (line.endsWith("\r")) line = line.slice(0, -1);
  if (line.trim() === "") return undefined;
  if (pathLines && !line.trimStart().startsWith("{")) return { type: "file", path: line };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new RecordParseError(input, lineNumber, error instanceof Error ? error.message : String(error));
  }
  if (!isRecord(value)) {
    throw new RecordParseError(input, lineNumber, 'expected a JSON object with a string "type" field');
  }
  return value;
}

/**
 * Read NUL-separated paths (`find … -print0`) as `file` records; empty names are skipped.
 *
 * @example
 * ```ts
 * for await (const r of readNulPaths(process.stdin)) console.error(r.path);
 * ```
 */
export async function* readNulPaths(source: RecordSource): AsyncGenerator<RtRecord> {
  const decoder = new TextDecoder("utf-8");
  let pending = "";
  for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
    pending += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    const parts = pending.split("\0");
    pending = parts.pop()!;
    for (const path of parts) if (path !== "") yield { type: "file", path };
  }
  pending += decoder.decode();
  if (pending !== "") yield { type: "file", path: pending };
}

/** The part of a Node writable stream (e.g. `process.stdout`) the writer uses. */
export interface WritableLike {
  write(chunk: string): boolean;
  once(event: "drain" | "close" | "error", listener: (...args: unknown[]) => void): unknown;
  on(event: "error", listener: (error: unknown) => void): unknown;
  removeListener(event: string, listener: (...args: unknown[]) => void): unknown;
  readonly destroyed?: boolean;
  readonly writableEnded?: boolean;
}

/** Error codes that mean "the reader went away": stop writing, no error. */
const READER_GONE = new Set(["EPIPE", "ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END", "ECONNRESET"]);

function readerGone(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, name } = error as { code?: unknown; name?: unknown };
  return (typeof code === "string" && READER_GONE.has(code)) || name === "BrokenPipe";
}

/**
 * Writes records as NDJSON to a stream, honouring back-pressure.
 *
 * `write` resolves once the stream can take more; after the reader has gone away (EPIPE) it
 * resolves immediately and {@linkcode RecordWriter.closed} is true, so producers can stop.
 *
 * @example
 * ```ts
 * import { RecordWriter } from "./ndjson.ts";
 * const out = new RecordWriter(process.stdout);
 * await out.write({ type: "patient", patientId: "123" });
 * ```
 */
export class RecordWriter {
  #stream: WritableLike;
  #closed = false;
  #error: unknown = undefined;
  #count = 0;
  #onError: (error: unknown) => void;

  constructor(stream: WritableLike) {
    this.#stream = stream;
    this.#onError = (error: unknown) => {
      if (readerGone(error)) this.#closed = true;
      else this.#error ??= error;
    };
    stream.on("error", this.#onError);
  }

  /** True once the reader has gone away (EPIPE); further writes are dropped. */
  get closed(): boolean {
    return this.#closed || this.#stream.destroyed === true || this.#stream.writableEnded === true;
  }

  /** Number of records written so far. */
  get count(): number {
    return this.#count;
  }

  /** Write one record; resolves when the stream can take more. Rejects on a write error other than EPIPE. */
  write(record: RtRecord): Promise<void> {
    return this.writeLine(JSON.stringify(record));
  }

  /** Write one pre-serialized line (without its newline). */
  async writeLine(line: string): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    if (this.closed) return;
    let ok: boolean;
    try {
      ok = this.#stream.write(line + "\n");
    } catch (error) {
      // Some runtimes throw synchronously instead of emitting "error".
      if (readerGone(error)) {
        this.#closed = true;
        return;
      }
      throw error;
    }
    this.#count++;
    if (!ok && !this.closed) await this.#drain();
    if (this.#error !== undefined) throw this.#error;
  }

  #drain(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#stream.removeListener("drain", done);
        this.#stream.removeListener("close", done);
        this.#stream.removeListener("error", done);
        resolve();
      };
      this.#stream.once("drain", done);
      this.#stream.once("close", done);
      this.#stream.once("error", done);
    });
  }

  /** Stop listening for errors on the stream (the stream itself is left open). */
  release(): void {
    this.#stream.removeListener("error", this.#onError as (...args: unknown[]) => void);
  }
}

/**
 * Write every record of `records` to `stream` as NDJSON. Stops early, without error, when the
 * reader goes away. Resolves to the number of records written.
 *
 * @example
 * ```ts
 * import { writeRecords } from "./ndjson.ts";
 * await writeRecords([{ type: "patient", patientId: "1" }], process.stdout);
 * ```
 */
export async function writeRecords(
  records: AsyncIterable<RtRecord> | Iterable<RtRecord>,
  stream: WritableLike,
): Promise<number> {
  const writer = new RecordWriter(stream);
  try {
    for await (const record of records) {
      await writer.write(record);
      if (writer.closed) break;
    }
    return writer.count;
  } finally {
    writer.release();
  }
}
