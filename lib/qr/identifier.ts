/** Building Query/Retrieve identifiers (the data set of a C-FIND, C-MOVE or C-GET request) by keyword. */
import { DataSet, padValue } from "../dicom/dataset.ts";
import { lookupKeyword } from "../dicom/dictionary.ts";

const encoder = new TextEncoder();

/**
 * A Q/R identifier from keyword → value ("" asks for the attribute). Values are ASCII or UTF-8
 * (Specific Character Set ISO_IR 192 is added when needed); `[]` makes an empty sequence key.
 *
 * @example
 * ```ts
 * const query = identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "", Modality: "" });
 * ```
 */
export function identifier(fields: Record<string, string | DataSet[]>): DataSet {
  const ds = new DataSet();
  let utf8 = false;
  for (const [keyword, value] of Object.entries(fields)) {
    const e = lookupKeyword(keyword);
    if (!e) throw new Error(`Unknown DICOM keyword "${keyword}"`);
    if (Array.isArray(value)) {
      ds.set({ tag: e.tag, vr: "SQ", items: value, offset: 0, length: 0 });
      continue;
    }
    const vr = e.vr.split(/[ /]/)[0];
    const bytes = padValue(encoder.encode(value), vr);
    if (/[\u0080-\uffff]/.test(value)) utf8 = true;
    ds.set({ tag: e.tag, vr, value: bytes, offset: 0, length: bytes.length });
  }
  if (utf8) {
    const b = encoder.encode("ISO_IR 192");
    ds.set({ tag: 0x00080005, vr: "CS", value: b, offset: 0, length: b.length });
  }
  return ds;
}

const PATIENT_ID = 0x00100020;
const SPECIFIC_CHARACTER_SET = 0x00080005;

/**
 * A copy of a Q/R identifier with PatientID (0010,0020) set to `patientId`. A query or retrieve
 * below the patient level that names the patient cannot select another patient's study or series
 * that happens to share a UID (seen in real QA exports), at a peer that honours the key.
 *
 * @example
 * ```ts
 * const id = forPatient(identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "" }), "RTX0001");
 * ```
 */
export function forPatient(id: DataSet, patientId: string): DataSet {
  const out = new DataSet({ littleEndian: id.littleEndian, explicitVR: id.explicitVR }, id.charset);
  for (const el of id.elements.values()) out.set(el);
  const bytes = padValue(encoder.encode(patientId), "LO");
  out.set({ tag: PATIENT_ID, vr: "LO", value: bytes, offset: 0, length: bytes.length });
  if (/[\u0080-\uffff]/.test(patientId) && !out.has(SPECIFIC_CHARACTER_SET)) {
    const b = encoder.encode("ISO_IR 192");
    out.set({ tag: SPECIFIC_CHARACTER_SET, vr: "CS", value: b, offset: 0, length: b.length });
  }
  return out;
}
