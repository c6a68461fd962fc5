/**
 * The series layout: `<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`,
 * where `retrieve` puts what it fetched and `copy-files --layout series` copies to.
 */
import { posix } from "node:path";
import { sanitizeName } from "./sanitize.ts";

/** The identifiers the series layout files an object by. */
export interface SeriesIds {
  patientId?: string;
  studyUid?: string;
  seriesUid?: string;
  sopInstanceUid?: string;
}

function component(value: string | undefined, fallback: string): string {
  const text = value?.trim();
  return text ? sanitizeName(text) : fallback;
}

/**
 * The relative, `/`-separated path of an object in the series layout. Every component is
 * sanitized; a missing one becomes `NO_PATIENT_ID`, `NO_STUDY_UID`, `NO_SERIES_UID`, and a
 * missing SOP Instance UID leaves the file its sanitized `fallbackName`.
 */
export function seriesPath(ids: SeriesIds, fallbackName = "NO_SOP_UID.dcm"): string {
  const sop = ids.sopInstanceUid?.trim();
  return posix.join(
    component(ids.patientId, "NO_PATIENT_ID"),
    component(ids.studyUid, "NO_STUDY_UID"),
    component(ids.seriesUid, "NO_SERIES_UID"),
    sop ? `${sanitizeName(sop)}.dcm` : sanitizeName(fallbackName, { maxBytes: 128 }),
  );
}
