/**
 * Selective retrieval of a patient's plans from a Q/R peer: find the RTPLAN instances, retrieve
 * only the selected ones, follow their references (structure set → image series; doses,
 * treatment records and RT images that reference the plan; registrations that relate the plan's
 * images to other series, and those series), retrieve only those, and compare what was expected
 * with what arrived. Never asks for a whole study. Every query and retrieve names the patient.
 *
 * The other ways to retrieve (the whole patient, series or instances by UID) are in
 * `patient.ts`; the types they share in `types.ts`.
 */
import { PLAN_DEPENDENT_MODALITIES, PLAN_OBJECT_MODALITIES, PLAN_SOP_CLASSES, REGISTRATION_SOP_CLASSES, RT_MODALITIES } from "../dicom/rt.ts";
import type { DataSet } from "../dicom/dataset.ts";
import { summarizeObject } from "../rt/summary.ts";
import type { ArrivalStore } from "./arrivals.ts";
import type { Gap, PlanReport, PlanSelection, RetrieveOutcome, RetrieveResult, RetrieveTransport } from "./types.ts";
import { failure, PatientQueries } from "./_ask.ts";

export type { Gap, InstanceReport, MoveReport, PlanReport, PlanSelection, RetrieveOutcome, RetrieveResult, RetrieveSummary, RetrieveTransport, SeriesReport } from "./types.ts";

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

const FRAME_OF_REFERENCE_UID = 0x00200052;
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
  return (PLAN_OBJECT_MODALITIES.has(modality) || modality === "REG" ? modality : "IMAGE") as Gap["kind"];
}

function isRegistration(i: CatalogInstance): boolean {
  return i.modality === "REG" || (i.sopClassUid !== undefined && REGISTRATION_SOP_CLASSES.has(i.sopClassUid));
}

/** What the steps of one plan retrieval share: the peer, what arrived, and what was asked and kept. */
interface Planning {
  q: PatientQueries;
  arrivals: ArrivalStore;
  /** Retrieve image series (PlanSelection.images). */
  images: boolean;
  /** SOP Instance UIDs and Series Instance UIDs asked for (each is asked for once). */
  requested: Set<string>;
  requestedSeries: Set<string>;
  /** Kept SOP instance → the selected plans it belongs to. */
  owners: Map<string, Set<string>>;
  /** Objects fetched only to read them (a plan's label, a dose's plan, a registration's series) and then dropped. */
  inspectedAndDropped: number;
}

/** What the patient has, from C-FIND: studies, series (with instance counts) and the RT instances with their plan attributes. */
interface Catalog {
  studies: string[];
  series: CatalogSeries[];
  instances: CatalogInstance[];
  byUid: Map<string, CatalogInstance>;
  seriesByUid: Map<string, CatalogSeries>;
}

/**
 * A selected plan's expected object count and its gaps, as the steps find them; and its images
 * (series, frames of reference, instances), which the registrations are matched against.
 */
interface Expectation {
  count: number;
  gaps: Gap[];
  series: Set<string>;
  frames: Set<string>;
  images: Set<string>;
  /** Series and frames of reference registrations relate the plan's images to, each expected once. */
  registered: Set<string>;
}

/** Runs the selective retrieval; the caller writes the kept objects out. */
export async function retrievePlans(transport: RetrieveTransport, arrivals: ArrivalStore, selection: PlanSelection): Promise<RetrieveResult> {
  if (transport.destination) {
    throw new Error("Cannot retrieve plans by a C-MOVE to another AE: the plans and structure sets must arrive here to be read");
  }
  arrivals.patientId = selection.patientId;
  const otherBefore = arrivals.otherPatient.length;
  const p: Planning = {
    q: new PatientQueries(transport, selection.patientId), arrivals, images: selection.images !== false,
    requested: new Set(), requestedSeries: new Set(), owners: new Map(), inspectedAndDropped: 0,
  };
  // 1. What the patient has.
  const catalog = await findCatalog(p);
  // 2. The plans.
  const labels = selection.planLabels?.filter((l) => l !== "") ?? [];
  const { selected, planGaps } = await selectPlans(p, catalog, labels, selection.onlyApproved === true);
  const selectedUids = new Set(selected.map((plan) => plan.sopInstanceUid));
  // 3. Per plan: structure sets, their image series, and the plan's own dose references.
  const expected = new Map<string, Expectation>();
  for (const plan of selected) {
    const e: Expectation = { count: 1, gaps: planGaps.get(plan.sopInstanceUid) ?? [], series: new Set(), frames: new Set(), images: new Set(), registered: new Set() };
    expected.set(plan.sopInstanceUid, e);
    await followPlan(p, catalog, plan.sopInstanceUid, e);
  }
  // 4. Doses, treatment records and RT images that reference a selected plan.
  await collectDependents(p, catalog, selectedUids, expected);
  // 5. Registrations that relate a selected plan's images to other series, and those series.
  await collectRegistrations(p, catalog, expected);
  // 6. Whatever arrived without being kept (a peer sending more than asked) is dropped; so is
  // whatever belongs to another patient (all() checks each object's PatientID).
  let unexpected = 0;
  for (const o of arrivals.all()) {
    if (!p.owners.has(o.sopInstanceUid)) {
      arrivals.discard(o.sopInstanceUid);
      unexpected++;
    }
  }
  const otherPatient = arrivals.otherPatient.slice(otherBefore).map((o) => o.sopInstanceUid);
  const plans: PlanReport[] = selected.map((plan) => {
    const e = expected.get(plan.sopInstanceUid)!;
    const arrived = [...p.owners.values()].filter((ps) => ps.has(plan.sopInstanceUid)).length;
    const r: PlanReport = { planUid: plan.sopInstanceUid, expected: Math.max(e.count, arrived), arrived, missing: e.gaps };
    if (plan.label !== undefined) r.label = plan.label;
    if (plan.approval !== undefined) r.approval = plan.approval;
    return r;
  });
  const objects = [...p.owners.entries()]
    .map(([uid, ps]) => ({ object: arrivals.get(uid)!, planUids: [...ps] }))
    .filter((o) => o.object !== undefined);
  const unselected = labels.filter((l) => !selected.some((plan) => plan.label === l));
  // A label whose plans the peer has, none approved: left out by the default, which says so.
  const notApproved = (l: string) => selection.onlyApproved === true && catalog.instances.some((i) => i.label === l && i.approval !== undefined && i.approval !== "APPROVED");
  const unapprovedLabels = unselected.filter(notApproved);
  const missingLabels = unselected.filter((l) => !notApproved(l));
  const complete = plans.every((r) => r.missing.length === 0) && missingLabels.length === 0 && (selected.length > 0 || unapprovedLabels.length > 0);
  return {
    objects,
    otherPatient,
    summary: {
      type: "retrieve-summary", patientId: selection.patientId, mode: "plans", plans, missingLabels, ...(unapprovedLabels.length ? { unapprovedLabels } : {}), kept: objects.length,
      inspectedAndDropped: p.inspectedAndDropped, unexpected, otherPatient: otherPatient.length, requests: p.q.requests, complete,
    },
  };
}

/** Retrieves one instance, unless it was asked for already or arrived with something else. */
async function retrieveInstance(p: Planning, i: CatalogInstance): Promise<RetrieveOutcome | undefined> {
  if (p.requested.has(i.sopInstanceUid) || p.arrivals.has(i.sopInstanceUid)) return undefined;
  p.requested.add(i.sopInstanceUid);
  return await p.q.retrieve(
    { QueryRetrieveLevel: "IMAGE", StudyInstanceUID: i.studyUid, SeriesInstanceUID: i.seriesUid, SOPInstanceUID: i.sopInstanceUid },
    undefined,
    { level: "IMAGE", studyUid: i.studyUid, seriesUid: i.seriesUid, sopInstanceUids: [i.sopInstanceUid], modality: i.modality, expected: 1 },
  );
}

/** Retrieves a whole series, once. */
async function retrieveSeries(p: Planning, s: CatalogSeries): Promise<RetrieveOutcome | undefined> {
  if (p.requestedSeries.has(s.seriesUid)) return undefined;
  p.requestedSeries.add(s.seriesUid);
  return await p.q.retrieve(
    { QueryRetrieveLevel: "SERIES", StudyInstanceUID: s.studyUid, SeriesInstanceUID: s.seriesUid },
    { instances: s.count },
    { level: "SERIES", studyUid: s.studyUid, seriesUid: s.seriesUid, modality: s.modality || undefined, expected: s.count },
  );
}

/** Records that a kept object belongs to a plan. */
function own(p: Planning, uid: string, plan: string): void {
  let s = p.owners.get(uid);
  if (!s) p.owners.set(uid, (s = new Set()));
  s.add(plan);
}

/** Step 1: the patient's studies, their series, and the RT instances with their plan attributes (C-FIND). */
async function findCatalog(p: Planning): Promise<Catalog> {
  const studies: string[] = [];
  const series: CatalogSeries[] = [];
  const instances: CatalogInstance[] = [];
  for (const study of await p.q.find({ QueryRetrieveLevel: "STUDY", StudyInstanceUID: "" })) {
    const studyUid = study.string(0x0020000d);
    if (!studyUid || studies.includes(studyUid)) continue;
    studies.push(studyUid);
    const found = await p.q.find({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: studyUid, SeriesInstanceUID: "", Modality: "", NumberOfSeriesRelatedInstances: "" });
    for (const s of found) {
      const seriesUid = s.string(0x0020000e);
      if (!seriesUid) continue;
      const count = s.number(0x00201209);
      const entry: CatalogSeries = { studyUid, seriesUid, modality: s.string(0x00080060) ?? "", count };
      series.push(entry);
      if (RT_MODALITIES.has(entry.modality)) instances.push(...await findRtInstances(p, entry));
    }
  }
  return {
    studies, series, instances,
    byUid: new Map(instances.map((i) => [i.sopInstanceUid, i])), seriesByUid: new Map(series.map((s) => [s.seriesUid, s])),
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
      answers = await p.q.find({ ...keys, ReferencedRTPlanSequence: [] });
    } catch {
      answers = await p.q.find(keys); // peers that refuse sequence keys
    }
  } else answers = await p.q.find(keys);
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

/**
 * Step 3, for one selected plan that arrived: its structure sets, their image series, and the
 * doses it references; and the plan's images (series, frames of reference, instances).
 */
async function followPlan(p: Planning, catalog: Catalog, planUid: string, e: Expectation): Promise<void> {
  const plan = p.arrivals.get(planUid);
  if (!plan) return;
  own(p, planUid, planUid);
  const planFrame = plan.dataset.string(FRAME_OF_REFERENCE_UID);
  if (planFrame) e.frames.add(planFrame);
  for (const structUid of refUids(plan.dataset, REFERENCED_STRUCTURE_SET_SEQUENCE)) {
    await wantInstance(p, catalog, planUid, e, structUid, "RTSTRUCT");
    const struct = p.arrivals.get(structUid);
    if (!struct) continue;
    for (const f of struct.dataset.items(REFERENCED_FRAME_OF_REFERENCE_SEQUENCE)) {
      const uid = f.string(FRAME_OF_REFERENCE_UID);
      if (uid) e.frames.add(uid);
    }
    for (const ref of referencedSeries(struct.dataset)) {
      e.series.add(ref.seriesUid);
      for (const u of ref.images) e.images.add(u);
      await wantImageSeries(p, catalog, planUid, e, ref);
    }
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
 * An image series of a plan (one its structure set was drawn on, or one a registration relates
 * to its images): retrieved whole; expected as many images as the peer counts or the contours
 * reference, whichever is more; the images the contours reference that did not arrive are gaps
 * by UID, a shortfall beyond them one gap. Only series of the patient's studies are asked for.
 */
async function wantImageSeries(
  p: Planning,
  catalog: Catalog,
  planUid: string,
  e: Expectation,
  ref: { studyUid?: string; seriesUid: string; images: string[] },
): Promise<void> {
  if (!p.images) return;
  const s = catalog.seriesByUid.get(ref.seriesUid) ??
    (ref.studyUid && catalog.studies.includes(ref.studyUid) ? { studyUid: ref.studyUid, seriesUid: ref.seriesUid, modality: "" } : undefined);
  if (!s) {
    e.count += Math.max(1, ref.images.length);
    e.gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, reason: `series not found for patient "${p.q.patientId}" on the peer (C-FIND)` });
    return;
  }
  const outcome = await retrieveSeries(p, s);
  const arrived = p.arrivals.inSeries(ref.seriesUid);
  const want = Math.max(s.count ?? 0, ref.images.length, 0);
  e.count += want || arrived.length;
  for (const o of arrived) own(p, o.sopInstanceUid, planUid);
  if (e.series.has(ref.seriesUid)) {
    // The plan's own images: what registrations are matched against.
    for (const o of arrived) e.images.add(o.sopInstanceUid);
    const frame = arrived[0]?.dataset.string(FRAME_OF_REFERENCE_UID);
    if (frame) e.frames.add(frame);
  }
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
 * Step 5: the patient's registrations (Spatial and Deformable Spatial Registration), each
 * retrieved and read: one whose referenced series, frames of reference or images include a
 * selected plan's images belongs to that plan, with the series it relates them to (retrieved
 * whole); the others are dropped. A frame of reference it names without a series is looked up
 * by FrameOfReferenceUID at SERIES level (C-FIND).
 */
async function collectRegistrations(p: Planning, catalog: Catalog, expected: Map<string, Expectation>): Promise<void> {
  const plans = [...expected.entries()].filter(([, e]) => e.series.size || e.frames.size || e.images.size);
  if (!plans.length) return;
  for (const reg of catalog.instances.filter(isRegistration)) {
    const outcome = await retrieveInstance(p, reg);
    const got = p.arrivals.get(reg.sopInstanceUid);
    if (!got) {
      for (const [, e] of plans) {
        e.count++;
        e.gaps.push({ kind: "REG", sopInstanceUid: reg.sopInstanceUid, reason: `${failure(outcome) ?? "did not arrive"}; could not check which plan's images it registers` });
      }
      continue;
    }
    const s = summarizeObject(got.header());
    const frames = s.referencedFrameUids ?? [];
    const series = s.referencedSeriesUids ?? [];
    const images = s.referencedInstanceUids ?? [];
    const mine = plans.filter(([, e]) => frames.some((f) => e.frames.has(f)) || series.some((x) => e.series.has(x)) || images.some((i) => e.images.has(i)));
    if (!mine.length) {
      p.arrivals.discard(reg.sopInstanceUid);
      p.inspectedAndDropped++;
      continue;
    }
    for (const [planUid, e] of mine) {
      e.count++;
      own(p, reg.sopInstanceUid, planUid);
      if (!p.images) continue;
      // The series it relates the plan's images to.
      const others = series.filter((x) => !e.series.has(x));
      const covered = new Set<string>();
      let allArrived = true;
      for (const seriesUid of others) {
        if (e.registered.has(seriesUid)) continue;
        e.registered.add(seriesUid);
        await wantImageSeries(p, catalog, planUid, e, { seriesUid, images: [] });
        const arrived = p.arrivals.inSeries(seriesUid);
        if (!arrived.length) allArrived = false;
        const f = arrived[0]?.dataset.string(FRAME_OF_REFERENCE_UID);
        if (f) covered.add(f);
      }
      // Frames of reference it names that none of those series is in (a registration that
      // names frames only): their image series. When a named series did not arrive, it may be
      // that frame's, so nothing is guessed.
      if (!allArrived) continue;
      for (const frame of frames) {
        if (e.frames.has(frame) || covered.has(frame) || e.registered.has(frame)) continue;
        e.registered.add(frame);
        await wantFrameSeries(p, catalog, planUid, e, frame);
      }
    }
  }
}

/** The image series of the patient in one frame of reference (a registration's other side), found by C-FIND and retrieved whole. */
async function wantFrameSeries(p: Planning, catalog: Catalog, planUid: string, e: Expectation, frame: string): Promise<void> {
  let found = 0;
  let unanswered = false;
  for (const studyUid of catalog.studies) {
    const answers = await p.q.find({
      QueryRetrieveLevel: "SERIES", StudyInstanceUID: studyUid, SeriesInstanceUID: "", Modality: "", NumberOfSeriesRelatedInstances: "", FrameOfReferenceUID: frame,
    });
    for (const a of answers) {
      const seriesUid = a.string(0x0020000e);
      const modality = a.string(0x00080060) ?? "";
      const answered = a.string(FRAME_OF_REFERENCE_UID);
      if (answered === undefined) unanswered = true;
      if (!seriesUid || answered !== frame || RT_MODALITIES.has(modality)) continue;
      found++;
      if (e.registered.has(seriesUid)) continue;
      e.registered.add(seriesUid);
      await wantImageSeries(p, catalog, planUid, e, { studyUid, seriesUid, images: [] });
    }
  }
  if (!found) {
    e.count++;
    e.gaps.push({
      kind: "IMAGE",
      frameOfReferenceUid: frame,
      reason: unanswered
        ? `the series of frame of reference ${frame} (registered with the plan's images) cannot be found: the peer does not answer FrameOfReferenceUID at SERIES level`
        : `no image series of frame of reference ${frame} (registered with the plan's images) found for patient "${p.q.patientId}" (C-FIND)`,
    });
  }
}
