/**
 * Where `serve` and `retrieve` put a received object:
 * `<root>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`, every
 * component made safe for every OS (no separators or traversal, no reserved Windows names,
 * no control characters, bounded length).
 */
import { join } from "node:path";

const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

/** One path component from a DICOM value: unsafe characters become `_`; empty becomes `fallback`. */
export function safeComponent(value: string | undefined, fallback: string, maxLength = 64): string {
  // deno-lint-ignore no-control-regex
  let s = (value ?? "").trim().replace(/[\x00-\x1f\x7f<>:"/\\|?*]/g, "_").replace(/^\.+/, "_").replace(/[. ]+$/, "");
  if (s.length > maxLength) s = s.slice(0, maxLength);
  if (s === "" || s === "." || s === "..") s = fallback;
  if (RESERVED.test(s)) s = `_${s}`;
  return s;
}

export function storagePath(root: string, ids: { patientId?: string; studyUid?: string; seriesUid?: string; sopInstanceUid: string }): string {
  return join(
    root,
    safeComponent(ids.patientId, "NO_PATIENT_ID"),
    safeComponent(ids.studyUid, "NO_STUDY_UID"),
    safeComponent(ids.seriesUid, "NO_SERIES_UID"),
    `${safeComponent(ids.sopInstanceUid, "NO_SOP_UID")}.dcm`,
  );
}
