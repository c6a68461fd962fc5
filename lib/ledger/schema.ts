/** The ledger's tables and the entries stages write, as types (no code: every ledger module imports them). */

/** What the ledger tracks: one row per item and kind, updated as work proceeds. */
export type LedgerKind = "patient" | "plan" | "file" | "push" | "anonymize" | "retrieval" | "commit" | "authorization" | "group" | "handoff";
export type LedgerStatus = "pending" | "done" | "failed" | "skipped";

export interface LedgerItemRow {
  kind: string;
  key: string;
  status: string;
  patient_id: string | null;
  plan_key: string | null;
  source: string | null;
  dest: string | null;
  bytes: number | null;
  sha256: string | null;
  error: string | null;
  run_id: string;
  updated_at: string;
  /** Size and modification time (ms) of the source when it was copied (schema version 2). */
  source_bytes: number | null;
  source_mtime_ms: number | null;
}
export interface RunRow {
  id: string;
  command: string;
  host: string;
  started_at: string;
  finished_at: string | null;
  outcome: string | null;
  pid: number | null;
  job: string | null;
  pass: string | null;
  workers: number | null;
  /** End of the run's lease, ms on the database's clock; its heartbeat renews it. */
  lease_until: number | null;
  heartbeat_ms: number | null;
  started_ms: number | null;
  items_done: number | null;
  items_failed: number | null;
  files: number | null;
  bytes: number | null;
  /** Items other workers took over from this run after its lease ran out. */
  taken_over: number | null;
}
interface FolderRow {
  patient_key: string;
  folder: string;
  folder_key: string | null;
}
export interface JobRow {
  job: string;
  pass: string;
  updated_at: string;
}
export interface WorkRow {
  id: string;
  job: string;
  kind: string;
  key: string;
  patient_id: string | null;
  seq: number;
  pass: string;
  /** pending, claimed, done, failed */
  status: string;
  owner: string | null;
  previous_owner: string | null;
  lease_until: number | null;
  attempts: number;
  payload: string | null;
  files: number | null;
  bytes: number | null;
  error: string | null;
  updated_at: string;
}
interface SchemaRow {
  version: number;
  name: string;
  applied_at: string;
}
/** One audit event (lib/audit, schema version 3): who did what to which patient's data, from where to where, with what outcome. */
export interface LedgerAuditRow {
  id: string;
  run_id: string;
  at: string;
  action: string;
  user_name: string;
  host: string;
  patient_id: string | null;
  /** JSON: `[{uid, sopClasses: {uid: count}}]`. */
  studies: string;
  objects: number;
  failed: number;
  bytes: number;
  source: string;
  dest: string;
  outcome: string;
  outcome_text: string | null;
}
export interface LedgerSchema {
  rtx_ledger_audit: LedgerAuditRow;
  rtx_ledger_items: LedgerItemRow;
  rtx_ledger_runs: RunRow;
  rtx_ledger_folders: FolderRow;
  rtx_ledger_jobs: JobRow;
  rtx_ledger_work: WorkRow;
  rtx_ledger_schema: SchemaRow;
}

/**
 * One row of the ledger: an item of a kind (patient, plan, file, push…) by key, its status, and
 * what is known about it (patient, plan, source and destination, bytes, hash, error).
 */
export interface LedgerEntry {
  kind: LedgerKind;
  key: string;
  status: LedgerStatus;
  /** When absent on an update, the item keeps the patient it had. */
  patientId?: string;
  /** When absent on an update, the item keeps the plan group it had. */
  planKey?: string;
  source?: string;
  dest?: string;
  bytes?: number;
  sha256?: string;
  error?: string;
  /** The source's size and modification time (ms) when it was copied. */
  sourceBytes?: number;
  sourceMtimeMs?: number;
}
