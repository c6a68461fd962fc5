/**
 * Selective retrieval of a patient's plans from a Q/R peer: find the RTPLAN instances, retrieve
 * only the selected ones, follow their references (structure set → image series; doses,
 * treatment records and RT images that reference the plan), retrieve only those, and compare
 * what was expected with what arrived. Never asks for a whole study.
 */
import { PLAN_DEPENDENT_MODALITIES, PLAN_OBJECT_MODALITIES, PLAN_SOP_CLASSES } from "../dicom/rt.ts";
import type { DataSet } from "../dicom/dataset.ts";
import type { RtRecord } from "../records/types.ts";
import type { ArrivalStore, ArrivedObject } from "./arrivals.ts";
import { identifier } from "../qr/identifier.ts";

/** The Q/R operations the planner needs (Study Root); implemented over lib/net by `session.ts`. */
export interface RetrieveTransport {
  find(identifier: DataSet): Promise<DataSet[]>;
  /**
   * C-MOVE or C-GET of what the identifier selects; objects arrive in the ArrivalStore before it
   * resolves. `known.instances`: the series' instance count, when a C-FIND already said it.
   */
  retrieve(identifier: DataSet, known?: { instances?: number }): Promise<RetrieveOutcome>;
}

export interface RetrieveOutcome {
  status: number;
  completed: number;
  failed: number;
  warning: number;
  errorComment?: string;
}

export interface PlanSelection {
  patientId: string;
  /** Plan labels to retrieve (RTPlanLabel, exact); all plans when empty. */
  planLabels?: string[];
  /** Only plans whose ApprovalStatus is APPROVED. */
  onlyApproved?: boolean;
}

/** One expected object or series that did not arrive. */
export interface Gap {
  kind: "RTPLAN" | "RTSTRUCT" | "IMAGE" | "RTDOSE" | "RTRECORD" | "RTIMAGE";
  sopInstanceUid?: string;
  seriesUid?: string;
  reason: string;
}

export interface PlanReport {
  planUid: string;
  label?: string;
  approval?: string;
  expected: number;
  arrived: number;
  missing: Gap[];
}

export interface SeriesReport {
  seriesUid: string;
  studyUid?: string;
  modality?: string;
  /** NumberOfSeriesRelatedInstances from the peer, when it answered it. */
  expected?: number;
  arrived: number;
  missing: Gap[];
}

/** The `retrieve-summary` record. */
export interface RetrieveSummary extends RtRecord {
  type: "retrieve-summary";
  patientId: string;
  plans: PlanReport[];
  /** Requested plan labels no plan of the patient has. */
  missingLabels: string[];
  /** Objects kept (written), and objects fetched only to be inspected and then dropped. */
  kept: number;
  inspectedAndDropped: number;
  /** Objects received that no request asked for (dropped). */
  unexpected: number;
  /** C-FIND/C-MOVE/C-GET requests sent. */
  requests: { find: number; retrieve: number };
  /** With `--series` or `--all`: expected vs arrived per series. */
  series?: SeriesReport[];
  /** Requests tried again after a transient failure, and requests asked for in parts after failing as a whole. */
  resilience?: { retries: number; fallbacks: number };
  /** Every expected object arrived, every requested label was found, and at least one plan was selected. */
  complete: boolean;
}

export interface RetrieveResult {
  /** Kept objects, with the plans each belongs to. */
  objects: { object: ArrivedObject; planUids: string[] }[];
  summary: RetrieveSummary;
}

interface CatalogInstance {
  studyUid: string;
  seriesUid: string;
  modality: string;
  sopInstanceUid: string;
  sopClassUid?: string;
  label?: string;
  approval?: string;
  /** Plans referenced, when the peer answered ReferencedRTPlanSequence (undefined: unknown). */
  refPlans?: string[];
}

interface CatalogSeries {
  studyUid: string;
  seriesUid: string;
  modality: string;
  count?: number;
}


const REFERENCED_SOP_INSTANCE_UID = 0x00081155;
const REFERENCED_RT_PLAN_SEQUENCE = 0x300c0002;
const REFERENCED_STRUCTURE_SET_SEQUENCE = 0x300c0060;
const REFERENCED_DOSE_SEQUENCE = 0x300c0080;
const REFERENCED_FRAME_OF_REFERENCE_SEQUENCE = 0x30060010;
const RT_REFERENCED_STUDY_SEQUENCE = 0x30060012;
const RT_REFERENCED_SERIES_SEQUENCE = 0x30060014;
const CONTOUR_IMAGE_SEQUENCE = 0x30060016;

function refUids(ds: DataSet, seq: number): string[] {
  return ds.items(seq).map((i) => i.string(REFERENCED_SOP_INSTANCE_UID)).filter((u): u is string => !!u);
}

/** Image series a structure set was drawn on, with the instances its contours reference. */
function referencedSeries(struct: DataSet): { studyUid?: string; seriesUid: string; images: string[] }[] {
  const out: { studyUid?: string; seriesUid: string; images: string[] }[] = [];
  for (const f of struct.items(REFERENCED_FRAME_OF_REFERENCE_SEQUENCE)) {
    for (const st of f.items(RT_REFERENCED_STUDY_SEQUENCE)) {
      const studyUid = st.string(REFERENCED_SOP_INSTANCE_UID);
      for (const se of st.items(RT_REFERENCED_SERIES_SEQUENCE)) {
        const seriesUid = se.string(0x0020000e);
        if (seriesUid) out.push({ studyUid, seriesUid, images: refUids(se, CONTOUR_IMAGE_SEQUENCE) });
      }
    }
  }
  return out;
}

function kindOf(modality: string): Gap["kind"] {
  return (PLAN_OBJECT_MODALITIES.has(modality) ? modality : "IMAGE") as Gap["kind"];
}

/** What the steps of one plan retrieval share: the peer, what arrived, and what was asked and kept. */
interface Planning {
  transport: RetrieveTransport;
  arrivals: ArrivalStore;
  /** C-FIND and retrieve requests sent. */
  requests: { find: number; retrieve: number };
  /** SOP Instance UIDs and Series Instance UIDs asked for (each is asked for once). */
  requested: Set<string>;
  requestedSeries: Set<string>;
  /** Kept SOP instance → the selected plans it belongs to. */
  owners: Map<string, Set<string>>;
  /** Objects fetched only to read them (a plan's label, a dose's plan) and then dropped. */
  inspectedAndDropped: number;
}

/** What the patient has, from C-FIND: series (with instance counts) and the RT instances with their plan attributes. */
interface Catalog {
  series: CatalogSeries[];
  instances: CatalogInstance[];
  byUid: Map<string, CatalogInstance>;
  seriesByUid: Map<string, CatalogSeries>;
}

/** A selected plan's expected object count and its gaps, as the steps find them. */
interface Expectation {
  count: number;
  gaps: Gap[];
}

/** Runs the selective retrieval; the caller writes the kept objects out. */
export async function retrievePlans(transport: RetrieveTransport, arrivals: ArrivalStore, selection: PlanSelection): Promise<RetrieveResult> {
  const p: Planning = {
    transport, arrivals, requests: { find: 0, retrieve: 0 }, requested: new Set(), requestedSeries: new Set(), owners: new Map(),
    inspectedAndDropped: 0,
  };
  // 1. What the patient has.
  const catalog = await findCatalog(p, selection.patientId);
  // 2. The plans.
  const labels = selection.planLabels?.filter((l) => l !== "") ?? [];
  const { selected, planGaps } = await selectPlans(p, catalog, labels, selection.onlyApproved === true);
  const selectedUids = new Set(selected.map((plan) => plan.sopInstanceUid));
  // 3. Per plan: structure sets, their image series, and the plan's own dose references.
  const expected = new Map<string, Expectation>();
  for (const plan of selected) {
    const e: Expectation = { count: 1, gaps: planGaps.get(plan.sopInstanceUid) ?? [] };
    expected.set(plan.sopInstanceUid, e);
    await followPlan(p, catalog, plan.sopInstanceUid, e);
  }
  // 4. Doses, treatment records and RT images that reference a selected plan.
  await collectDependents(p, catalog, selectedUids, expected);
  // 5. Whatever arrived without being kept (a peer sending more than asked) is dropped.
  let unexpected = 0;
  for (const o of arrivals.all()) {
    if (!p.owners.has(o.sopInstanceUid)) {
      arrivals.discard(o.sopInstanceUid);
      unexpected++;
    }
  }
  const plans: PlanReport[] = selected.map((plan) => {
    const e = expected.get(plan.sopInstanceUid)!;
    const arrived = [...p.owners.values()].filter((ps) => ps.has(plan.sopInstanceUid)).length;
    const r: PlanReport = { planUid: plan.sopInstanceUid, expected: Math.max(e.count, arrived), arrived, missing: e.gaps };
    if (plan.label !== undefined) r.label = plan.label;
    if (plan.approval !== undefined) r.approval = plan.approval;
    return r;
  });
  const objects = [...p.owners.entries()].map(([uid, ps]) => ({ object: arrivals.get(uid)!, planUids: [...ps] }));
  const missingLabels = labels.filter((l) => !selected.some((plan) => plan.label === l));
  const complete = plans.every((r) => r.missing.length === 0) && missingLabels.length === 0 && selected.length > 0;
  return {
    objects,
    summary: {
      type: "retrieve-summary", patientId: selection.patientId, plans, missingLabels, kept: objects.length,
      inspectedAndDropped: p.inspectedAndDropped, unexpected, requests: p.requests, complete,
    },
  };
}

async function find(p: Planning, fields: Record<string, string | DataSet[]>): Promise<DataSet[]> {
  p.requests.find++;
  return await p.transport.find(identifier(fields));
}

/** Retrieves one instance, unless it was asked for already or arrived with something else. */
async function retrieveInstance(p: Planning, i: CatalogInstance): Promise<RetrieveOutcome | undefined> {
  if (p.requested.has(i.sopInstanceUid) || p.arrivals.has(i.sopInstanceUid)) return undefined;
  p.requested.add(i.sopInstanceUid);
  p.requests.retrieve++;
  return await p.transport.retrieve(identifier({
    QueryRetrieveLevel: "IMAGE", StudyInstanceUID: i.studyUid, SeriesInstanceUID: i.seriesUid, SOPInstanceUID: i.sopInstanceUid,
  }));
}

/** Retrieves a whole series, once. */
async function retrieveSeries(p: Planning, s: CatalogSeries): Promise<RetrieveOutcome | undefined> {
  if (p.requestedSeries.has(s.seriesUid)) return undefined;
  p.requestedSeries.add(s.seriesUid);
  p.requests.retrieve++;
  return await p.transport.retrieve(identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: s.studyUid, SeriesInstanceUID: s.seriesUid }));
}

/** Why a retrieve failed, from its final status (undefined: it did not). */
function failure(o: RetrieveOutcome | undefined): string | undefined {
  return o && (o.failed > 0 || (o.status !== 0 && (o.status & 0xf000) !== 0xb000))
    ? `retrieve status 0x${o.status.toString(16).padStart(4, "0")}${o.errorComment ? ` (${o.errorComment})` : ""}`
    : undefined;
}

/** Records that a kept object belongs to a plan. */
function own(p: Planning, uid: string, plan: string): void {
  let s = p.owners.get(uid);
  if (!s) p.owners.set(uid, (s = new Set()));
  s.add(plan);
}

/** Step 1: the patient's studies, their series, and the RT instances with their plan attributes (C-FIND). */
async function findCatalog(p: Planning, patientId: string): Promise<Catalog> {
  const series: CatalogSeries[] = [];
  const instances: CatalogInstance[] = [];
  const studies = await find(p, { QueryRetrieveLevel: "STUDY", PatientID: patientId, StudyInstanceUID: "" });
  for (const study of studies) {
    const studyUid = study.string(0x0020000d);
    if (!studyUid) continue;
    const found = await find(p, { QueryRetrieveLevel: "SERIES", StudyInstanceUID: studyUid, SeriesInstanceUID: "", Modality: "", NumberOfSeriesRelatedInstances: "" });
    for (const s of found) {
      const seriesUid = s.string(0x0020000e);
      if (!seriesUid) continue;
      const count = s.number(0x00201209);
      const entry: CatalogSeries = { studyUid, seriesUid, modality: s.string(0x00080060) ?? "", count };
      series.push(entry);
      if (PLAN_OBJECT_MODALITIES.has(entry.modality)) instances.push(...await findRtInstances(p, entry));
    }
  }
  return {
    series, instances, byUid: new Map(instances.map((i) => [i.sopInstanceUid, i])), seriesByUid: new Map(series.map((s) => [s.seriesUid, s])),
  };
}

/** The instances of an RT series at IMAGE level, with label and approval (plans) or the plans they reference (doses, records, RT images). */
async function findRtInstances(p: Planning, series: CatalogSeries): Promise<CatalogInstance[]> {
  const { studyUid, seriesUid, modality } = series;
  const keys: Record<string, string | DataSet[]> = {
    QueryRetrieveLevel: "IMAGE", StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: "", SOPClassUID: "",
  };
  if (modality === "RTPLAN") Object.assign(keys, { RTPlanLabel: "", ApprovalStatus: "" });
  let answers: DataSet[];
  if (PLAN_DEPENDENT_MODALITIES.has(modality)) {
    try {
      answers = await find(p, { ...keys, ReferencedRTPlanSequence: [] });
    } catch {
      answers = await find(p, keys); // peers that refuse sequence keys
    }
  } else answers = await find(p, keys);
  const out: CatalogInstance[] = [];
  for (const a of answers) {
    const sopInstanceUid = a.string(0x00080018);
    if (!sopInstanceUid) continue;
    const refs = a.get(REFERENCED_RT_PLAN_SEQUENCE) ? refUids(a, REFERENCED_RT_PLAN_SEQUENCE) : undefined;
    out.push({
      studyUid, seriesUid, modality, sopInstanceUid,
      sopClassUid: a.string(0x00080016), label: a.string(0x300a0002), approval: a.string(0x300e0002)?.toUpperCase(),
      refPlans: refs && refs.length ? refs : undefined,
    });
  }
  return out;
}

/**
 * Step 2: the plans, decided from the C-FIND answers when the peer gave label and approval,
 * otherwise fetched and read (a peer that does not index RT attributes). A plan that could not
 * be read is selected with a gap, so nothing is silently skipped.
 */
async function selectPlans(
  p: Planning,
  catalog: Catalog,
  labels: string[],
  onlyApproved: boolean,
): Promise<{ selected: CatalogInstance[]; planGaps: Map<string, Gap[]> }> {
  const matches = (label: string | undefined, approval: string | undefined) =>
    (labels.length === 0 || (label !== undefined && labels.includes(label))) && (!onlyApproved || approval === "APPROVED");
  const undecided = (plan: CatalogInstance) => (labels.length > 0 && plan.label === undefined) || (onlyApproved && plan.approval === undefined);
  const candidates = catalog.instances.filter((i) => i.modality === "RTPLAN" || (i.sopClassUid && PLAN_SOP_CLASSES.has(i.sopClassUid)));
  const planGaps = new Map<string, Gap[]>();
  const selected: CatalogInstance[] = [];
  for (const plan of candidates) {
    if (!undecided(plan) && !matches(plan.label, plan.approval)) continue;
    const outcome = await retrieveInstance(p, plan);
    const got = p.arrivals.get(plan.sopInstanceUid);
    if (undecided(plan)) {
      if (!got) {
        selected.push(plan);
        planGaps.set(plan.sopInstanceUid, [{ kind: "RTPLAN", sopInstanceUid: plan.sopInstanceUid, reason: failure(outcome) ?? "did not arrive (needed to read its label/approval)" }]);
        continue;
      }
      plan.label = got.dataset.string(0x300a0002);
      plan.approval = got.dataset.string(0x300e0002)?.toUpperCase();
      if (!matches(plan.label, plan.approval)) {
        p.arrivals.discard(plan.sopInstanceUid);
        p.inspectedAndDropped++;
        continue;
      }
    }
    selected.push(plan);
    if (!got) planGaps.set(plan.sopInstanceUid, [{ kind: "RTPLAN", sopInstanceUid: plan.sopInstanceUid, reason: failure(outcome) ?? "did not arrive" }]);
  }
  return { selected, planGaps };
}

/** Step 3, for one selected plan that arrived: its structure sets, their image series, and the doses it references. */
async function followPlan(p: Planning, catalog: Catalog, planUid: string, e: Expectation): Promise<void> {
  const plan = p.arrivals.get(planUid);
  if (!plan) return;
  own(p, planUid, planUid);
  for (const structUid of refUids(plan.dataset, REFERENCED_STRUCTURE_SET_SEQUENCE)) {
    await wantInstance(p, catalog, planUid, e, structUid, "RTSTRUCT");
    const struct = p.arrivals.get(structUid);
    if (!struct) continue;
    for (const ref of referencedSeries(struct.dataset)) await wantImageSeries(p, catalog, planUid, e, ref);
  }
  for (const doseUid of refUids(plan.dataset, REFERENCED_DOSE_SEQUENCE)) await wantInstance(p, catalog, planUid, e, doseUid, "RTDOSE");
}

/** An object a plan references: expected, retrieved when the catalog has it, owned when it arrived, a gap when not. */
async function wantInstance(p: Planning, catalog: Catalog, planUid: string, e: Expectation, uid: string, kind: Gap["kind"]): Promise<void> {
  e.count++;
  const c = catalog.byUid.get(uid);
  if (!c) {
    if (!p.arrivals.has(uid)) e.gaps.push({ kind, sopInstanceUid: uid, reason: "not found on the peer (C-FIND)" });
    else own(p, uid, planUid);
    return;
  }
  const outcome = await retrieveInstance(p, c);
  if (p.arrivals.has(uid)) own(p, uid, planUid);
  else e.gaps.push({ kind, sopInstanceUid: uid, reason: failure(outcome) ?? "did not arrive" });
}

/**
 * An image series a plan's structure set was drawn on: retrieved whole; expected as many
 * images as the peer counts or the contours reference, whichever is more; the images the
 * contours reference that did not arrive are gaps by UID, a shortfall beyond them one gap.
 */
async function wantImageSeries(
  p: Planning,
  catalog: Catalog,
  planUid: string,
  e: Expectation,
  ref: { studyUid?: string; seriesUid: string; images: string[] },
): Promise<void> {
  const s = catalog.seriesByUid.get(ref.seriesUid) ?? (ref.studyUid ? { studyUid: ref.studyUid, seriesUid: ref.seriesUid, modality: "" } : undefined);
  if (!s) {
    e.count += Math.max(1, ref.images.length);
    e.gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, reason: "series not found on the peer (C-FIND)" });
    return;
  }
  const outcome = await retrieveSeries(p, s);
  const arrived = p.arrivals.inSeries(ref.seriesUid);
  const want = Math.max(s.count ?? 0, ref.images.length, 0);
  e.count += want || arrived.length;
  for (const o of arrived) own(p, o.sopInstanceUid, planUid);
  const missingImages = ref.images.filter((u) => !p.arrivals.has(u));
  for (const u of missingImages) e.gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, sopInstanceUid: u, reason: failure(outcome) ?? "did not arrive" });
  const shortBy = want - arrived.length - missingImages.length;
  if (shortBy > 0 && arrived.length < want) {
    e.gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, reason: `${want - arrived.length} of ${want} images did not arrive${failure(outcome) ? ` (${failure(outcome)})` : ""}` });
  }
  if (!arrived.length && !want) e.gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, reason: failure(outcome) ?? "no image arrived" });
}

/**
 * Step 4: doses, treatment records and RT images referencing a selected plan: decided from the
 * C-FIND answer when the peer returned ReferencedRTPlanSequence, else fetched and read.
 */
async function collectDependents(p: Planning, catalog: Catalog, selectedUids: Set<string>, expected: Map<string, Expectation>): Promise<void> {
  for (const c of catalog.instances.filter((i) => PLAN_DEPENDENT_MODALITIES.has(i.modality))) {
    if (p.owners.has(c.sopInstanceUid)) continue;
    if (c.refPlans && !c.refPlans.some((u) => selectedUids.has(u))) continue;
    const outcome = await retrieveInstance(p, c);
    const got = p.arrivals.get(c.sopInstanceUid);
    const refs = got ? refUids(got.dataset, REFERENCED_RT_PLAN_SEQUENCE) : c.refPlans ?? [];
    const mine = refs.filter((u) => selectedUids.has(u));
    if (!mine.length) {
      if (got) {
        p.arrivals.discard(c.sopInstanceUid);
        p.inspectedAndDropped++;
      }
      continue;
    }
    for (const planUid of mine) {
      const e = expected.get(planUid);
      if (!e) continue;
      e.count++;
      if (got) own(p, c.sopInstanceUid, planUid);
      else e.gaps.push({ kind: kindOf(c.modality), sopInstanceUid: c.sopInstanceUid, reason: failure(outcome) ?? "did not arrive" });
    }
    if (!got && !c.refPlans) {
      // Unknown whether it belonged to a selected plan: say so on every plan.
      for (const e of expected.values()) {
        e.count++;
        e.gaps.push({ kind: kindOf(c.modality), sopInstanceUid: c.sopInstanceUid, reason: `${failure(outcome) ?? "did not arrive"}; could not check which plan it references` });
      }
    }
  }
}

/**
 * Retrieves whole series by Series Instance UID (of the patient): the direct route when the
 * series is known, e.g. an image series for a plan made elsewhere. Expected counts come from
 * NumberOfSeriesRelatedInstances when the peer answers it.
 */
export async function retrieveSeriesByUid(transport: RetrieveTransport, arrivals: ArrivalStore, patientId: string, seriesUids: string[]): Promise<RetrieveResult> {
  const requests = { find: 0, retrieve: 0 };
  const reports: SeriesReport[] = [];
  const kept = new Set<string>();
  for (const seriesUid of seriesUids) {
    requests.find++;
    const studies = await transport.find(identifier({ QueryRetrieveLevel: "STUDY", PatientID: patientId, StudyInstanceUID: "" }));
    let found: { studyUid: string; modality?: string; count?: number } | undefined;
    for (const st of studies) {
      const studyUid = st.string(0x0020000d);
      if (!studyUid) continue;
      requests.find++;
      const answers = await transport.find(identifier({
        QueryRetrieveLevel: "SERIES", StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, Modality: "", NumberOfSeriesRelatedInstances: "",
      }));
      const a = answers.find((x) => x.string(0x0020000e) === seriesUid);
      if (a) {
        found = { studyUid, modality: a.string(0x00080060), count: a.number(0x00201209) };
        break;
      }
    }
    const report: SeriesReport = { seriesUid, arrived: 0, missing: [] };
    reports.push(report);
    if (!found) {
      report.missing.push({ kind: "IMAGE", seriesUid, reason: `series not found for patient "${patientId}" (C-FIND)` });
      continue;
    }
    report.studyUid = found.studyUid;
    if (found.modality) report.modality = found.modality;
    if (found.count !== undefined) report.expected = found.count;
    requests.retrieve++;
    const outcome = await transport.retrieve(identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: found.studyUid, SeriesInstanceUID: seriesUid }), { instances: found.count });
    const arrived = arrivals.inSeries(seriesUid);
    for (const o of arrived) kept.add(o.sopInstanceUid);
    report.arrived = arrived.length;
    const want = Math.max(found.count ?? 0, outcome.completed + outcome.failed + outcome.warning);
    if (arrived.length < want || arrived.length === 0) {
      const why = failure(outcome) ?? "did not arrive";
      report.missing.push({ kind: "IMAGE", seriesUid, reason: `${Math.max(want - arrived.length, 1)} of ${Math.max(want, 1)} instances: ${why}` });
    }
  }
  let unexpected = 0;
  for (const o of arrivals.all()) {
    if (!kept.has(o.sopInstanceUid)) {
      arrivals.discard(o.sopInstanceUid);
      unexpected++;
    }
  }
  const objects = [...kept].map((uid) => ({ object: arrivals.get(uid)!, planUids: [] as string[] })).filter((o) => o.object);
  return {
    objects,
    summary: {
      type: "retrieve-summary", patientId, plans: [], missingLabels: [], kept: objects.length, inspectedAndDropped: 0, unexpected,
      requests, series: reports, complete: reports.every((r) => r.missing.length === 0),
    },
  };
}
