import { kindModality } from "../dicom/rt.ts";
import { type RtObjectSummary, sopClassLabel } from "./summary.ts";

/** An image series under a structure set: instances found, and how many the structure set lists. */
export interface ImageSeriesNode {
  seriesUid: string;
  modality?: string;
  /** Instances of this series found in the input. */
  count: number;
  /** Instances of this series the structure set references (0 when it names only the series). */
  referenced: number;
  /** The transfer syntaxes its instances are stored in (sorted; several when a series is mixed). */
  transferSyntaxUids?: string[];
}

/** Something referenced that is not in the input: what it should be and who references it. */
export interface MissingReference {
  /** What the object should be: RTPLAN, RTSTRUCT, image, image series. */
  kind: string;
  sopInstanceUid?: string;
  /** For images: their series, and the instances of it that are missing. */
  seriesUid?: string;
  sopInstanceUids?: string[];
  /** SOP Instance UID of the object that holds the reference. */
  referencedBy: string;
}

export interface DoseNode {
  sopInstanceUid: string;
  transferSyntaxUid?: string;
  /** Dose Summation Type: PLAN (whole plan), BEAM (per beam), FRACTION, … */
  summation?: string;
  beams?: number[];
  path?: string;
}

export interface TreatmentRecordNode {
  sopInstanceUid: string;
  transferSyntaxUid?: string;
  /** SOP class in words: RT Beams Treatment Record, RT Treatment Summary Record, … */
  kind?: string;
  date?: string;
  fraction?: number;
  /** Treatment machine named in the record. */
  machine?: string;
  path?: string;
}

export interface RtImageNode {
  sopInstanceUid: string;
  transferSyntaxUid?: string;
  label?: string;
  beams?: number[];
  path?: string;
}

export interface RegistrationNode {
  sopInstanceUid: string;
  transferSyntaxUid?: string;
  kind?: string;
  frameOfReferenceUids: string[];
  path?: string;
}

/** One plan and everything that belongs to it: the `plan` record that `show` emits. */
export interface ShowPlanRecord {
  type: "plan";
  patientId?: string;
  patientName?: string;
  sopInstanceUid: string;
  /** Same as sopInstanceUid: the name other commands' plan records use. */
  planUid: string;
  label?: string;
  name?: string;
  approval?: string;
  machines: string[];
  beams: number;
  path?: string;
  /** The transfer syntax the plan is stored in. */
  transferSyntaxUid?: string;
  /** null when the plan references no structure set (skeleton plans). */
  structureSet: {
    sopInstanceUid: string;
    label?: string;
    transferSyntaxUid?: string;
    /** True when the structure set is referenced but not in the input. */
    missing?: boolean;
    imageSeries: ImageSeriesNode[];
    path?: string;
  } | null;
  doses: DoseNode[];
  records: TreatmentRecordNode[];
  images: RtImageNode[];
  registrations: RegistrationNode[];
  missing: MissingReference[];
}

/** Objects of one patient that no plan references, per series. */
export interface UnconnectedRecord {
  type: "unconnected";
  patientId?: string;
  patientName?: string;
  objects: { seriesUid?: string; modality?: string; count: number; transferSyntaxUids?: string[] }[];
  /** References made by unconnected objects to objects not in the input (a dose whose plan is absent). */
  missing: MissingReference[];
}

/** The reference tree of one patient. */
export interface PatientTree {
  patientId?: string;
  patientName?: string;
  plans: ShowPlanRecord[];
  unconnected: UnconnectedRecord;
}

/** The reference tree of everything found, per patient (sorted by patient ID). */
export interface ReferenceTree {
  patients: PatientTree[];
}

interface SeriesInfo {
  patientId?: string;
  patientName?: string;
  modality?: string;
  frameUid?: string;
  instances: Set<string>;
  /** Objects without a SOP Instance UID, counted but not referable. */
  anonymous: number;
  transferSyntaxUids: Set<string>;
}

function syntaxList(info: SeriesInfo | undefined): string[] | undefined {
  return info && info.transferSyntaxUids.size ? [...info.transferSyntaxUids].sort() : undefined;
}

const NO_SERIES = "";

/**
 * Everything is keyed by (patient, UID): two patients whose objects share a UID (a series of
 * doses of twelve patients, a plan UID a TPS reused) stay apart, and a reference resolves only
 * within its own patient.
 */
function key(patientId: string | undefined, uid: string): string {
  return `${patientId ?? ""}\u0000${uid}`;
}

function cmp(a: string | undefined, b: string | undefined): number {
  const x = a ?? "", y = b ?? "";
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Builds the RT reference tree (as DicomTools' `show` does) from object summaries: per patient, each
 * RTPLAN with its RTSTRUCT and the image series that references (instance counts), its RTDOSEs,
 * treatment records, RT images and the registrations that touch its frames of reference or image
 * series; then, per series, what no plan reaches. A referenced object that is not in the input is
 * listed under `missing` (with the UID and what it should be), never dropped.
 *
 * Images are kept as series counts and instance UIDs only, so memory grows with the number of
 * files by a UID each, not by data sets.
 *
 * @example
 * ```ts
 * import { scanDicom } from "../fs/scan.ts";
 * import { buildReferenceTree, summarizeObject } from "./mod.ts";
 * const summaries = [];
 * for await (const r of scanDicom(["export/"])) if (r.file) summaries.push(summarizeObject(r.file, r.path));
 * for (const p of buildReferenceTree(summaries).patients) {
 *   for (const plan of p.plans) console.log(p.patientId, plan.label, plan.doses.length, "doses");
 * }
 * ```
 */
export function buildReferenceTree(objects: Iterable<RtObjectSummary>): ReferenceTree {
  const builder = new ReferenceTreeBuilder();
  for (const o of objects) builder.add(o);
  return builder.build();
}

/**
 * Builds a reference tree from objects added one at a time (for streaming scans): images keep only
 * their series, patient and instance UID; RT objects keep their summary.
 *
 * @example
 * ```ts
 * const builder = new ReferenceTreeBuilder();
 * for await (const r of scanDicom(["export/"])) if (r.file) builder.add(summarizeObject(r.file, r.path));
 * const tree = builder.build();
 * ```
 */
export class ReferenceTreeBuilder {
  /** By key(patient, series UID). */
  readonly #series = new Map<string, SeriesInfo>();
  /** key(patient, instance UID) → series UID. */
  readonly #instanceSeries = new Map<string, string>();
  readonly #rt: RtObjectSummary[] = [];
  /** By key(patient, SOP Instance UID); the first of several copies is kept. */
  readonly #byUid = new Map<string, RtObjectSummary>();
  readonly #patientNames = new Map<string, string | undefined>();

  /**
   * Adds one object. A second object with the UID of one already added for the same patient is
   * not added again (the first is kept; `show` warns when their content differs).
   */
  add(o: RtObjectSummary): void {
    if (o.sopInstanceUid && this.#instanceSeries.has(key(o.patientId, o.sopInstanceUid))) return;
    const seriesUid = o.seriesUid ?? NO_SERIES;
    const seriesKey = key(o.patientId, seriesUid);
    let info = this.#series.get(seriesKey);
    if (!info) {
      // The kind comes from the SOP class: a structure set whose Modality says RTDOSE is listed as RTSTRUCT.
      info = {
        patientId: o.patientId, modality: kindModality(o.kind, o.modality), frameUid: o.frameOfReferenceUid, instances: new Set(), anonymous: 0,
        transferSyntaxUids: new Set(),
      };
      this.#series.set(seriesKey, info);
    }
    if (o.sopInstanceUid) {
      info.instances.add(o.sopInstanceUid);
      this.#instanceSeries.set(key(o.patientId, o.sopInstanceUid), seriesUid);
    } else info.anonymous++;
    if (o.transferSyntaxUid) info.transferSyntaxUids.add(o.transferSyntaxUid);
    const pid = o.patientId ?? "";
    const names = this.#patientNames;
    if (!names.has(pid) || (names.get(pid) === undefined && o.patientName)) names.set(pid, o.patientName);
    if (o.kind !== "image" && o.sopInstanceUid) {
      this.#rt.push(o);
      this.#byUid.set(key(o.patientId, o.sopInstanceUid), o);
    }
  }

  /** The tree of everything added so far. */
  build(): ReferenceTree {
    return assemble(this.#series, this.#instanceSeries, this.#rt, this.#byUid, this.#patientNames);
  }
}

function assemble(
  series: Map<string, SeriesInfo>,
  instanceSeries: Map<string, string>,
  rt: RtObjectSummary[],
  byUid: Map<string, RtObjectSummary>,
  patientNames: Map<string, string | undefined>,
): ReferenceTree {
  // Who references each plan.
  const byPlan = new Map<string, RtObjectSummary[]>();
  for (const o of rt) {
    if (o.kind === "dose" || o.kind === "record" || o.kind === "rtImage") {
      for (const p of o.referencedPlanUids ?? []) {
        const k = key(o.patientId, p);
        const list = byPlan.get(k) ?? [];
        list.push(o);
        byPlan.set(k, list);
      }
    }
  }
  const registrations = rt.filter((o) => o.kind === "registration");

  const connectedUids = new Set<string>();
  const connectedSeries = new Set<string>();
  const patients = new Map<string, PatientTree>();
  const patientOf = (pid: string | undefined): PatientTree => {
    const key = pid ?? "";
    let p = patients.get(key);
    if (!p) {
      const patientName = patientNames.get(key);
      p = {
        patientId: pid,
        patientName,
        plans: [],
        unconnected: { type: "unconnected", patientId: pid, patientName, objects: [], missing: [] },
      };
      patients.set(key, p);
    }
    return p;
  };

  const plans = rt.filter((o) => o.kind === "plan")
    .sort((a, b) => cmp(a.patientId, b.patientId) || cmp(a.label, b.label) || cmp(a.sopInstanceUid, b.sopInstanceUid));
  for (const plan of plans) {
    const uid = plan.sopInstanceUid!;
    const pid = plan.patientId;
    connectedUids.add(key(pid, uid));
    const missing: MissingReference[] = [];
    const planFrames = new Set<string>();
    const planSeries = new Set<string>();
    if (plan.frameOfReferenceUid) planFrames.add(plan.frameOfReferenceUid);

    let structureSet: ShowPlanRecord["structureSet"] = null;
    const ssUid = plan.structureSetUids?.[0];
    if (ssUid) {
      const ss = byUid.get(key(pid, ssUid));
      if (!ss || ss.kind !== "structureSet") {
        structureSet = { sopInstanceUid: ssUid, missing: true, imageSeries: [] };
        missing.push({ kind: "RTSTRUCT", sopInstanceUid: ssUid, referencedBy: uid });
      } else {
        connectedUids.add(key(pid, ssUid));
        for (const f of ss.referencedFrameUids ?? []) planFrames.add(f);
        const refs = structureSetSeries(ss, instanceSeries);
        const imageSeries: ImageSeriesNode[] = [];
        for (const { seriesUid, instanceUids } of refs) {
          if (seriesUid === NO_SERIES) {
            // Contour images listed only per contour, and not in the input: their series is unknown.
            missing.push({ kind: "image", sopInstanceUids: instanceUids, referencedBy: ssUid });
            continue;
          }
          const found = series.get(key(pid, seriesUid));
          planSeries.add(seriesUid);
          if (found) {
            connectedSeries.add(key(pid, seriesUid));
            if (found.frameUid) planFrames.add(found.frameUid);
          }
          imageSeries.push(clean({
            seriesUid,
            modality: found?.modality,
            count: found ? found.instances.size + found.anonymous : 0,
            referenced: instanceUids.length,
            transferSyntaxUids: syntaxList(found),
          }));
          const absent = instanceUids.filter((i) => !found?.instances.has(i));
          if (!found && instanceUids.length === 0) {
            missing.push({ kind: "image series", seriesUid, referencedBy: ssUid });
          } else if (absent.length) {
            missing.push({ kind: "image", seriesUid, sopInstanceUids: absent, referencedBy: ssUid });
          }
        }
        structureSet = clean({ sopInstanceUid: ssUid, label: ss.label, transferSyntaxUid: ss.transferSyntaxUid, imageSeries, path: ss.path });
      }
    }
    for (const extra of plan.structureSetUids?.slice(1) ?? []) {
      if (!byUid.has(key(pid, extra))) missing.push({ kind: "RTSTRUCT", sopInstanceUid: extra, referencedBy: uid });
      else connectedUids.add(key(pid, extra));
    }

    const doses: DoseNode[] = [];
    const records: TreatmentRecordNode[] = [];
    const images: RtImageNode[] = [];
    for (const o of byPlan.get(key(pid, uid)) ?? []) {
      connectedUids.add(key(pid, o.sopInstanceUid!));
      if (o.kind === "dose") {
        doses.push(clean({ sopInstanceUid: o.sopInstanceUid!, summation: o.summation, beams: o.beamNumbers, transferSyntaxUid: o.transferSyntaxUid, path: o.path }));
      } else if (o.kind === "record") {
        records.push(clean({
          sopInstanceUid: o.sopInstanceUid!, kind: sopClassLabel(o.sopClassUid), date: o.date, fraction: o.fraction,
          machine: o.machines?.[0], transferSyntaxUid: o.transferSyntaxUid, path: o.path,
        }));
      } else {
        images.push(clean({ sopInstanceUid: o.sopInstanceUid!, label: o.label, beams: o.beamNumbers, transferSyntaxUid: o.transferSyntaxUid, path: o.path }));
      }
    }
    doses.sort((a, b) => Number(a.summation !== "PLAN") - Number(b.summation !== "PLAN") ||
      (a.beams?.[0] ?? 0) - (b.beams?.[0] ?? 0) || cmp(a.sopInstanceUid, b.sopInstanceUid));
    records.sort((a, b) => cmp(a.date, b.date) || (a.fraction ?? 0) - (b.fraction ?? 0) || cmp(a.sopInstanceUid, b.sopInstanceUid));
    images.sort((a, b) => cmp(a.label, b.label) || cmp(a.sopInstanceUid, b.sopInstanceUid));

    const regs: RegistrationNode[] = [];
    for (const r of registrations) {
      if ((r.patientId ?? "") !== (pid ?? "")) continue;
      const touches = (r.referencedFrameUids ?? []).some((f) => planFrames.has(f)) ||
        (r.referencedSeriesUids ?? []).some((s) => planSeries.has(s)) ||
        (r.referencedInstanceUids ?? []).some((i) => planSeries.has(instanceSeries.get(key(pid, i)) ?? NO_SERIES));
      if (!touches) continue;
      connectedUids.add(key(pid, r.sopInstanceUid!));
      regs.push(clean({
        sopInstanceUid: r.sopInstanceUid!, kind: sopClassLabel(r.sopClassUid), frameOfReferenceUids: r.referencedFrameUids ?? [],
        transferSyntaxUid: r.transferSyntaxUid, path: r.path,
      }));
    }

    const record: ShowPlanRecord = clean({
      type: "plan" as const,
      patientId: plan.patientId,
      patientName: plan.patientName,
      sopInstanceUid: uid,
      planUid: uid,
      label: plan.label,
      name: plan.name,
      approval: plan.approval,
      machines: plan.machines ?? [],
      beams: plan.beams ?? 0,
      path: plan.path,
      transferSyntaxUid: plan.transferSyntaxUid,
      structureSet,
      doses,
      records,
      images,
      registrations: regs,
      missing,
    });
    patientOf(plan.patientId).plans.push(record);
  }

  // What no plan reaches, per series; and the references such objects make to absent plans.
  for (const [seriesKey, info] of series) {
    if (connectedSeries.has(seriesKey)) continue;
    const seriesUid = seriesKey.slice(seriesKey.indexOf("\u0000") + 1);
    let count = info.anonymous;
    for (const i of info.instances) if (!connectedUids.has(key(info.patientId, i))) count++;
    if (count === 0) continue;
    patientOf(info.patientId).unconnected.objects.push(clean({
      seriesUid: seriesUid === NO_SERIES ? undefined : seriesUid, modality: info.modality, count, transferSyntaxUids: syntaxList(info),
    }));
  }
  for (const o of rt) {
    if (connectedUids.has(key(o.patientId, o.sopInstanceUid!))) continue;
    for (const p of o.referencedPlanUids ?? []) {
      if (!byUid.has(key(o.patientId, p))) {
        patientOf(o.patientId).unconnected.missing.push({ kind: "RTPLAN", sopInstanceUid: p, referencedBy: o.sopInstanceUid! });
      }
    }
  }

  const list = [...patients.values()].sort((a, b) => cmp(a.patientId, b.patientId));
  for (const p of list) {
    p.unconnected.objects.sort((a, b) => cmp(a.modality, b.modality) || cmp(a.seriesUid, b.seriesUid));
  }
  return { patients: list };
}

/** The image series a structure set references, with the instances it lists for each. */
function structureSetSeries(
  ss: RtObjectSummary,
  instanceSeries: Map<string, string>,
): { seriesUid: string; instanceUids: string[] }[] {
  if (ss.referencedSeries?.length) return ss.referencedSeries;
  const bySeries = new Map<string, string[]>();
  for (const i of ss.contourInstanceUids ?? []) {
    const s = instanceSeries.get(key(ss.patientId, i)) ?? NO_SERIES;
    const list = bySeries.get(s) ?? [];
    list.push(i);
    bySeries.set(s, list);
  }
  return [...bySeries].map(([seriesUid, instanceUids]) => ({ seriesUid, instanceUids }));
}

/** Drops undefined fields so records print without them. */
function clean<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/**
 * The records `show` emits, in order: each patient's plans, then its unconnected objects.
 *
 * @example
 * ```ts
 * await writeRecords(treeRecords(buildReferenceTree(summaries)), process.stdout);
 * ```
 */
export function* treeRecords(tree: ReferenceTree): Generator<ShowPlanRecord | UnconnectedRecord> {
  for (const p of tree.patients) {
    yield* p.plans;
    yield p.unconnected;
  }
}
