/**
 * The hand-off file: a selection of patients and, per patient, the plans to export, as JSON — the
 * shape DicomTools 2.0's UI imports from a patient browser (seed 004: "patient IDs with
 * per-patient plan lists"). rtexport writes
 *
 * ```json
 * { "format": "rtexport-handoff", "version": 1, "created": "2025-01-31T10:00:00Z",
 *   "patients": [ { "patientId": "KU_PMRT_9", "plans": [ { "planId": "P-0042", "label": "RAD Model2" } ] } ] }
 * ```
 *
 * and reads that as well as the looser forms other tools write: a top-level array of patients,
 * `Patients`/`PatientId`/`PlanIds` in any letter case, plans as strings (a plan ID, UID or label)
 * or objects. A patient without plans means all of its plans. Nothing else in the file is used;
 * names in it are ignored (the patient list shows the names the source has).
 */

/** One patient of a hand-off: its ID and the plans to export (IDs, UIDs or labels; empty: all). */
export interface HandoffPatient {
  patientId: string;
  plans: string[];
}

/** A parsed hand-off file. */
export interface Handoff {
  patients: HandoffPatient[];
  /** Entries that could not be used, as sentences. */
  warnings: string[];
}

/** The largest hand-off file read (bytes of JSON text). */
export const MAX_HANDOFF_BYTES = 4 * 1024 * 1024;
/** The most patients a hand-off may hold. */
export const MAX_HANDOFF_PATIENTS = 20_000;

/** A malformed hand-off file. */
export class HandoffError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HandoffError";
  }
}

function field(obj: Record<string, unknown>, ...names: string[]): unknown {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  for (const [k, v] of Object.entries(obj)) if (wanted.has(k.toLowerCase().replace(/[_\s-]/g, ""))) return v;
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function text(v: unknown): string | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  if (typeof v !== "string") return undefined;
  const t = v.trim();
  return t === "" || t.length > 256 ? undefined : t;
}

/**
 * Reads a hand-off file's text (`name` names it in errors). A file that is not JSON, or holds no
 * list of patients, is a {@link HandoffError}; unusable entries become warnings.
 */
export function parseHandoff(json: string, name = "the hand-off file"): Handoff {
  if (json.length > MAX_HANDOFF_BYTES) throw new HandoffError(`Cannot read ${name}: larger than ${MAX_HANDOFF_BYTES / 1024 / 1024} MB`);
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (e) {
    throw new HandoffError(`Cannot read ${name}: not JSON (${(e as Error).message})`);
  }
  const list = Array.isArray(data) ? data : isObject(data) ? field(data, "patients", "patientlist", "selection") : undefined;
  if (!Array.isArray(list)) throw new HandoffError(`Cannot read ${name}: expected a "patients" list`);
  if (list.length > MAX_HANDOFF_PATIENTS) throw new HandoffError(`Cannot read ${name}: more than ${MAX_HANDOFF_PATIENTS} patients`);
  const warnings: string[] = [];
  const byId = new Map<string, HandoffPatient>();
  list.forEach((entry, i) => {
    const patientId = text(isObject(entry) ? field(entry, "patientid", "id", "mrn") : entry);
    if (!patientId) {
      warnings.push(`Entry ${i + 1} of ${name} has no patient ID and is left out`);
      return;
    }
    const plans: string[] = [];
    const rawPlans = isObject(entry) ? field(entry, "plans", "planids", "planlabels", "plan", "planid") : undefined;
    const items = Array.isArray(rawPlans) ? rawPlans : rawPlans === undefined ? [] : [rawPlans];
    for (const p of items) {
      const id = isObject(p) ? text(field(p, "planid", "id")) ?? text(field(p, "planuid", "sopinstanceuid", "uid")) ?? text(field(p, "label", "planlabel", "name")) : text(p);
      if (id) plans.push(id);
      else warnings.push(`A plan of patient ${patientId} in ${name} has no plan ID, UID or label and is left out`);
    }
    const seen = byId.get(patientId);
    if (seen) {
      for (const p of plans) if (!seen.plans.includes(p)) seen.plans.push(p);
    } else byId.set(patientId, { patientId, plans: [...new Set(plans)] });
  });
  return { patients: [...byId.values()], warnings };
}

/** A selected plan as a hand-off writes it. */
export interface HandoffPlanOut {
  planId?: string;
  planUid?: string;
  label?: string;
}

/** The hand-off file for a selection (patient IDs and plan identifiers only: no names). */
export function buildHandoff(patients: { patientId: string; plans: HandoffPlanOut[] }[], created: string): string {
  const out = {
    format: "rtexport-handoff",
    version: 1,
    created,
    patients: patients.map((p) => ({
      patientId: p.patientId,
      plans: p.plans.map((q) => ({
        ...(q.planId !== undefined ? { planId: q.planId } : {}),
        ...(q.planUid !== undefined ? { planUid: q.planUid } : {}),
        ...(q.label !== undefined ? { label: q.label } : {}),
      })),
    })),
  };
  return JSON.stringify(out, null, 2) + "\n";
}

/** True when a plan answers to `selector` (its plan ID, UID or label). */
export function planMatches(plan: HandoffPlanOut, selector: string): boolean {
  return plan.planId === selector || plan.planUid === selector || plan.label === selector;
}
