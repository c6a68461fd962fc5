/**
 * What a `file` record says about a DICOM object, the same on every route (export-plan from a
 * catalog, a folder or a peer; copy-files; retrieve; serve): `category` is `dicom` for every DICOM
 * object, and the object's identity comes from its header. What the object is (plan, dose, image…)
 * is `objectKind(sopClassUid, modality)` in ./rt.ts; where it goes in a tree is the layout's
 * business (lib/layout), decided from that kind and from whether a plan is being exported.
 */
import type { DicomFile } from "./reader.ts";

/** The category of every DICOM object's `file` record. */
export const DICOM_CATEGORY = "dicom";

/** The DICOM fields of a `file` record (absent values are left out). */
export interface DicomRecordFields {
  category: typeof DICOM_CATEGORY;
  sopClassUid?: string;
  sopInstanceUid?: string;
  modality?: string;
  patientId?: string;
  studyUid?: string;
  seriesUid?: string;
  transferSyntaxUid?: string;
}

/** The `file` record fields of a parsed DICOM header. */
export function dicomRecordFields(file: DicomFile): DicomRecordFields {
  const ds = file.dataset;
  const out: DicomRecordFields = { category: DICOM_CATEGORY };
  const put = (k: Exclude<keyof DicomRecordFields, "category">, v: string | undefined) => {
    if (v) out[k] = v;
  };
  put("sopClassUid", ds.string(0x00080016) ?? file.meta.string(0x00020002));
  put("sopInstanceUid", ds.string(0x00080018) ?? file.meta.string(0x00020003));
  put("modality", ds.string(0x00080060));
  put("patientId", ds.string(0x00100020));
  put("studyUid", ds.string(0x0020000d));
  put("seriesUid", ds.string(0x0020000e));
  put("transferSyntaxUid", file.transferSyntaxUid);
  return out;
}
