/**
 * Where `serve` and `retrieve` put a received object:
 * `<root>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`, every
 * component made safe for every OS (no separators or traversal, no reserved Windows names,
 * no control characters, bounded length).
 *
 * Different values never share a path: a value the sanitizer had to change (`1.2.3/4` and
 * `1.2.3_4` both become `1.2.3_4`) gets a suffix from a hash of the value as received
 * (`1.2.3_4~5f3a…`), so two objects end up in one file only if they carry the same UIDs.
 */
import { createHash } from "node:crypto";
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

/**
 * `safeComponent`, made one-to-one: when sanitizing changed a present value, 16 hex digits of its
 * SHA-256 are appended (64 bits: no collision by accident, none by search in practice).
 */
export function uniqueComponent(value: string | undefined, fallback: string): string {
  const safe = safeComponent(value, fallback);
  if (value === undefined || value === "" || safe === value) return safe;
  return `${safe}~${createHash("sha256").update(value).digest("hex").slice(0, 16)}`;
}

export function storagePath(root: string, ids: { patientId?: string; studyUid?: string; seriesUid?: string; sopInstanceUid: string }): string {
  return join(
    root,
    uniqueComponent(ids.patientId, "NO_PATIENT_ID"),
    uniqueComponent(ids.studyUid, "NO_STUDY_UID"),
    uniqueComponent(ids.seriesUid, "NO_SERIES_UID"),
    `${uniqueComponent(ids.sopInstanceUid, "NO_SOP_UID")}.dcm`,
  );
}
