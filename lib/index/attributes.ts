/**
 * The attributes the folder index keeps at each Query/Retrieve level: the ones C-FIND peers
 * ask for, plus RT plan attributes that make selective retrieval possible without fetching
 * every plan (RTPlanLabel, ApprovalStatus), what list-patients leaves out by default (Plan
 * Intent of QA plans, Quality Control Subject of phantoms) and the plan/structure-set references
 * of doses, records and plans.
 */
import { lookupKeyword } from "../dicom/dictionary.ts";
import type { Tag } from "../dicom/tag.ts";

export type QueryLevel = "PATIENT" | "STUDY" | "SERIES" | "IMAGE";
export const LEVELS: readonly QueryLevel[] = ["PATIENT", "STUDY", "SERIES", "IMAGE"];

export interface IndexedAttribute {
  keyword: string;
  tag: Tag;
  vr: string;
  level: QueryLevel;
  /** Column in the level's table. */
  column: string;
}

function attr(keyword: string, level: QueryLevel, column: string): IndexedAttribute {
  const e = lookupKeyword(keyword);
  if (!e) throw new Error(`Unknown DICOM keyword "${keyword}" in the index schema`);
  return { keyword, tag: e.tag, vr: e.vr.split(/[ /]/)[0], level, column };
}

/** Attributes stored as columns, in table order. */
export const INDEXED_ATTRIBUTES: readonly IndexedAttribute[] = [
  attr("PatientID", "PATIENT", "patient_id"),
  attr("PatientName", "PATIENT", "patient_name"),
  attr("IssuerOfPatientID", "PATIENT", "issuer_of_patient_id"),
  attr("PatientBirthDate", "PATIENT", "patient_birth_date"),
  attr("PatientSex", "PATIENT", "patient_sex"),
  attr("QualityControlSubject", "PATIENT", "quality_control_subject"),
  attr("StudyInstanceUID", "STUDY", "study_uid"),
  attr("StudyDate", "STUDY", "study_date"),
  attr("StudyTime", "STUDY", "study_time"),
  attr("AccessionNumber", "STUDY", "accession_number"),
  attr("StudyID", "STUDY", "study_id"),
  attr("StudyDescription", "STUDY", "study_description"),
  attr("ReferringPhysicianName", "STUDY", "referring_physician_name"),
  attr("SeriesInstanceUID", "SERIES", "series_uid"),
  attr("Modality", "SERIES", "modality"),
  attr("SeriesNumber", "SERIES", "series_number"),
  attr("SeriesDescription", "SERIES", "series_description"),
  attr("SeriesDate", "SERIES", "series_date"),
  attr("SeriesTime", "SERIES", "series_time"),
  attr("FrameOfReferenceUID", "SERIES", "frame_of_reference_uid"),
  attr("SOPInstanceUID", "IMAGE", "sop_instance_uid"),
  attr("SOPClassUID", "IMAGE", "sop_class_uid"),
  attr("InstanceNumber", "IMAGE", "instance_number"),
  attr("ContentDate", "IMAGE", "content_date"),
  attr("ContentTime", "IMAGE", "content_time"),
  attr("RTPlanLabel", "IMAGE", "rt_plan_label"),
  attr("RTPlanName", "IMAGE", "rt_plan_name"),
  attr("RTPlanDate", "IMAGE", "rt_plan_date"),
  attr("ApprovalStatus", "IMAGE", "approval_status"),
  attr("PlanIntent", "IMAGE", "plan_intent"),
  attr("StructureSetLabel", "IMAGE", "structure_set_label"),
  attr("DoseSummationType", "IMAGE", "dose_summation_type"),
];

/** Keys whose values the SCP computes from the index rather than stores (PS3.4 C.3.4 optional keys). */
export const COMPUTED_ATTRIBUTES: readonly IndexedAttribute[] = [
  attr("NumberOfPatientRelatedStudies", "PATIENT", "n_patient_studies"),
  attr("NumberOfPatientRelatedSeries", "PATIENT", "n_patient_series"),
  attr("NumberOfPatientRelatedInstances", "PATIENT", "n_patient_instances"),
  attr("ModalitiesInStudy", "STUDY", "modalities_in_study"),
  attr("SOPClassesInStudy", "STUDY", "sop_classes_in_study"),
  attr("NumberOfStudyRelatedSeries", "STUDY", "n_study_series"),
  attr("NumberOfStudyRelatedInstances", "STUDY", "n_study_instances"),
  attr("NumberOfSeriesRelatedInstances", "SERIES", "n_series_instances"),
];

/** Sequence keys answered at IMAGE level from stored references (item: ReferencedSOPClassUID + ReferencedSOPInstanceUID). */
export const REFERENCE_SEQUENCES: readonly { keyword: string; tag: Tag; column: string }[] = [
  { keyword: "ReferencedRTPlanSequence", tag: 0x300c0002, column: "ref_plan_uids" },
  { keyword: "ReferencedStructureSetSequence", tag: 0x300c0060, column: "ref_structure_set_uids" },
];

export const ATTRIBUTE_BY_TAG: ReadonlyMap<Tag, IndexedAttribute> = new Map(
  [...INDEXED_ATTRIBUTES, ...COMPUTED_ATTRIBUTES].map((a) => [a.tag, a]),
);

export function levelRank(level: QueryLevel): number {
  return LEVELS.indexOf(level);
}
