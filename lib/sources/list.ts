import { Catalog } from "../catalog/catalog.ts";
import type { PeerSettings } from "../net/peer.ts";
import type { PatientRecord, PlanRecord } from "../records/types.ts";
import { listDicomPeer } from "./dicom.ts";
import { checkListFilter, type ListFilter, type ListProblem } from "./filter.ts";
import { listFolder } from "./folder.ts";

/** Where {@link listPatients} lists from. */
export type ListSource =
  | { from: "catalog"; db: string; vault?: string }
  | { from: "folder"; paths: string[] }
  | { from: "dicom"; peer: PeerSettings };

/** A row or patient that could not be used or found, reported rather than dropped. */
export type { ListProblem } from "./filter.ts";
/** Which patients and plans {@link listPatients} lists, the same for every source. */
export type { ListFilter } from "./filter.ts";

/**
 * `list-patients` as an async iterable: each patient record followed by its plan records, from a
 * catalog database, a folder of DICOM files or a Q/R peer, filtered as the command documents
 * (docs/export.md, "Filters per source"; approved plans only unless `includeUnapproved`, the
 * default of export-plan and retrieve too). A filter the source cannot apply throws a
 * `ListFilterError` (lib/sources/filter.ts) before the source is opened.
 *
 * @example
 * ```ts
 * for await (const r of listPatients({ from: "catalog", db: "sqlite:catalog.db", vault: "vault" }, { includeUnapproved: true })) {
 *   if (r.type === "plan") console.log(r.patientId, r.label, r.status, r.approval);
 * }
 * ```
 */
export async function* listPatients(source: ListSource, filter: ListFilter = {}): AsyncGenerator<PatientRecord | PlanRecord | ListProblem> {
  // Before anything is opened: a filter the source cannot apply is an error, never ignored.
  checkListFilter(source.from, filter);
  const all = listAll(source, filter);
  const records = filter.plans?.length ? selectPlans(all, filter.plans) : all;
  // Approved plans only unless asked for: the default of export-plan and retrieve too (seed 001).
  yield* filter.includeUnapproved ? records : approvedOnly(records, filter.onUnapproved);
}

async function* listAll(source: ListSource, filter: ListFilter): AsyncGenerator<PatientRecord | PlanRecord | ListProblem> {
  if (source.from === "folder") {
    // A patient asked for is missing only when no folder holds it (listed or filtered out).
    const missing = new Map<string, number>();
    for (const root of source.paths) {
      for (const r of listFolder(root, filter)) {
        if (r.type === "problem") {
          const what = (r as ListProblem).problem.what;
          missing.set(what, (missing.get(what) ?? 0) + 1);
        } else yield r;
      }
    }
    const where = source.paths.map((p) => `"${p}"`).join(", ");
    for (const [what, n] of missing) {
      if (n === source.paths.length) yield { type: "problem", problem: { what, reason: `not in folder ${where}` } };
    }
    return;
  }
  if (source.from === "dicom") {
    yield* listDicomPeer(source.peer, filter);
    return;
  }
  const catalog = await Catalog.open(source.db, source.vault);
  try {
    yield* catalog.list(filter) as AsyncGenerator<PatientRecord | PlanRecord | ListProblem>;
  } finally {
    await catalog.close();
  }
}

/** A plan the default leaves out: its approval is known and is not APPROVED (as export-plan decides). */
export function isUnapproved(plan: { approval?: unknown }): boolean {
  return typeof plan.approval === "string" && plan.approval !== "" && plan.approval.toUpperCase() !== "APPROVED";
}

/**
 * Leaves out unapproved plans. A patient record says how many plan records follow it, so each
 * patient is held until its plans are read; a patient whose plans were all unapproved is left
 * out too (export-plan would otherwise take a patient without plans for "all of its plans").
 */
async function* approvedOnly(
  input: AsyncIterable<PatientRecord | PlanRecord | ListProblem>, onUnapproved: ((plan: PlanRecord) => void) | undefined,
): AsyncGenerator<PatientRecord | PlanRecord | ListProblem> {
  let patient: PatientRecord | undefined;
  let plans: PlanRecord[] = [];
  let dropped = 0;
  function* flush(): Generator<PatientRecord | PlanRecord> {
    if (patient && !(dropped > 0 && plans.length === 0)) {
      yield typeof patient.plans === "number" ? { ...patient, plans: plans.length } : patient;
      yield* plans;
    } else if (!patient) yield* plans;
    patient = undefined;
    plans = [];
    dropped = 0;
  }
  for await (const r of input) {
    if (r.type === "patient") {
      yield* flush();
      patient = r as PatientRecord;
    } else if (r.type === "plan") {
      if (isUnapproved(r)) {
        dropped++;
        onUnapproved?.(r as PlanRecord);
      } else plans.push(r as PlanRecord);
    } else yield r;
  }
  yield* flush();
}

/**
 * Only the plans named in `wanted` (by plan ID, plan UID or label), each after its patient record,
 * whose `plans` count becomes the number kept; patients left with none are left out. A name that
 * matched no plan at all is reported as a problem. (A label names a plan within a patient: across
 * patients several plans may share one; plan IDs and UIDs do not.)
 */
async function* selectPlans(records: AsyncIterable<PatientRecord | PlanRecord | ListProblem>, wanted: string[]): AsyncGenerator<PatientRecord | PlanRecord | ListProblem> {
  const names = new Set(wanted);
  const matched = new Set<string>();
  let patient: PatientRecord | undefined;
  let kept: PlanRecord[] = [];
  function* flush(): Generator<PatientRecord | PlanRecord> {
    if (patient && kept.length) yield { ...patient, plans: kept.length };
    yield* kept;
    patient = undefined;
    kept = [];
  }
  for await (const r of records) {
    if (r.type === "patient") {
      yield* flush();
      patient = r as PatientRecord;
    } else if (r.type === "plan") {
      const plan = r as PlanRecord;
      const hits = [plan.planId, plan.planUid, plan.label].filter((v): v is string => typeof v === "string" && names.has(v));
      if (hits.length === 0) continue;
      for (const h of hits) matched.add(h);
      if (patient && patient.patientId !== plan.patientId) yield* flush();
      kept.push(plan);
    } else yield r;
  }
  yield* flush();
  for (const name of wanted) {
    if (!matched.has(name)) yield { type: "problem", problem: { what: `plan ${name}`, reason: "no listed plan has this plan ID, UID or label" } };
  }
}

