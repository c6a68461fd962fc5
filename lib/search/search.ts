import { type DataSet, type DicomElement, elementValues } from "../dicom/dataset.ts";
import { dicomRecordFields } from "../dicom/file_record.ts";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { PIXEL_DATA, type Tag } from "../dicom/tag.ts";
import { dirname } from "node:path";
import { fileInputs, readFileRecord } from "../fs/scan.ts";
import type { WalkOptions } from "../fs/walk.ts";
import type { RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport } from "../stage/stage.ts";
import { parseTagExpression, type TagExpression } from "./expression.ts";
import { matchValue } from "./match.ts";

/** What `search` says about one matching file: a `file` record with the values asked for. */
export interface SearchFileRecord {
  type: "file";
  path: string;
  bytes: number;
  category: "dicom";
  sopClassUid?: string;
  sopInstanceUid?: string;
  modality?: string;
  patientId?: string;
  studyUid?: string;
  seriesUid?: string;
  transferSyntaxUid: string;
  /** Per expression key (the expression without its `=…` part): the values found, in file order. */
  tags: Record<string, string[]>;
}

/** One result of {@link searchFiles}: a matching file, or a file that could not be read. */
export type SearchResult =
  | { path: string; record: SearchFileRecord; error?: undefined }
  | { path: string; record?: undefined; error: string };

interface Found {
  el: DicomElement;
  ds: DataSet;
}

/** Collects the elements at a tag path: every item of every sequence on the way. */
function collect(ds: DataSet, path: Tag[], i: number, out: Found[]): void {
  const el = ds.elements.get(path[i]);
  if (!el) return;
  if (i === path.length - 1) {
    out.push({ el, ds });
    return;
  }
  if (el.items) for (const item of el.items) collect(item, path, i + 1, out);
}

/** The values of an element as search reports them: text, numbers as text, bulk data summarized. */
export function reportedValues(el: DicomElement, ds: DataSet): string[] {
  if (el.items) return [`(${el.items.length} item${el.items.length === 1 ? "" : "s"})`];
  if (el.skipped || el.fragments) return [`(${el.length} bytes)`];
  const bytes = el.value;
  if (!bytes || bytes.length === 0) return [""];
  if (el.vr === "OB" || el.vr === "UN") return [opaqueValue(bytes)];
  const values = elementValues(el, ds);
  if (values.length === 0) return [opaqueValue(bytes)];
  return values.map((v) => typeof v === "string" ? v : String(v));
}

/** Unknown-VR values (private tags in implicit VR files) are often text: show them as text when they are. */
function opaqueValue(bytes: Uint8Array): string {
  let text = "";
  let printable = true;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0 && i === bytes.length - 1) break;
    if (b < 0x20 || b > 0x7e) {
      printable = false;
      break;
    }
    text += String.fromCharCode(b);
  }
  if (printable) return text.trim();
  const shown = Math.min(bytes.length, 64);
  const hex: string[] = [];
  for (let i = 0; i < shown; i++) hex.push(bytes[i].toString(16).padStart(2, "0"));
  return hex.join("\\") + (bytes.length > shown ? `…(${bytes.length} bytes)` : "");
}

/**
 * Evaluates expressions on one parsed file. Returns the values per expression key when every
 * expression matches (they AND together), else undefined. A `=?` expression matches when the
 * element is present (in any item of the sequences on its path) and reports its values; a value
 * expression matches when any value of any occurrence matches.
 */
export function matchFile(file: DicomFile, expressions: readonly TagExpression[]): Record<string, string[]> | undefined {
  const tags: Record<string, string[]> = {};
  for (const ex of expressions) {
    const found: Found[] = [];
    // File meta information (group 0002: TransferSyntaxUID, SourceApplicationEntityTitle …) is searched too.
    collect(ex.path.length === 1 && ex.path[0] >>> 16 === 0x0002 ? file.meta : file.dataset, ex.path, 0, found);
    if (found.length === 0) return undefined;
    const values: string[] = [];
    let matched = ex.op === "report";
    for (const { el, ds } of found) {
      const vals = reportedValues(el, ds);
      values.push(...vals);
      if (!matched && ex.value !== undefined && !el.items) {
        matched = vals.some((v) => matchValue(ex.value!, v, el.vr)) ||
          (vals.length > 1 && matchValue(ex.value, vals.join("\\"), el.vr));
      }
    }
    if (!matched) return undefined;
    if (!(ex.key in tags)) tags[ex.key] = values;
  }
  return tags;
}

/** Builds the `file` record that search emits for a matching file. */
export function fileRecord(path: string, file: DicomFile, tags: Record<string, string[]>): SearchFileRecord {
  return { type: "file", path, bytes: file.size, ...dicomRecordFields(file), transferSyntaxUid: file.transferSyntaxUid, tags };
}

/** True when some expression needs elements that a header-only read does not reach (after Pixel Data). */
function needsFullRead(expressions: readonly TagExpression[]): boolean {
  return expressions.some((e) => e.path[0] >= PIXEL_DATA);
}

/** Searches one file already read; re-reads it whole when the expressions look past Pixel Data. */
export function searchFile(path: string, file: DicomFile, expressions: readonly TagExpression[]): SearchResult | undefined {
  let f = file;
  if (!f.complete && needsFullRead(expressions)) {
    try {
      f = readDicomFile(path, { full: true });
    } catch (e) {
      return { path, error: `Cannot read DICOM file "${path}": ${(e as Error).message}` };
    }
  }
  try {
    const tags = matchFile(f, expressions);
    return tags ? { path, record: fileRecord(path, f, tags) } : undefined;
  } catch (e) {
    // A value that cannot be decoded (a broken character set escape…) fails this file only.
    return { path, error: `Cannot read DICOM file "${path}": ${(e as Error).message}` };
  }
}

/** Options of the search stage. */
export interface SearchOptions extends StageOptions, WalkOptions {
  /** Tag expressions, all of which must match: `"Modality=RT*"`, `"BeamSequence/TreatmentMachineName=?"`, or parsed ones. */
  tags: readonly (string | TagExpression)[];
  /** After the matches, one `stats` record per expression: its distinct values and how many matching files have each. */
  stats?: boolean;
  /** Instead of a `file` record per match, one `directory` record per directory holding matches, with their count. */
  dirs?: boolean;
}

/**
 * The search stage, what `rtexport search` runs: reads the DICOM header of every `file` record (a
 * string in the input is a path: a file, or a directory walked with `pattern`) and yields a `file`
 * record for each file whose tags match every expression, with the values of each expression
 * under `tags`. A `file` record that came in keeps its fields and gains the DICOM ones and `tags`;
 * files that do not match leave the stream. Other records pass through as they come. Events:
 * `done` per file read, `skipped` (`not-dicom`) per file that is not DICOM, `failed` per
 * unreadable or damaged file. A malformed expression rejects the first step with
 * {@linkcode TagExpressionError}, before anything is read.
 *
 * @example
 * ```ts
 * import { searchFiles } from "./mod.ts";
 * for await (const r of searchFiles(["export/"], { tags: ["PatientID=?", "Modality=RTPLAN"], pattern: "*.dcm" })) {
 *   if (r.type === "file") console.log(r.path, (r.tags as Record<string, string[]>)["PatientID"]);
 * }
 * ```
 */
export async function* searchFiles(
  input: AsyncIterable<RtRecord | string> | Iterable<RtRecord | string>,
  options: SearchOptions,
): AsyncGenerator<RtRecord> {
  const exprs = options.tags.map((e) => typeof e === "string" ? parseTagExpression(e) : e);
  const report = new StageReport("search", options);
  try {
    const stats = options.stats ? new ValueStats(exprs.map((e) => e.key)) : undefined;
    const dirs = options.dirs ? new Map<string, number>() : undefined;
    for await (const record of fileInputs(input, options)) {
      if (record.type !== "file" || typeof record.path !== "string") {
        yield record;
        continue;
      }
      let match: SearchFileRecord | undefined;
      readFileRecord(record, report, (file, path) => {
        const res = searchFile(path, file, exprs);
        if (res?.error !== undefined) throw new Error(res.error);
        match = res?.record;
        return { patientId: file.dataset.string(0x00100020) };
      });
      if (!match) continue;
      stats?.add(match.tags);
      if (dirs) {
        const d = dirname(match.path);
        dirs.set(d, (dirs.get(d) ?? 0) + 1);
      } else {
        // Results ride on the record that came in: its fields are kept, the DICOM ones filled in.
        // The data set's SOP UIDs, though, whatever an upstream record said.
        yield { ...match, ...record, sopClassUid: match.sopClassUid ?? record.sopClassUid, sopInstanceUid: match.sopInstanceUid ?? record.sopInstanceUid, tags: match.tags } as RtRecord;
      }
    }
    if (report.interrupted) return;
    if (dirs) {
      for (const [path, files] of [...dirs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) yield { type: "directory", path, files };
    }
    if (stats) yield* stats.records();
  } finally {
    report.finish();
  }
}

/**
 * Distinct values with counts, per expression: what `search --stats` prints.
 *
 * @example
 * ```ts
 * const stats = new ValueStats(["Modality"]);
 * stats.add({ Modality: ["RTPLAN"] });
 * stats.add({ Modality: ["RTPLAN", "RTPLAN"] });
 * stats.records(); // [{ type: "stats", tag: "Modality", values: [{ value: "RTPLAN", count: 2 }] }]
 * ```
 */
export class ValueStats {
  private readonly counts = new Map<string, Map<string, number>>();

  constructor(keys: readonly string[]) {
    for (const k of keys) if (!this.counts.has(k)) this.counts.set(k, new Map());
  }

  /** Counts a file's values: each distinct value once per file. */
  add(tags: Record<string, string[]>): void {
    for (const [key, values] of Object.entries(tags)) {
      let m = this.counts.get(key);
      if (!m) this.counts.set(key, m = new Map());
      for (const v of new Set(values)) m.set(v, (m.get(v) ?? 0) + 1);
    }
  }

  /** One `stats` record per expression, values by count (most first), then by value. */
  records(): { type: "stats"; tag: string; values: { value: string; count: number }[] }[] {
    return [...this.counts].map(([tag, m]) => ({
      type: "stats" as const,
      tag,
      values: [...m].map(([value, count]) => ({ value, count }))
        .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0)),
    }));
  }
}
