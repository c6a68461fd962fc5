import { Catalog, type CatalogFilter } from "../catalog/catalog.ts";
import type { PeerSettings } from "../net/peer.ts";
import type { PatientRecord, PlanRecord, RtRecord } from "../records/types.ts";
import { listDicomPeer } from "./dicom.ts";
import { listFolder } from "./folder.ts";

/** Where {@link listPatients} lists from. */
export type ListSource =
  | { from: "catalog"; db: string; vault?: string }
  | { from: "folder"; paths: string[] }
  | { from: "dicom"; peer: PeerSettings };

/** Which patients and plans {@link listPatients} lists (the catalog's filter, and approval for every source). */
export interface ListFilter extends CatalogFilter {
  /**
   * Also plans whose approval is not APPROVED (seed 001: exporting an unapproved plan needs an
   * explicit authorization). Default: they are left out, as export-plan and retrieve leave them.
   */
  includeUnapproved?: boolean;
  /** Told about each plan left out for its approval (for a count on stderr). */
  onUnapproved?: (plan: PlanRecord) => void;
}

/** A catalog row that could not be used, reported rather than dropped. */
export interface ListProblem extends RtRecord {
  type: "problem";
  problem: { what: string; reason: string };
}

/**
 * `list-patients` as an async iterable: each patient record followed by its plan records, from a
 * catalog database, a folder of DICOM files or a Q/R peer, filtered as the command documents:
 * approved plans only unless `includeUnapproved` (the default of export-plan and retrieve too).
 *
 * @example
 * ```ts
 * for await (const r of listPatients({ from: "catalog", db: "sqlite:catalog.db", vault: "vault" }, { includeUnapproved: true })) {
 *   if (r.type === "plan") console.log(r.patientId, r.label, r.status, r.approval);
 * }
 * ```
 */
export async function* listPatients(source: ListSource, filter: ListFilter = {}): AsyncGenerator<PatientRecord | PlanRecord | ListProblem> {
  const records = filter.includeUnapproved ? listAll(source, filter) : approvedOnly(listAll(source, filter), filter.onUnapproved);
  yield* records;
}

async function* listAll(source: ListSource, filter: CatalogFilter): AsyncGenerator<PatientRecord | PlanRecord | ListProblem> {
  if (source.from === "folder") {
    for (const root of source.paths) yield* listFolder(root, filter);
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
