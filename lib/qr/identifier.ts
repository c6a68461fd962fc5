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
