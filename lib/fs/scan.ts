import { metaHeaderWarning } from "../dicom/file_record.ts";
import { type DicomFile, DicomParseError, readDicomFile, type ReadOptions } from "../dicom/reader.ts";
import { isDicomFileRecord, type RtRecord } from "../records/types.ts";
import { type StageOptions, type StageReport, untilAborted } from "../stage/stage.ts";
import { pathRecords, walkEntriesSync, type WalkOptions } from "./walk.ts";
import { fsReason } from "./errors.ts";

/**
 * The outcome of reading one file: its parsed header, or one line saying why it could not be read.
 * `notDicom` is set when the path is not DICOM at all (a PDF, a PNG, a database, a directory), as
 * opposed to a DICOM file that is damaged (`DICM` present, then truncated): callers skip the first
 * and fail the second.
 */
export type ScanResult =
  | { path: string; file: DicomFile; error?: undefined; notDicom?: undefined }
  | { path: string; file?: undefined; error: string; notDicom?: boolean };

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
    const error = `Cannot read DICOM file "${path}": ${fsReason(e)}`;
    // A directory among the paths (`find DIR | rtexport search` lists the folders too) holds no
    // object itself; its files come on their own lines.
    return isNotDicom(e) || (e as { code?: string }).code === "EISDIR" ? { path, error, notDicom: true } : { path, error };
  }
}

/** True for the reader's "not a DICOM file" refusal (no DICM, no meta, no plausible first element). */
export function isNotDicom(e: unknown): boolean {
  return e instanceof DicomParseError && e.offset === 0 && e.message.startsWith("not a DICOM file");
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

/**
 * What a stage that reads DICOM files does with one `file` record: reads its header (calling
 * `use` with it), or reports why it did not. A record that carries `error` (its path could not be
 * walked) or whose file is damaged fails; a file that is not DICOM at all (a PDF, a PNG, a
 * database), by its category or by its bytes, is a `not-dicom` skip.
 */
export function readFileRecord(
  record: RtRecord,
  report: StageReport,
  use: (file: DicomFile, path: string) => { patientId?: string } | void,
): void {
  const path = String(record.path);
  const item = `file "${path}"`;
  if (typeof record.error === "string") {
    report.failed(item, record.error);
    return;
  }
  if (!isDicomFileRecord(record)) {
    report.skipped(item, "not-dicom", `category "${record.category}"`);
    return;
  }
  const r = scanFile(path);
  if (r.error !== undefined) {
    if (r.notDicom) report.skipped(item, "not-dicom", r.error);
    else report.failed(item, r.error);
    return;
  }
  // The data set names the object; a meta header that says otherwise is worth a warning.
  const disagreement = metaHeaderWarning(r.file, path, "the data set's UIDs are used");
  if (disagreement) report.message("warn", disagreement, path);
  let fields: { patientId?: string } | void;
  try {
    fields = use(r.file, path);
  } catch (e) {
    // A value that cannot be decoded (a broken character set escape…) fails this file only.
    const message = (e as Error).message;
    report.failed(item, message.startsWith("Cannot ") ? message : `Cannot read DICOM file "${path}": ${message}`);
    return;
  }
  report.done(item, { bytes: r.file.size, ...(fields?.patientId !== undefined ? { patientId: fields.patientId } : {}) });
}

/**
 * Inputs of a stage that reads DICOM files: records as they come, and each string taken as a path
 * (a file, or a directory walked with `pattern`) turned into `file` records.
 */
export async function* fileInputs(
  input: AsyncIterable<RtRecord | string> | Iterable<RtRecord | string>,
  options: WalkOptions & StageOptions,
): AsyncGenerator<RtRecord> {
  for await (const item of untilAborted(input, options.signal)) {
    if (typeof item === "string") yield* untilAborted(pathRecords([item], options.pattern ? { pattern: options.pattern } : {}), options.signal);
    else yield item;
  }
}

function* pathsOf(inputs: Iterable<string | { path: string }>): Generator<string> {
  for (const i of inputs) yield typeof i === "string" ? i : i.path;
}

