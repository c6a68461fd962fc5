/**
 * Everything of a patient, not selected by plan (`retrieve --all`; seed 004's advice when an
 * ARIA fails a selective retrieval): one request per study, which the resilient session asks
 * for by series, and a series by instances, when the peer fails it as a whole. Expected counts
 * per series come from C-FIND (NumberOfSeriesRelatedInstances).
 */
import { identifier } from "../qr/identifier.ts";
import type { ArrivalStore } from "./arrivals.ts";
import type { RetrieveResult, RetrieveTransport, SeriesReport } from "./planner.ts";

/** Retrieves every study of `patientId`; the summary compares each series' count with what arrived. */
export async function retrievePatient(transport: RetrieveTransport, arrivals: ArrivalStore, patientId: string): Promise<RetrieveResult> {
  const requests = { find: 0, retrieve: 0 };
  const reports: SeriesReport[] = [];
  requests.find++;
  const studies = (await transport.find(identifier({ QueryRetrieveLevel: "STUDY", PatientID: patientId, StudyInstanceUID: "" })))
    .map((s) => s.string(0x0020000d)).filter((u): u is string => !!u);
  for (const studyUid of studies) {
    requests.find++;
    const series = await transport.find(identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: studyUid, SeriesInstanceUID: "", Modality: "", NumberOfSeriesRelatedInstances: "" }));
    requests.retrieve++;
    const outcome = await transport.retrieve(identifier({ QueryRetrieveLevel: "STUDY", StudyInstanceUID: studyUid }));
    for (const s of series) {
      const seriesUid = s.string(0x0020000e);
      if (!seriesUid) continue;
      const report: SeriesReport = { seriesUid, studyUid, arrived: arrivals.inSeries(seriesUid).length, missing: [] };
      const modality = s.string(0x00080060);
      if (modality) report.modality = modality;
      const expected = s.number(0x00201209);
      if (expected !== undefined) report.expected = expected;
      if (report.arrived === 0 || (expected !== undefined && report.arrived < expected)) {
        const why = outcome.errorComment ? ` (${outcome.errorComment})` : "";
        report.missing.push({ kind: "IMAGE", seriesUid, reason: `${Math.max((expected ?? 1) - report.arrived, 1)} of ${expected ?? "?"} instances did not arrive${why}` });
      }
      reports.push(report);
    }
  }
  const objects = arrivals.all().map((object) => ({ object, planUids: [] as string[] }));
  return {
    objects,
    summary: {
      type: "retrieve-summary", patientId, plans: [], missingLabels: [], kept: objects.length, inspectedAndDropped: 0, unexpected: 0,
      requests, series: reports, complete: studies.length > 0 && reports.every((r) => r.missing.length === 0),
    },
  };
}
