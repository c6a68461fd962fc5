import { type DataSet, type DicomElement, elementValues } from "../dicom/dataset.ts";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { PIXEL_DATA, type Tag } from "../dicom/tag.ts";
import { scanDicomSync, type ScanOptions } from "../fs/scan.ts";
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
  const ds = file.dataset;
  const rec: SearchFileRecord = {
    type: "file",
    path,
    bytes: file.size,
    category: "dicom",
    sopClassUid: ds.string(0x00080016) ?? file.meta.string(0x00020002),
    sopInstanceUid: ds.string(0x00080018) ?? file.meta.string(0x00020003),
    modality: ds.string(0x00080060),
    patientId: ds.string(0x00100020),
    studyUid: ds.string(0x0020000d),
    seriesUid: ds.string(0x0020000e),
    transferSyntaxUid: file.transferSyntaxUid,
    tags,
  };
  for (const k of Object.keys(rec) as (keyof SearchFileRecord)[]) if (rec[k] === undefined) delete rec[k];
  return rec;
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

/**
 * Finds the DICOM files under the given paths whose tags match every expression, as DicomTools'
 * search does; yields a `file` record per match (with the values of each expression under `tags`)
 * and an error per file that cannot be read. Expressions are strings (`"Modality=RT*"`,
 * `"BeamSequence/TreatmentMachineName=?"`) or parsed ones.
 *
 * @example
 * ```ts
 * for await (const r of searchFiles(["export/"], ["PatientID=?", "Modality=RTPLAN"], { pattern: "*.dcm" })) {
 *   if (r.record) console.log(r.record.path, r.record.tags["PatientID"]);
 * }
 * ```
 */
export async function* searchFiles(
  paths: Iterable<string> | AsyncIterable<string>,
  expressions: readonly (string | TagExpression)[],
  opts: ScanOptions = {},
): AsyncGenerator<SearchResult> {
  const exprs = expressions.map((e) => typeof e === "string" ? parseTagExpression(e) : e);
  const run = function* (roots: Iterable<string>): Generator<SearchResult> {
    for (const r of scanDicomSync(roots, opts)) {
      if (r.error !== undefined) yield { path: r.path, error: r.error };
      else {
        const res = searchFile(r.path, r.file, exprs);
        if (res) yield res;
      }
    }
  };
  if (Symbol.iterator in paths) yield* run(paths as Iterable<string>);
  else for await (const p of paths) yield* run([p]);
}

/** Distinct values with counts, per expression: what `--stats` prints. */
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
