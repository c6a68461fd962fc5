/**
 * Where a `file` record that carries no `dest` goes, in each layout `copy-files` offers: `seed`
 * (the export tree, through the same `treePlace` export-plan uses), `series` (the retrieve
 * layout) and `flat`. A file that is not DICOM is never filed as if it were: it goes to
 * `Not_DICOM/<name>` in the seed and series layouts. A damaged DICOM file is not placed at all
 * (its identity cannot be trusted): {@linkcode recordPath} throws, naming it.
 */
import { basename, posix } from "node:path";
import { dicomRecordFields, type DicomRecordFields } from "../dicom/file_record.ts";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { isNotDicom } from "../fs/scan.ts";
import { objectKind } from "../dicom/rt.ts";
import type { FileRecord } from "../records/types.ts";
import { patientFolderName, personNameParts, sanitizeName } from "./sanitize.ts";
import { seriesPath } from "./series.ts";
import { planFolderName, treePlace } from "./tree.ts";

export type Layout = "seed" | "flat" | "series";
export const LAYOUTS: Layout[] = ["seed", "flat", "series"];

/** Where the seed and series layouts put a file that is not DICOM. */
export const NOT_DICOM_FOLDER = "Not_DICOM";

/** What the layouts and the stages take from a DICOM header. */
export interface DicomHeader {
  /** The `file` record fields (category `dicom`, UIDs, modality, patient ID, transfer syntax). */
  fields: DicomRecordFields;
  patientName?: string;
  /** RTPLAN: RT Plan Label (the seed layout's plan folder). */
  planLabel?: string;
}

/** The header of a parsed DICOM file, as the layouts use it. */
export function headerOf(file: DicomFile): DicomHeader {
  const fields = dicomRecordFields(file);
  const header: DicomHeader = { fields };
  const name = file.dataset.string("PatientName");
  if (name) header.patientName = name;
  if (objectKind(fields.sopClassUid, fields.modality) === "plan") {
    const label = file.dataset.string("RTPlanLabel");
    if (label) header.planLabel = label;
  }
  return header;
}

/**
 * Reads the header of a file, or returns undefined when it is not DICOM. Most files of a vault are
 * not DICOM, so the parse error is expected and made without a stack trace (capturing one cost
 * ~14 µs per file, a tenth of a small file's copy).
 */
export function readHeader(path: string): DicomHeader | undefined {
  return inspectHeader(path, { damaged: "undefined" }) ?? undefined;
}

/**
 * Reads the header of a file: `null` when the file is not DICOM at all (a PDF, a PNG, XML); a
 * DICOM file that is damaged (`DICM`, then truncated) throws one line naming it, so it is never
 * filed as a file that is not DICOM.
 */
export function inspectHeader(path: string, opts: { damaged?: "throw" | "undefined" } = {}): DicomHeader | null | undefined {
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return headerOf(readDicomFile(path));
  } catch (e) {
    if (isNotDicom(e) || (e as { code?: string }).code === "EISDIR") return null;
    if (opts.damaged === "undefined") return undefined;
    const err = e as { code?: string; message?: string };
    const reason = err.code === "ENOENT" ? "no such file" : err.code === "EACCES" || err.code === "EPERM" ? "permission denied" : String(err.message ?? e).split("\n")[0];
    throw new Error(`Cannot read DICOM file "${path}": ${reason}`);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

/**
 * The relative, `/`-separated path of a record in `layout`. `header` is the file's header when
 * the caller has read it (`null`: not DICOM); when it is not given, the seed and series layouts
 * read it as they need it.
 *
 * - `seed`: `Last_First_MRN/…` as export-plan writes it: an RT object goes under its plan's folder
 *   when the record names the plan (`planLabel`) or is the plan itself; every other object under
 *   `Last_First_MRN/DICOM/<Modality>_<SeriesUID>/`.
 * - `series`: `<PatientID>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm`.
 * - `flat`: the file's own name.
 */
export function recordPath(rec: FileRecord, layout: Layout, header?: DicomHeader | null): string {
  const name = sanitizeName(basename(rec.path), { maxBytes: 128 });
  if (layout === "flat") return name;
  if (layout === "series" && header === undefined && rec.patientId && rec.studyUid && rec.seriesUid && rec.sopInstanceUid) {
    return seriesPath(rec, name);
  }
  const h = header === undefined ? inspectHeader(rec.path) : header;
  if (!h) return posix.join(NOT_DICOM_FOLDER, name);
  const f = h.fields;
  const ids = {
    patientId: f.patientId ?? rec.patientId, studyUid: f.studyUid ?? rec.studyUid, seriesUid: f.seriesUid ?? rec.seriesUid,
    sopInstanceUid: f.sopInstanceUid ?? rec.sopInstanceUid,
  };
  if (layout === "series") return seriesPath(ids, name);
  const pn = personNameParts(h.patientName);
  const patient = patientFolderName({ family: pn.family, given: pn.given, patientId: ids.patientId ?? "" });
  // The plan the record names (export-plan's records do), or the plan itself: folder from its label.
  const isPlan = objectKind(f.sopClassUid, f.modality) === "plan";
  const label = typeof rec.planLabel === "string" && rec.planLabel ? rec.planLabel : isPlan ? h.planLabel ?? ids.sopInstanceUid : undefined;
  const place = treePlace(patient, label === undefined ? undefined : planFolderName(label), {
    category: f.category, name: basename(rec.path), sopClassUid: f.sopClassUid, modality: f.modality, seriesUid: ids.seriesUid,
    sopInstanceUid: ids.sopInstanceUid,
  });
  return place!.path;
}
