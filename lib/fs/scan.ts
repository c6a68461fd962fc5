import { type DicomFile, readDicomFile, type ReadOptions } from "../dicom/reader.ts";
import { walkEntriesSync, type WalkOptions } from "./walk.ts";

/** The outcome of reading one file: its parsed header, or one line saying why it could not be read. */
export type ScanResult =
  | { path: string; file: DicomFile; error?: undefined }
  | { path: string; file?: undefined; error: string };

/** Options for {@link scanDicom}. */
export interface ScanOptions extends WalkOptions {
  /** How to read each file (default: header only, as fast as the reader goes). */
  read?: ReadOptions;
}

/**
 * Reads one file's DICOM header, turning any failure into a one-line message naming the file:
 * `Cannot read DICOM file "a.dcm": unexpected end of data at offset 1820 (element value)`.
 */
export function scanFile(path: string, read: ReadOptions = {}): ScanResult {
  try {
    return { path, file: readDicomFile(path, read) };
  } catch (e) {
    return { path, error: `Cannot read DICOM file "${path}": ${reasonOf(e)}` };
  }
}

/**
 * Walks the given files and directories synchronously and reads each file's DICOM header. A garbage,
 * truncated or non-DICOM file yields `{path, error}` and the scan goes on.
 */
export function* scanDicomSync(paths: Iterable<string>, opts: ScanOptions = {}): Generator<ScanResult> {
  const read = opts.read ?? {};
  for (const entry of walkEntriesSync(paths, opts)) {
    if (entry.error !== undefined) yield { path: entry.path, error: entry.error };
    else yield scanFile(entry.path, read);
  }
}

/**
 * Reads the DICOM header of every file under the given paths (files and directories, or `file`
 * records, whose `path` is taken), one result per file, in a stable order.
 *
 * @example
 * ```ts
 * for await (const r of scanDicom(["export/"], { pattern: "*.dcm" })) {
 *   if (r.error) console.error(r.error);
 *   else console.log(r.path, r.file.dataset.string("Modality"));
 * }
 * ```
 */
export async function* scanDicom(
  inputs: Iterable<string | { path: string }> | AsyncIterable<string | { path: string }>,
  opts: ScanOptions = {},
): AsyncGenerator<ScanResult> {
  if (Symbol.iterator in inputs) {
    yield* scanDicomSync(pathsOf(inputs as Iterable<string | { path: string }>), opts);
    return;
  }
  for await (const input of inputs) {
    yield* scanDicomSync([typeof input === "string" ? input : input.path], opts);
  }
}

function* pathsOf(inputs: Iterable<string | { path: string }>): Generator<string> {
  for (const i of inputs) yield typeof i === "string" ? i : i.path;
}

function reasonOf(e: unknown): string {
  const err = e as { code?: string; message?: string } | undefined;
  switch (err?.code) {
    case "ENOENT": return "no such file";
    case "EACCES": case "EPERM": return "permission denied";
    case "EISDIR": return "is a directory";
  }
  const msg = err?.message ?? String(e);
  return msg.split("\n")[0];
}
