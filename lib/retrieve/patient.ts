/**
 * Retrieval without a plan filter: the whole patient (every study and series, found by C-FIND
 * at STUDY and SERIES level), or series and instances by UID. Each series is one SERIES-level
 * request (one IMAGE-level request per instance asked for by UID), counted against what the peer
 * said it holds. Every query and retrieve names the patient; with an ArrivalStore every object
 * that arrives is checked against it. Without one (a C-MOVE to another AE), the peer's
 * sub-operation counts are the report.
 */
import type { DataSet } from "../dicom/dataset.ts";
import { KIND_MODALITY, objectKind } from "../dicom/rt.ts";
import type { ArrivalStore } from "./arrivals.ts";
import { failure, PatientQueries } from "./_ask.ts";
import type { Gap, InstanceReport, RetrieveOutcome, RetrieveResult, RetrieveSummary, RetrieveTransport, SeriesReport } from "./types.ts";

/** A series of the patient, as C-FIND at SERIES level described it. */
export interface PatientSeries {
  studyUid: string;
  seriesUid: string;
  modality: string;
  /** NumberOfSeriesRelatedInstances, when the peer answered it. */
  count?: number;
}

/** Options of {@link retrievePatient}. */
export interface RetrievePatientOptions {
  /** Only the series this accepts (export-plan leaves the plans' own RT series to the plans). */
  include?: (series: PatientSeries) => boolean;
  /**
   * Told which series will be retrieved, before the first is asked for, and how many instances
   * they hold when the peer answered NumberOfSeriesRelatedInstances for every one.
   */
  onSeries?: (seriesUids: string[], instances?: number) => void;
}

/**
 * The whole patient: every series of every study of the patient, each retrieved at SERIES
 * level. Objects go into `arrivals`; without it (a transport with a `destination`), they go to
 * that AE and the report is the peer's counts.
 */
export async function retrievePatient(
  transport: RetrieveTransport,
  arrivals: ArrivalStore | undefined,
  patientId: string,
  opts: RetrievePatientOptions = {},
): Promise<RetrieveResult> {
  const q = new PatientQueries(transport, patientId);
  const otherBefore = watch(arrivals, patientId);
  const all = await findPatientSeries(q);
  const chosen = opts.include ? all.filter(opts.include) : all;
  const counted = chosen.every((s) => s.count !== undefined);
  opts.onSeries?.(chosen.map((s) => s.seriesUid), counted ? chosen.reduce((n, s) => n + s.count!, 0) : undefined);
  const reports: SeriesReport[] = [];
  for (const s of chosen) reports.push(await retrieveWholeSeries(q, arrivals, s));
  return result(q, arrivals, otherBefore, "patient", new Set(chosen.map((s) => s.seriesUid)), new Set(), reports, undefined);
}

/**
 * Whole series by Series Instance UID (of the patient): the direct route when the series is
 * known, e.g. an image series for a plan made elsewhere. Expected counts come from
 * NumberOfSeriesRelatedInstances when the peer answers it.
 */
export async function retrieveSeriesByUid(transport: RetrieveTransport, arrivals: ArrivalStore | undefined, patientId: string, seriesUids: string[]): Promise<RetrieveResult> {
  return await retrieveByUid(transport, arrivals, patientId, { series: seriesUids });
}

/** Instances by SOP Instance UID (of the patient), each located by C-FIND and retrieved at IMAGE level. */
export async function retrieveInstancesByUid(transport: RetrieveTransport, arrivals: ArrivalStore | undefined, patientId: string, sopInstanceUids: string[]): Promise<RetrieveResult> {
  return await retrieveByUid(transport, arrivals, patientId, { instances: sopInstanceUids });
}

/** Series and instances by UID, in one summary (`--series` and `--sop` together). */
export async function retrieveByUid(
  transport: RetrieveTransport,
  arrivals: ArrivalStore | undefined,
  patientId: string,
  uids: { series?: string[]; instances?: string[] },
): Promise<RetrieveResult> {
  const q = new PatientQueries(transport, patientId);
  const otherBefore = watch(arrivals, patientId);
  const seriesUids = unique(uids.series ?? []);
  const sopUids = unique(uids.instances ?? []);
  let reports: SeriesReport[] | undefined;
  if (seriesUids.length) {
    reports = [];
    let studies: string[] | undefined;
    for (const seriesUid of seriesUids) {
      studies ??= await findStudies(q);
      let found: PatientSeries | undefined;
      for (const studyUid of studies) {
        const answers = await q.find({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, Modality: "", NumberOfSeriesRelatedInstances: "" });
        const a = answers.find((x) => x.string(0x0020000e) === seriesUid);
        if (a) {
          found = { studyUid, seriesUid, modality: a.string(0x00080060) ?? "", count: a.number(0x00201209) };
          break;
        }
      }
      if (found) reports.push(await retrieveWholeSeries(q, arrivals, found));
      else reports.push({ seriesUid, arrived: 0, missing: [{ kind: "IMAGE", seriesUid, reason: `series not found for patient "${patientId}" (C-FIND)` }] });
    }
  }
  const instances = sopUids.length ? await retrieveInstances(q, arrivals, sopUids) : undefined;
  return result(q, arrivals, otherBefore, "uids", new Set(seriesUids), new Set(sopUids), reports, instances);
}

function unique(list: string[]): string[] {
  return [...new Set(list.map((u) => u.trim()).filter((u) => u !== ""))];
}

/** Sets the patient the store checks arrivals against; returns how many of another patient it had dropped before. */
function watch(arrivals: ArrivalStore | undefined, patientId: string): number {
  if (!arrivals) return 0;
  arrivals.patientId = patientId;
  return arrivals.otherPatient.length;
}

async function findStudies(q: PatientQueries): Promise<string[]> {
  const out: string[] = [];
  for (const st of await q.find({ QueryRetrieveLevel: "STUDY", StudyInstanceUID: "" })) {
    const uid = st.string(0x0020000d);
    if (uid && !out.includes(uid)) out.push(uid);
  }
  return out;
}

/** Every series of the patient's studies (C-FIND at STUDY, then SERIES level). */
async function findPatientSeries(q: PatientQueries): Promise<PatientSeries[]> {
  const out: PatientSeries[] = [];
  const seen = new Set<string>();
  for (const studyUid of await findStudies(q)) {
    for (const s of await q.find({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: studyUid, SeriesInstanceUID: "", Modality: "", NumberOfSeriesRelatedInstances: "" })) {
      const seriesUid = s.string(0x0020000e);
      if (!seriesUid || seen.has(seriesUid)) continue;
      seen.add(seriesUid);
      out.push({ studyUid, seriesUid, modality: s.string(0x00080060) ?? "", count: s.number(0x00201209) });
    }
  }
  return out;
}

/**
 * One series, whole, at SERIES level; expected as many instances as the peer counts for the
 * patient or says it sent (less those of another patient that arrived), whichever is more.
 */
async function retrieveWholeSeries(q: PatientQueries, arrivals: ArrivalStore | undefined, s: PatientSeries): Promise<SeriesReport> {
  const before = arrivals?.otherPatient.length ?? 0;
  const outcome = await q.retrieve(
    { QueryRetrieveLevel: "SERIES", StudyInstanceUID: s.studyUid, SeriesInstanceUID: s.seriesUid },
    { instances: s.count },
    { level: "SERIES", studyUid: s.studyUid, seriesUid: s.seriesUid, modality: s.modality || undefined, expected: s.count },
  );
  const report: SeriesReport = { seriesUid: s.seriesUid, studyUid: s.studyUid, arrived: 0, missing: [] };
  if (s.modality) report.modality = s.modality;
  if (s.count !== undefined) report.expected = s.count;
  const sent = outcome.completed + outcome.failed + outcome.warning;
  let arrived: number;
  let want: number;
  if (arrivals) {
    arrived = arrivals.inSeries(s.seriesUid).length; // reads each, dropping another patient's
    want = Math.max(s.count ?? 0, sent - (arrivals.otherPatient.length - before));
  } else {
    arrived = outcome.completed + outcome.warning;
    want = Math.max(s.count ?? 0, sent);
  }
  report.arrived = arrived;
  if (arrived < want || arrived === 0 || (!arrivals && failure(outcome))) {
    const why = failure(outcome) ?? (arrivals ? "did not arrive" : `not sent to ${q.destination}`);
    report.missing.push({ kind: "IMAGE", seriesUid: s.seriesUid, reason: `${Math.max(want - arrived, 1)} of ${Math.max(want, 1)} instances: ${why}` });
  }
  return report;
}

/**
 * Instances by UID: each located by an IMAGE-level C-FIND on its UID (relational, as movescu
 * `-k 0008,0052=IMAGE -k 0008,0018=…` asks); those a peer does not find that way are looked for
 * series by series (hierarchical). Then each is retrieved at IMAGE level with its study and series.
 */
async function retrieveInstances(q: PatientQueries, arrivals: ArrivalStore | undefined, uids: string[]): Promise<InstanceReport[]> {
  const located = new Map<string, { studyUid: string; seriesUid: string; sopClassUid?: string }>();
  const take = (a: DataSet, studyUid?: string, seriesUid?: string) => {
    const uid = a.string(0x00080018);
    const study = a.string(0x0020000d) ?? studyUid;
    const series = a.string(0x0020000e) ?? seriesUid;
    if (uid && study && series && uids.includes(uid) && !located.has(uid)) located.set(uid, { studyUid: study, seriesUid: series, sopClassUid: a.string(0x00080016) });
  };
  for (const uid of uids) {
    try {
      for (const a of await q.find({ QueryRetrieveLevel: "IMAGE", StudyInstanceUID: "", SeriesInstanceUID: "", SOPInstanceUID: uid, SOPClassUID: "" })) take(a);
    } catch { /* a peer that wants the hierarchy: below */ }
  }
  if (uids.some((u) => !located.has(u))) {
    for (const s of await findPatientSeries(q)) {
      if (uids.every((u) => located.has(u))) break;
      for (const a of await q.find({ QueryRetrieveLevel: "IMAGE", StudyInstanceUID: s.studyUid, SeriesInstanceUID: s.seriesUid, SOPInstanceUID: "", SOPClassUID: "" })) {
        take(a, s.studyUid, s.seriesUid);
      }
    }
  }
  const reports: InstanceReport[] = [];
  for (const uid of uids) {
    const at = located.get(uid);
    const report: InstanceReport = { sopInstanceUid: uid, arrived: false, missing: [] };
    reports.push(report);
    if (!at) {
      report.missing.push({ kind: "OBJECT", sopInstanceUid: uid, reason: `not found for patient "${q.patientId}" (C-FIND)` });
      continue;
    }
    Object.assign(report, { studyUid: at.studyUid, seriesUid: at.seriesUid }, at.sopClassUid ? { sopClassUid: at.sopClassUid } : {});
    const kind = gapKind(at.sopClassUid);
    let outcome: RetrieveOutcome | undefined;
    if (!arrivals?.has(uid)) {
      outcome = await q.retrieve(
        { QueryRetrieveLevel: "IMAGE", StudyInstanceUID: at.studyUid, SeriesInstanceUID: at.seriesUid, SOPInstanceUID: uid },
        undefined,
        { level: "IMAGE", studyUid: at.studyUid, seriesUid: at.seriesUid, sopInstanceUids: [uid], expected: 1 },
      );
    }
    report.arrived = arrivals ? arrivals.has(uid) : outcome !== undefined && outcome.completed + outcome.warning >= 1;
    if (!report.arrived || (!arrivals && failure(outcome))) {
      const why = failure(outcome) ?? (arrivals ? "did not arrive" : `not sent to ${q.destination}`);
      report.missing.push({ kind, sopInstanceUid: uid, seriesUid: at.seriesUid, reason: why });
    }
  }
  return reports;
}

function gapKind(sopClassUid: string | undefined): Gap["kind"] {
  if (!sopClassUid) return "OBJECT";
  const kind = objectKind(sopClassUid, undefined);
  return kind === "image" ? "IMAGE" : KIND_MODALITY[kind] as Gap["kind"];
}

/**
 * The result: objects of the requested series and instances kept, anything else that arrived
 * dropped (counted as unexpected, or as another patient's); the summary.
 */
function result(
  q: PatientQueries,
  arrivals: ArrivalStore | undefined,
  otherBefore: number,
  mode: "patient" | "uids",
  series: Set<string>,
  instances: Set<string>,
  seriesReports: SeriesReport[] | undefined,
  instanceReports: InstanceReport[] | undefined,
): RetrieveResult {
  const objects: RetrieveResult["objects"] = [];
  let unexpected = 0;
  for (const o of arrivals?.all() ?? []) {
    if (series.has(o.seriesUid) || instances.has(o.sopInstanceUid)) objects.push({ object: o, planUids: [] });
    else {
      arrivals!.discard(o.sopInstanceUid);
      unexpected++;
    }
  }
  const otherPatient = (arrivals?.otherPatient.slice(otherBefore) ?? []).map((o) => o.sopInstanceUid);
  const reports = [...seriesReports ?? [], ...instanceReports ?? []];
  const summary: RetrieveSummary = {
    type: "retrieve-summary", patientId: q.patientId, mode, plans: [], missingLabels: [], kept: objects.length, inspectedAndDropped: 0,
    unexpected, otherPatient: otherPatient.length, requests: q.requests,
    complete: reports.length > 0 && reports.every((r) => r.missing.length === 0),
  };
  if (seriesReports) summary.series = seriesReports;
  if (instanceReports) summary.instances = instanceReports;
  if (q.destination) {
    summary.destination = q.destination;
    summary.moves = q.moves;
  }
  return { objects, otherPatient, summary };
}
