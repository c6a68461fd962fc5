/**
 * What a `file` record says about a DICOM object, the same on every route (export-plan from a
 * catalog, a folder or a peer; copy-files; retrieve; serve): `category` is `dicom` for every DICOM
 * object, and the object's identity comes from its header. What the object is (plan, dose, image…)
 * is `objectKind(sopClassUid, modality)` in ./rt.ts; where it goes in a tree is the layout's
 * business (lib/layout), decided from that kind and from whether a plan is being exported.
 *
 * The data set is authoritative: SOP Class UID (0008,0016) and SOP Instance UID (0008,0018) name
 * the object; the meta header's Media Storage SOP Class/Instance UIDs (0002,0002)/(0002,0003) are
 * used only when the data set lacks them. Real files carry meta headers that disagree (Debian
 * pydicom's rtplan.dcm and rtdose.dcm; exports of several planning systems): a peer checks the
 * C-STORE request against the data set and refuses the meta header's UID.
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

/**
 * The `file` record fields of a parsed DICOM header.
 *
 * @example
 * ```ts
 * const fields = dicomRecordFields(readDicomFile("RP1.dcm"));
 * fields.sopInstanceUid; // the data set's (0008,0018), whatever the meta header says
 * ```
 */
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

/**
 * What the meta header says that the data set contradicts, one phrase per UID, or undefined when
 * they agree (or the meta header lacks the UID). The data set's values are the object's identity.
 *
 * @example
 * ```ts
 * const why = metaHeaderDisagreement(readDicomFile("rtplan.dcm"));
 * // 'its meta header\'s Media Storage SOP Instance UID "1.2.999…" differs from the data set\'s SOP Instance UID "1.2.777…"'
 * ```
 */
export function metaHeaderDisagreement(file: DicomFile): string | undefined {
  const out: string[] = [];
  for (const [metaTag, dsTag, what] of [[0x00020002, 0x00080016, "SOP Class UID"], [0x00020003, 0x00080018, "SOP Instance UID"]] as const) {
    const fromMeta = file.meta.string(metaTag);
    const fromDataSet = file.dataset.string(dsTag);
    if (fromMeta && fromDataSet && fromMeta !== fromDataSet) {
      out.push(`Media Storage ${what} "${fromMeta}" differs from the data set's ${what} "${fromDataSet}"`);
    }
  }
  return out.length ? `its meta header's ${out.join(", and its ")}` : undefined;
}

/**
 * The warning a stage gives for a file whose meta header disagrees with its data set, or undefined.
 * `action` says what the stage does about it ("the data set's UIDs are sent", "corrected in the copy").
 *
 * @example
 * ```ts
 * const warning = metaHeaderWarning(readDicomFile("rtplan.dcm"), "rtplan.dcm", "the data set's are used");
 * ```
 */
export function metaHeaderWarning(file: DicomFile, path: string, action: string): string | undefined {
  const why = metaHeaderDisagreement(file);
  return why ? `"${path}": ${why}; ${action}` : undefined;
}
