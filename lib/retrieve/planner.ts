/**
 * Selective retrieval of a patient's plans from a Q/R peer: find the RTPLAN instances, retrieve
 * only the selected ones, follow their references (structure set → image series; doses,
 * treatment records and RT images that reference the plan), retrieve only those, and compare
 * what was expected with what arrived. Never asks for a whole study.
 */
import { PLAN_DEPENDENT_MODALITIES, PLAN_OBJECT_MODALITIES, PLAN_SOP_CLASSES } from "../dicom/rt.ts";
import type { DataSet } from "../dicom/dataset.ts";
import type { ArrivalStore, ArrivedObject } from "./arrivals.ts";
import { identifier } from "./_identifier.ts";

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

/** The `retrieve-summary` record's body. */
export interface RetrieveSummary {
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

/** Runs the selective retrieval; the caller writes the kept objects out. */
export async function retrievePlans(transport: RetrieveTransport, arrivals: ArrivalStore, selection: PlanSelection): Promise<RetrieveResult> {
  const requests = { find: 0, retrieve: 0 };
  const find = async (fields: Record<string, string | DataSet[]>) => {
    requests.find++;
    return await transport.find(identifier(fields));
  };
  const requested = new Set<string>(); // SOP instance UIDs asked for
  const requestedSeries = new Set<string>();
  const retrieveInstance = async (i: CatalogInstance): Promise<RetrieveOutcome | undefined> => {
    if (requested.has(i.sopInstanceUid) || arrivals.has(i.sopInstanceUid)) return undefined;
    requested.add(i.sopInstanceUid);
    requests.retrieve++;
    return await transport.retrieve(identifier({
      QueryRetrieveLevel: "IMAGE", StudyInstanceUID: i.studyUid, SeriesInstanceUID: i.seriesUid, SOPInstanceUID: i.sopInstanceUid,
    }));
  };
  const retrieveSeries = async (s: CatalogSeries): Promise<RetrieveOutcome | undefined> => {
    if (requestedSeries.has(s.seriesUid)) return undefined;
    requestedSeries.add(s.seriesUid);
    requests.retrieve++;
    return await transport.retrieve(identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: s.studyUid, SeriesInstanceUID: s.seriesUid }));
  };
  const failure = (o: RetrieveOutcome | undefined) =>
    o && (o.failed > 0 || (o.status !== 0 && (o.status & 0xf000) !== 0xb000))
      ? `retrieve status 0x${o.status.toString(16).padStart(4, "0")}${o.errorComment ? ` (${o.errorComment})` : ""}`
      : undefined;

  // 1. What the patient has: studies, series, and the RT instances with their plan attributes.
  const series: CatalogSeries[] = [];
  const instances: CatalogInstance[] = [];
  const studies = await find({ QueryRetrieveLevel: "STUDY", PatientID: selection.patientId, StudyInstanceUID: "" });
  for (const study of studies) {
    const studyUid = study.string(0x0020000d);
    if (!studyUid) continue;
    const found = await find({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: studyUid, SeriesInstanceUID: "", Modality: "", NumberOfSeriesRelatedInstances: "" });
    for (const s of found) {
      const seriesUid = s.string(0x0020000e);
      if (!seriesUid) continue;
      const count = s.number(0x00201209);
      const entry: CatalogSeries = { studyUid, seriesUid, modality: s.string(0x00080060) ?? "", count };
      series.push(entry);
      if (!PLAN_OBJECT_MODALITIES.has(entry.modality)) continue;
      const keys: Record<string, string | DataSet[]> = {
        QueryRetrieveLevel: "IMAGE", StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: "", SOPClassUID: "",
      };
      if (entry.modality === "RTPLAN") Object.assign(keys, { RTPlanLabel: "", ApprovalStatus: "" });
      let answers: DataSet[];
      if (PLAN_DEPENDENT_MODALITIES.has(entry.modality)) {
        try {
          answers = await find({ ...keys, ReferencedRTPlanSequence: [] });
        } catch {
          answers = await find(keys); // peers that refuse sequence keys
        }
      } else answers = await find(keys);
      for (const a of answers) {
        const sopInstanceUid = a.string(0x00080018);
        if (!sopInstanceUid) continue;
        const refs = a.get(REFERENCED_RT_PLAN_SEQUENCE) ? refUids(a, REFERENCED_RT_PLAN_SEQUENCE) : undefined;
        instances.push({
          studyUid, seriesUid, modality: entry.modality, sopInstanceUid,
          sopClassUid: a.string(0x00080016), label: a.string(0x300a0002), approval: a.string(0x300e0002)?.toUpperCase(),
          refPlans: refs && refs.length ? refs : undefined,
        });
      }
    }
  }
  const byUid = new Map(instances.map((i) => [i.sopInstanceUid, i]));
  const seriesByUid = new Map(series.map((s) => [s.seriesUid, s]));

  // 2. The plans: decided from the C-FIND answers when the peer gave label and approval,
  //    otherwise fetched and read (a peer that does not index RT attributes).
  const labels = selection.planLabels?.filter((l) => l !== "") ?? [];
  const matches = (label: string | undefined, approval: string | undefined) =>
    (labels.length === 0 || (label !== undefined && labels.includes(label))) &&
    (!selection.onlyApproved || approval === "APPROVED");
  const undecided = (p: CatalogInstance) => (labels.length > 0 && p.label === undefined) || (selection.onlyApproved && p.approval === undefined);
  const planCandidates = instances.filter((i) => i.modality === "RTPLAN" || (i.sopClassUid && PLAN_SOP_CLASSES.has(i.sopClassUid)));
  const planGaps = new Map<string, Gap[]>();
  const selectedPlans: CatalogInstance[] = [];
  let inspectedAndDropped = 0;
  for (const p of planCandidates) {
    if (!undecided(p) && !matches(p.label, p.approval)) continue;
    const outcome = await retrieveInstance(p);
    const got = arrivals.get(p.sopInstanceUid);
    if (undecided(p)) {
      if (!got) {
        // Cannot tell whether it was wanted; report it so nothing is silently skipped.
        selectedPlans.push(p);
        planGaps.set(p.sopInstanceUid, [{ kind: "RTPLAN", sopInstanceUid: p.sopInstanceUid, reason: failure(outcome) ?? "did not arrive (needed to read its label/approval)" }]);
        continue;
      }
      p.label = got.dataset.string(0x300a0002);
      p.approval = got.dataset.string(0x300e0002)?.toUpperCase();
      if (!matches(p.label, p.approval)) {
        arrivals.discard(p.sopInstanceUid);
        inspectedAndDropped++;
        continue;
      }
    }
    selectedPlans.push(p);
    if (!got) planGaps.set(p.sopInstanceUid, [{ kind: "RTPLAN", sopInstanceUid: p.sopInstanceUid, reason: failure(outcome) ?? "did not arrive" }]);
  }
  const selectedUids = new Set(selectedPlans.map((p) => p.sopInstanceUid));

  // 3. Per plan: structure sets, their image series, and the plan's own dose references.
  const owners = new Map<string, Set<string>>(); // kept SOP instance → plans
  const own = (uid: string, plan: string) => {
    let s = owners.get(uid);
    if (!s) owners.set(uid, (s = new Set()));
    s.add(plan);
  };
  const expected = new Map<string, { count: number; gaps: Gap[] }>();
  for (const p of selectedPlans) {
    const gaps = planGaps.get(p.sopInstanceUid) ?? [];
    const e = { count: 1, gaps };
    expected.set(p.sopInstanceUid, e);
    const plan = arrivals.get(p.sopInstanceUid);
    if (!plan) continue;
    own(p.sopInstanceUid, p.sopInstanceUid);
    const wantedInstance = async (uid: string, kind: Gap["kind"]) => {
      e.count++;
      const c = byUid.get(uid);
      if (!c) {
        if (!arrivals.has(uid)) gaps.push({ kind, sopInstanceUid: uid, reason: "not found on the peer (C-FIND)" });
        else own(uid, p.sopInstanceUid);
        return;
      }
      const outcome = await retrieveInstance(c);
      if (arrivals.has(uid)) own(uid, p.sopInstanceUid);
      else gaps.push({ kind, sopInstanceUid: uid, reason: failure(outcome) ?? "did not arrive" });
    };
    for (const structUid of refUids(plan.dataset, REFERENCED_STRUCTURE_SET_SEQUENCE)) {
      await wantedInstance(structUid, "RTSTRUCT");
      const struct = arrivals.get(structUid);
      if (!struct) continue;
      for (const ref of referencedSeries(struct.dataset)) {
        const s = seriesByUid.get(ref.seriesUid) ?? (ref.studyUid ? { studyUid: ref.studyUid, seriesUid: ref.seriesUid, modality: "" } : undefined);
        if (!s) {
          e.count += Math.max(1, ref.images.length);
          gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, reason: "series not found on the peer (C-FIND)" });
          continue;
        }
        const outcome = await retrieveSeries(s);
        const arrived = arrivals.inSeries(ref.seriesUid);
        const want = Math.max(s.count ?? 0, ref.images.length, 0);
        e.count += want || arrived.length;
        for (const o of arrived) own(o.sopInstanceUid, p.sopInstanceUid);
        const missingImages = ref.images.filter((u) => !arrivals.has(u));
        for (const u of missingImages) gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, sopInstanceUid: u, reason: failure(outcome) ?? "did not arrive" });
        const shortBy = want - arrived.length - missingImages.length;
        if (shortBy > 0 && arrived.length < want) {
          gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, reason: `${want - arrived.length} of ${want} images did not arrive${failure(outcome) ? ` (${failure(outcome)})` : ""}` });
        }
        if (!arrived.length && !want) gaps.push({ kind: "IMAGE", seriesUid: ref.seriesUid, reason: failure(outcome) ?? "no image arrived" });
      }
    }
    for (const doseUid of refUids(plan.dataset, REFERENCED_DOSE_SEQUENCE)) await wantedInstance(doseUid, "RTDOSE");
  }

  // 4. Doses, treatment records and RT images referencing a selected plan: decided from the
  //    C-FIND answer when the peer returned ReferencedRTPlanSequence, else fetched and read.
  for (const c of instances.filter((i) => PLAN_DEPENDENT_MODALITIES.has(i.modality))) {
    if (owners.has(c.sopInstanceUid)) continue;
    if (c.refPlans && !c.refPlans.some((u) => selectedUids.has(u))) continue;
    const outcome = await retrieveInstance(c);
    const got = arrivals.get(c.sopInstanceUid);
    const refs = got ? refUids(got.dataset, REFERENCED_RT_PLAN_SEQUENCE) : c.refPlans ?? [];
    const mine = refs.filter((u) => selectedUids.has(u));
    if (!mine.length) {
      if (got) {
        arrivals.discard(c.sopInstanceUid);
        inspectedAndDropped++;
      }
      continue;
    }
    for (const planUid of mine) {
      const e = expected.get(planUid);
      if (!e) continue;
      e.count++;
      if (got) own(c.sopInstanceUid, planUid);
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

  // 5. Whatever arrived without being kept (a peer sending more than asked) is dropped.
  let unexpected = 0;
  for (const o of arrivals.all()) {
    if (!owners.has(o.sopInstanceUid)) {
      arrivals.discard(o.sopInstanceUid);
      unexpected++;
    }
  }
  const plans: PlanReport[] = selectedPlans.map((p) => {
    const e = expected.get(p.sopInstanceUid)!;
    const arrived = [...owners.entries()].filter(([, ps]) => ps.has(p.sopInstanceUid)).length;
    const r: PlanReport = { planUid: p.sopInstanceUid, expected: Math.max(e.count, arrived), arrived, missing: e.gaps };
    if (p.label !== undefined) r.label = p.label;
    if (p.approval !== undefined) r.approval = p.approval;
    return r;
  });
  const objects = [...owners.entries()].map(([uid, ps]) => ({ object: arrivals.get(uid)!, planUids: [...ps] }));
  const missingLabels = labels.filter((l) => !selectedPlans.some((p) => p.label === l));
  const complete = plans.every((p) => p.missing.length === 0) && missingLabels.length === 0 && selectedPlans.length > 0;
  return {
    objects,
    summary: {
      type: "retrieve-summary", patientId: selection.patientId, plans, missingLabels, kept: objects.length, inspectedAndDropped, unexpected, requests, complete,
    },
  };
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
      const why = outcome.failed > 0 || (outcome.status !== 0 && (outcome.status & 0xf000) !== 0xb000)
        ? `retrieve status 0x${outcome.status.toString(16).padStart(4, "0")}${outcome.errorComment ? ` (${outcome.errorComment})` : ""}`
        : "did not arrive";
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
