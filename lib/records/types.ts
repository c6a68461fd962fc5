/**
 * The record types commands exchange as NDJSON (one JSON object per line, each with a `type`).
 * Field names are camelCase, DICOM UIDs are strings, dates are ISO 8601 (`YYYY-MM-DD`).
 * Commands act on the types they understand and pass every other record through unchanged;
 * results of acting on a record ride on it (e.g. `push: {status, peer}`) rather than forming a new shape.
 */

/** Any record: an object with a string `type`. Unknown fields are kept as they are. */
export interface RtRecord {
  type: string;
  [field: string]: unknown;
}

/** A person name split into its DICOM PN components (alphabetic group). */
export interface PersonName {
  family?: string;
  given?: string;
  middle?: string;
  prefix?: string;
  suffix?: string;
  /** Ideographic / phonetic groups when present (`=`-separated in DICOM). */
  ideographic?: string;
  phonetic?: string;
}

/** A patient found in a source. */
export interface PatientRecord extends RtRecord {
  type: "patient";
  patientId: string;
  name?: PersonName;
  /** ISO 8601 date, e.g. `1956-03-07`. */
  birthDate?: string;
  sex?: string;
  /** Where the patient was found (peer name, database URL, folder). */
  source?: string;
}

/** Catalog status of a plan in a planning system. */
export type PlanStatus =
  | "Deliverable"
  | "Authorized"
  | "Disallowed"
  | "Under Treatment"
  | "Discontinued"
  | "Completed"
  | (string & Record<never, never>);

/** DICOM RT plan approval status (300E,0002). */
export type ApprovalStatus = "APPROVED" | "UNAPPROVED" | "REJECTED" | (string & Record<never, never>);

/** A treatment plan. */
export interface PlanRecord extends RtRecord {
  type: "plan";
  patientId: string;
  /** RTPLAN SOP Instance UID when known. */
  planUid?: string;
  label?: string;
  name?: string;
  status?: PlanStatus;
  approval?: ApprovalStatus;
  machines?: string[];
  source?: string;
}

/** Kinds of files found in a planning system's vault or an export tree. */
export type FileCategory =
  | "dicom"
  | "plan-file"
  | "fraction-file"
  | "live-image"
  | "log"
  | "screenshot"
  | "document"
  | "photo"
  | (string & Record<never, never>);

/** A file, DICOM or not. DICOM fields are present when the file is DICOM and has them. */
export interface FileRecord extends RtRecord {
  type: "file";
  path: string;
  bytes?: number;
  /** Lower-case hex SHA-256 of the file's bytes, computed from those bytes by the stage that emitted the record. */
  sha256?: string;
  /**
   * The SHA-256 the ledger recorded for the file, on a record of a file an earlier run put in place
   * and this run did not read again (`copy: "done-before"`); `sha256` is then absent.
   */
  ledgerSha256?: string;
  category?: FileCategory;
  sopClassUid?: string;
  sopInstanceUid?: string;
  modality?: string;
  patientId?: string;
  studyUid?: string;
  seriesUid?: string;
  transferSyntaxUid?: string;
  planUid?: string;
  /** Set when the producer could not read the path (a dangling link, no permission): stages fail this item alone. */
  error?: string;
}

/**
 * True when `value` is an object with a string `type` field.
 *
 * @example
 * ```ts
 * isRecord(JSON.parse('{"type":"patient","patientId":"1"}')); // true
 * ```
 */
export function isRecord(value: unknown): value is RtRecord {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    typeof (value as { type?: unknown }).type === "string";
}

/**
 * True for a `patient` record.
 *
 * @example
 * ```ts
 * for await (const r of readRecords(process.stdin)) if (isPatientRecord(r)) console.log(r.patientId);
 * ```
 */
export function isPatientRecord(record: RtRecord): record is PatientRecord {
  return record.type === "patient";
}

/**
 * True for a `plan` record.
 *
 * @example
 * ```ts
 * for await (const r of readRecords(process.stdin)) if (isPlanRecord(r)) console.log(r.label, r.approval);
 * ```
 */
export function isPlanRecord(record: RtRecord): record is PlanRecord {
  return record.type === "plan";
}

/**
 * True for a `file` record (one with a string `path`).
 *
 * @example
 * ```ts
 * for await (const r of readRecords(process.stdin)) if (isFileRecord(r)) console.log(r.path, r.sha256);
 * ```
 */
export function isFileRecord(record: RtRecord): record is FileRecord {
  return record.type === "file" && typeof record.path === "string";
}

/**
 * File categories that hold DICOM objects: `dicom`, the category of every DICOM object's record,
 * and `image`/`rt-object`, which catalog views and records of earlier versions use for the same.
 */
export const DICOM_CATEGORIES: ReadonlySet<string> = new Set(["dicom", "image", "rt-object"]);

/**
 * True when a `file` record's file is (or may be) DICOM: no category, a DICOM category, or a SOP
 * class on the record. Documents, plan files, logs… are not.
 */
export function isDicomFileRecord(record: RtRecord): boolean {
  const category = record.category;
  return category === undefined || DICOM_CATEGORIES.has(String(category)) || typeof record.sopClassUid === "string";
}
