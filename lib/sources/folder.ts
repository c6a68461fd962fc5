import { resolve } from "node:path";
import { scanDicomSync } from "../fs/scan.ts";
import { personNameParts } from "../layout/sanitize.ts";
import type { PatientRecord, PlanRecord } from "../records/types.ts";
import { checkListFilter, DEFAULT_PHANTOM_PATTERNS, dicomPlanType, isPhantom, type ListFilter, type ListProblem, planTypeIncluded } from "./filter.ts";
import { buildReferenceTree, type ReferenceTree } from "../rt/tree.ts";
import { type RtObjectSummary, summarizeObject } from "../rt/summary.ts";

/** A folder of DICOM files read once: object summaries (paths included) and the reference tree. */
export interface FolderIndex {
  root: string;
  objects: RtObjectSummary[];
  tree: ReferenceTree;
  /**
   * Patient-level details from the first object of each patient; `qualityControlSubject` YES when
   * any object says so, `latestDate` the latest date any object of the patient carries.
   */
  patients: Map<string, FolderPatient>;
  /** Files that could not be read, with the reason. */
  errors: string[];
  byPath: Map<string, RtObjectSummary>;
}

/** What a folder says about one patient. */
export interface FolderPatient {
  name?: string;
  birthDate?: string;
  sex?: string;
  qualityControlSubject?: string;
  latestDate?: string;
}

const cache = new Map<string, FolderIndex>();

/** Reads every DICOM header under `root` (once per process) and builds the reference tree. */
export function indexFolder(root: string): FolderIndex {
  const abs = resolve(root);
  const hit = cache.get(abs);
  if (hit) return hit;
  const objects: RtObjectSummary[] = [];
  const patients = new Map<string, FolderPatient>();
  const errors: string[] = [];
  for (const r of scanDicomSync([abs])) {
    if (r.error !== undefined) {
      errors.push(r.error);
      continue;
    }
    const s = summarizeObject(r.file, r.path);
    objects.push(s);
    const id = s.patientId ?? "";
    const d = r.file.dataset;
    let patient = patients.get(id);
    if (!patient) {
      patient = { name: d.string("PatientName"), birthDate: d.string("PatientBirthDate"), sex: d.string("PatientSex") };
      patients.set(id, patient);
    }
    if (d.string("QualityControlSubject")?.trim().toUpperCase() === "YES") patient.qualityControlSubject = "YES";
    if (s.latestDate && (!patient.latestDate || s.latestDate > patient.latestDate)) patient.latestDate = s.latestDate;
  }
  const byPath = new Map(objects.filter((o) => o.path).map((o) => [o.path!, o]));
  const index = { root: abs, objects, tree: buildReferenceTree(objects), patients, errors, byPath };
  cache.set(abs, index);
  return index;
}

function isoDate(da: string | undefined): string | undefined {
  return da && /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : undefined;
}

/**
 * Patients and plans of a folder, as `list-patients --from folder` emits them, filtered by what the
 * DICOM carries (docs/export.md, "Filters per source"):
 * - `patientIds`: those patients (one not in the folder comes out as a problem);
 * - `since` (a date, ISO): a patient is listed when one of its objects carries a date on or after
 *   it (Instance Creation, Study, Series, Content, RT Plan, Structure Set or Treatment Date), with
 *   the plans whose own objects (plan, structure set, doses, records, RT images) do;
 * - QA plans (Plan Intent VERIFICATION, MACHINE_QA, QA) and setup plans (every beam a setup beam)
 *   are left out unless `includePlanTypes` names QA / SETUP;
 * - phantom records (Quality Control Subject YES, or ID/name matching `phantomPatterns`) are left
 *   out unless `includePhantoms`.
 * Plan statuses and the physician and LOT simulation plan types are refused ({@linkcode checkListFilter}).
 */
export function* listFolder(root: string, filter: ListFilter = {}): Generator<PatientRecord | PlanRecord | ListProblem> {
  checkListFilter("folder", filter);
  const index = indexFolder(root);
  const source = `folder:${index.root}`;
  const wanted = filter.patientIds?.length ? new Set(filter.patientIds) : undefined;
  const since = filter.since?.slice(0, 10);
  const patterns = filter.phantomPatterns ?? DEFAULT_PHANTOM_PATTERNS;
  const found = new Set<string>();
  for (const p of index.tree.patients) {
    const id = p.patientId ?? "";
    if (wanted && !wanted.has(id)) continue;
    found.add(id);
    const info = index.patients.get(id) ?? {};
    const pn = personNameParts(info.name);
    if (!filter.includePhantoms && isPhantom({ patientId: id, name: info.name, family: pn.family, given: pn.given, ...info }, patterns)) continue;
    if (since && !(info.latestDate && info.latestDate >= since)) continue;
    const plans: PlanRecord[] = [];
    for (const plan of p.plans) {
      const summary = plan.path ? index.byPath.get(plan.path) : undefined;
      const type = summary ? dicomPlanType(summary) : undefined;
      if (!planTypeIncluded(type, filter)) continue;
      if (since && !(latestOfPlan(index, plan) >= since)) continue;
      const pr: PlanRecord = { type: "plan", patientId: id, planUid: plan.sopInstanceUid, label: plan.label ?? plan.sopInstanceUid, source, machines: plan.machines };
      if (plan.name) pr.name = plan.name;
      if (plan.approval) pr.approval = plan.approval;
      if (summary?.planIntent) pr.planIntent = summary.planIntent;
      if (type) pr.planType = type;
      plans.push(pr);
    }
    const rec: PatientRecord = { type: "patient", patientId: id, name: { family: pn.family, given: pn.given }, source, plans: plans.length };
    const birth = isoDate(info.birthDate);
    if (birth) rec.birthDate = birth;
    if (info.sex) rec.sex = info.sex;
    yield rec;
    yield* plans;
  }
  for (const id of filter.patientIds ?? []) {
    if (!found.has(id)) yield { type: "problem", problem: { what: `patient ${id}`, reason: `not in folder "${index.root}"` } };
  }
}

/** The latest date of a plan's own objects (the plan, its structure set, doses, records, RT images); "" when none has one. */
function latestOfPlan(index: FolderIndex, plan: ReferenceTree["patients"][number]["plans"][number]): string {
  const paths = [plan.path, plan.structureSet?.path, ...plan.doses.map((d) => d.path), ...plan.records.map((r) => r.path), ...plan.images.map((i) => i.path)];
  let latest = "";
  for (const path of paths) {
    const d = path ? index.byPath.get(path)?.latestDate : undefined;
    if (d && d > latest) latest = d;
  }
  return latest;
}

/**
 * One DICOM object found in a folder (or retrieved from a peer). Whether it is filed with a plan
 * is not said here: the export asks the layout, from the object's kind and the plan it exports.
 */
export interface FolderFile {
  path: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
  seriesUid?: string;
  modality?: string;
}

function folderFile(o: RtObjectSummary, path: string): FolderFile {
  return { path, sopClassUid: o.sopClassUid, sopInstanceUid: o.sopInstanceUid, seriesUid: o.seriesUid, modality: o.modality };
}

function planObjectPaths(index: FolderIndex, plan: ReferenceTree["patients"][number]["plans"][number]): FolderFile[] {
  const files: FolderFile[] = [];
  const add = (path: string | undefined, uid: string) => {
    if (!path) return;
    const o = index.byPath.get(path);
    files.push(o ? folderFile(o, path) : { path, sopInstanceUid: uid });
  };
  add(plan.path, plan.sopInstanceUid);
  if (plan.structureSet && !plan.structureSet.missing) add(plan.structureSet.path, plan.structureSet.sopInstanceUid);
  for (const d of plan.doses) add(d.path, d.sopInstanceUid);
  for (const r of plan.records) add(r.path, r.sopInstanceUid);
  for (const i of plan.images) add(i.path, i.sopInstanceUid);
  for (const g of plan.registrations) add(g.path, g.sopInstanceUid);
  return files;
}

/**
 * A plan's own DICOM in a folder: the plan, its structure set, doses, treatment records, RT images
 * and registrations; plus, as text, what the plan references but the folder lacks. With
 * `patientId`, only that patient's plan of this UID.
 */
export function folderPlanFiles(root: string, planUid: string, patientId?: string): { files: FolderFile[]; missing: string[] } | undefined {
  const index = indexFolder(root);
  for (const p of index.tree.patients) {
    // Two patients may hold a plan with one UID (a TPS that reused it): the record's patient decides.
    if (patientId !== undefined && (p.patientId ?? "") !== patientId) continue;
    const plan = p.plans.find((x) => x.sopInstanceUid === planUid);
    if (!plan) continue;
    const missing = plan.missing.map((m) => `${m.kind} ${m.sopInstanceUid ?? m.seriesUid ?? ""} (referenced by ${m.referencedBy})`);
    return { files: planObjectPaths(index, plan), missing };
  }
  return undefined;
}

/**
 * A patient's patient-level DICOM in a folder: every image series (CT, MR, PET, …, whether a plan
 * uses it or not), and RT objects that belong to no plan, so that nothing found is left out.
 */
export function folderPatientFiles(root: string, patientId: string): FolderFile[] {
  const index = indexFolder(root);
  const patient = index.tree.patients.find((p) => (p.patientId ?? "") === patientId);
  const claimed = new Set<string>();
  for (const plan of patient?.plans ?? []) for (const f of planObjectPaths(index, plan)) claimed.add(f.path);
  const out: FolderFile[] = [];
  for (const o of index.objects) {
    if ((o.patientId ?? "") !== patientId || !o.path || claimed.has(o.path)) continue;
    out.push(folderFile(o, o.path));
  }
  return out;
}
