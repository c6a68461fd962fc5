import type { DataSet } from "../dicom/dataset.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from "../dicom/uids.ts";
import { personNameParts } from "../layout/sanitize.ts";
import { connect, connectOptions, find, type PeerSettings, QR_MODELS } from "../net/mod.ts";
import type { PatientRecord, PlanRecord } from "../records/types.ts";
import { identifier } from "../qr/identifier.ts";
import { checkListFilter, DEFAULT_PHANTOM_PATTERNS, dicomPlanType, isPhantom, type ListFilter, type ListProblem, planTypeIncluded } from "./filter.ts";

function isoDate(da: string | undefined): string | undefined {
  return da && /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : undefined;
}

function dicomDate(iso: string): string {
  return iso.slice(0, 10).replace(/-/g, "");
}

/**
 * Patients by C-FIND (Study Root, study level, one query for all or one per `--patient`), then
 * each patient's plans by C-FIND on RTPLAN series and their instances (label, approval, date,
 * Plan Intent). Filters, from what the peer answers (docs/export.md, "Filters per source"):
 * - `since` matches studies whose Study Date is on or after it (the peer matches the range);
 * - phantom records (Quality Control Subject YES, or ID/name matching `phantomPatterns`) are left
 *   out unless `includePhantoms`;
 * - QA plans (Plan Intent VERIFICATION, MACHINE_QA, QA) are left out unless `includePlanTypes`
 *   names QA. A peer that answers no Plan Intent (it returns only the keys it indexes) cannot
 *   have them told apart: such plans are listed.
 * Plan statuses, physician, LOT simulation and setup plan types are refused ({@linkcode checkListFilter}).
 * A patient asked for that the peer does not know comes out as a problem.
 */
export async function* listDicomPeer(
  peer: PeerSettings, filter: ListFilter,
): AsyncGenerator<PatientRecord | PlanRecord | ListProblem> {
  checkListFilter("dicom", filter);
  const patterns = filter.phantomPatterns ?? DEFAULT_PHANTOM_PATTERNS;
  const model = QR_MODELS.studyRoot.find;
  const transferSyntaxes = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN];
  const assoc = await connect(connectOptions(peer, [{ abstractSyntax: model, transferSyntaxes }]));
  const source = `dicom:${peer.calledAet}@${peer.host}:${peer.port}`;
  try {
    const studies = new Map<string, { ds: DataSet; studies: string[] }>();
    for (const id of filter.patientIds?.length ? filter.patientIds : ["*"]) {
      const q = identifier({
        QueryRetrieveLevel: "STUDY", PatientID: id === "*" ? "" : id, PatientName: "", PatientBirthDate: "", PatientSex: "",
        QualityControlSubject: "", StudyInstanceUID: "", StudyDate: filter.since ? `${dicomDate(filter.since)}-` : "",
      });
      for await (const ds of find(assoc, model, q)) {
        const pid = ds.string("PatientID") ?? "";
        const study = ds.string("StudyInstanceUID");
        const entry = studies.get(pid) ?? { ds, studies: [] };
        if (study) entry.studies.push(study);
        studies.set(pid, entry);
      }
    }
    for (const [pid, { ds, studies: uids }] of [...studies].sort((a, b) => a[0].localeCompare(b[0]))) {
      const pn = personNameParts(ds.string("PatientName"));
      const phantom = isPhantom(
        { patientId: pid, name: ds.string("PatientName"), family: pn.family, given: pn.given, qualityControlSubject: ds.string("QualityControlSubject") },
        patterns,
      );
      if (phantom && !filter.includePhantoms) continue;
      const plans: PlanRecord[] = [];
      for (const study of uids) {
        const seriesQ = identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: study, SeriesInstanceUID: "", Modality: "RTPLAN" });
        const series: string[] = [];
        for await (const s of find(assoc, model, seriesQ)) {
          const uid = s.string("SeriesInstanceUID");
          if (uid) series.push(uid);
        }
        for (const seriesUid of series) {
          const imageQ = identifier({
            QueryRetrieveLevel: "IMAGE", StudyInstanceUID: study, SeriesInstanceUID: seriesUid, SOPInstanceUID: "",
            SOPClassUID: "", RTPlanLabel: "", RTPlanName: "", RTPlanDate: "", ApprovalStatus: "", PlanIntent: "",
          });
          for await (const im of find(assoc, model, imageQ)) {
            const uid = im.string("SOPInstanceUID");
            if (!uid) continue;
            const planIntent = im.string("PlanIntent");
            const planType = dicomPlanType({ planIntent });
            if (!planTypeIncluded(planType, filter)) continue;
            const plan: PlanRecord = {
              type: "plan", patientId: pid, planUid: uid, label: im.string("RTPlanLabel") ?? uid, source,
              studyUid: study, seriesUid,
            };
            const name = im.string("RTPlanName");
            if (name) plan.name = name;
            const approval = im.string("ApprovalStatus");
            if (approval) plan.approval = approval;
            const date = isoDate(im.string("RTPlanDate"));
            if (date) plan.planDate = date;
            if (planIntent) plan.planIntent = planIntent;
            if (planType) plan.planType = planType;
            plans.push(plan);
          }
        }
      }
      const rec: PatientRecord = { type: "patient", patientId: pid, name: { family: pn.family, given: pn.given }, source, plans: plans.length };
      const birth = isoDate(ds.string("PatientBirthDate"));
      if (birth) rec.birthDate = birth;
      const sex = ds.string("PatientSex");
      if (sex) rec.sex = sex;
      yield rec;
      yield* plans;
    }
    for (const id of filter.patientIds ?? []) {
      if (!studies.has(id)) {
        yield { type: "problem", problem: { what: `patient ${id}`, reason: `not found on ${source}${filter.since ? ` with a study since ${filter.since}` : ""}` } };
      }
    }
    await assoc.release();
  } catch (e) {
    assoc.abort();
    throw e;
  }
}
