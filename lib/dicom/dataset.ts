import { CharacterSet, DEFAULT_CHARSET } from "./charset.ts";
import { dictionaryVr, lookupKeyword, resolveTag } from "./dictionary.ts";
import { formatTag, type Tag } from "./tag.ts";
import { BINARY_WIDTH, CHARSET_VRS, SINGLE_VALUE_STRING_VRS, STRING_VRS } from "./vr.ts";

/**
 * One data element. The value is kept as the bytes it had in the source, in the source's byte
 * order, so writing it back loses nothing; accessors decode on demand.
 */
export interface DicomElement {
  tag: Tag;
  vr: string;
  /** Raw value bytes. Absent for SQ, for encapsulated pixel data, and for values not read (`skipped`). */
  value?: Uint8Array;
  /**
   * Items of a sequence (VR SQ; UN with undefined length, read as a sequence; or a UN element
   * with a defined length whose tag the dictionary knows as SQ — then `value` keeps its bytes,
   * and the writer writes the element as SQ from these items).
   */
  items?: DataSet[];
  /** Encapsulated pixel data: the basic offset table item first, then each fragment. */
  fragments?: Uint8Array[];
  /** The source used undefined length (sequences and encapsulated pixel data). */
  undefinedLength?: boolean;
  /** Offset of the value's first byte in the source (file offset for files). */
  offset: number;
  /** Length of the value in the source; for undefined length, the bytes up to and including the delimiter. */
  length: number;
  /** The value was not read (header-only read of bulk data); `offset`/`length` say where it is. */
  skipped?: boolean;
  /**
   * Encapsulated pixel data whose fragments were left in the source (a deferred read): where each
   * fragment item's value is, basic offset table first.
   */
  fragmentRanges?: { offset: number; length: number }[];
}

/** Byte order and VR explicitness of an encoded data set. */
export interface Encoding {
  littleEndian: boolean;
  explicitVR: boolean;
}

/**
 * A data set (or sequence item): elements by tag, plus how its values are encoded; typed
 * accessors take a tag or a keyword.
 *
 * @example
 * ```ts
 * const ds = readDicomFile("RP1.dcm").dataset;
 * ds.string("PatientID");
 * for (const beam of ds.items("BeamSequence")) console.log(beam.string("TreatmentMachineName"));
 * ```
 */
export class DataSet {
  readonly elements: Map<Tag, DicomElement> = new Map();
  littleEndian: boolean;
  explicitVR: boolean;
  /** Specific Character Set in force (inherited from the enclosing data set unless the item has its own). */
  charset: CharacterSet;

  constructor(encoding: Encoding = { littleEndian: true, explicitVR: true }, charset: CharacterSet = DEFAULT_CHARSET) {
    this.littleEndian = encoding.littleEndian;
    this.explicitVR = encoding.explicitVR;
    this.charset = charset;
  }

  get size(): number {
    return this.elements.size;
  }

  has(tag: Tag | string): boolean {
    const t = toTag(tag);
    return t !== undefined && this.elements.has(t);
  }

  get(tag: Tag | string): DicomElement | undefined {
    const t = toTag(tag);
    return t === undefined ? undefined : this.elements.get(t);
  }

  set(element: DicomElement): void {
    this.elements.set(element.tag >>> 0, element);
  }

  delete(tag: Tag | string): boolean {
    const t = toTag(tag);
    return t !== undefined && this.elements.delete(t);
  }

  /** Elements in ascending tag order. */
  sorted(): DicomElement[] {
    const all = [...this.elements.values()];
    // Read data sets are in order already (and stay so when values change): sort only when needed.
    for (let i = 1; i < all.length; i++) if (all[i - 1].tag > all[i].tag) return all.sort((a, b) => a.tag - b.tag);
    return all;
  }

  /** All values of an element, decoded (strings for text VRs, numbers for binary ones). */
  values(tag: Tag | string): (string | number | bigint)[] {
    const el = this.get(tag);
    return el ? elementValues(el, this) : [];
  }

  /** All values as strings (numbers formatted as DCMTK prints them). */
  strings(tag: Tag | string): string[] {
    return this.values(tag).map((v) => typeof v === "string" ? v : String(v));
  }

  /** The first value as a string, or undefined when absent or empty. */
  string(tag: Tag | string): string | undefined {
    const el = this.get(tag);
    if (!el) return undefined;
    const known = firstStrings.get(el);
    if (known && known.value === el.value && known.vr === el.vr && known.charset === this.charset) return known.s;
    const v = elementValues(el, this)[0];
    const s = v === undefined || v === "" ? undefined : typeof v === "string" ? v : String(v);
    firstStrings.set(el, { value: el.value, vr: el.vr, charset: this.charset, s });
    return s;
  }

  /** The first value as a number (IS/DS parsed), or undefined. */
  number(tag: Tag | string): number | undefined {
    const v = this.values(tag)[0];
    if (v === undefined || v === "") return undefined;
    const n = typeof v === "string" ? Number(v) : Number(v);
    return Number.isNaN(n) ? undefined : n;
  }

  /** Items of a sequence (empty when absent or not a sequence). */
  items(tag: Tag | string): DataSet[] {
    return this.get(tag)?.items ?? [];
  }
}

/**
 * `string()` answers by element, while the element keeps its value bytes and VR and its data set
 * its character set: the same few UIDs of a received object are asked for again and again (a
 * retrieval's planner sorts objects by series, the export names files by them), and decoding one
 * (character set, splitting, trimming) cost a few microseconds each time — a tenth of
 * export-plan's JavaScript time per object in a profile.
 */
const firstStrings = new WeakMap<DicomElement, { value: Uint8Array | undefined; vr: string; charset: CharacterSet; s: string | undefined }>();

function toTag(tag: Tag | string): Tag | undefined {
  if (typeof tag === "number") return tag >>> 0;
  return resolveTag(tag);
}

/**
 * Decodes an element's values using the data set's byte order and character set: strings for
 * text VRs, numbers for numeric ones (bigint for 64-bit integers).
 *
 * @example
 * ```ts
 * const ds = readDicomFile("CT1.dcm").dataset;
 * elementValues(ds.get("ImagePositionPatient")!, ds); // [-250, -250, 12.5]
 * ```
 */
export function elementValues(el: DicomElement, ds: { littleEndian: boolean; charset: CharacterSet }): (string | number | bigint)[] {
  const bytes = el.value;
  if (!bytes || bytes.length === 0) return [];
  let vr = el.vr;
  // A UN element of a tag the dictionary knows (an implicit VR file converted by a node that did
  // not know the tag): its values decode by the dictionary's VR. The element itself stays UN.
  if (vr === "UN") {
    const known = dictionaryVr(el.tag);
    if (known !== "UN" && known !== "SQ" && known !== "OB" && known !== "OW") vr = known;
  }
  if (STRING_VRS.has(vr)) {
    const text = CHARSET_VRS.has(vr) ? ds.charset.decode(bytes, vr === "PN") : latin1(bytes);
    const parts = SINGLE_VALUE_STRING_VRS.has(vr) ? [text] : text.split("\\");
    return parts.map((p) => trimValue(p, vr));
  }
  const width = BINARY_WIDTH[vr];
  if (!width || vr === "OB" || vr === "UN") return [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = ds.littleEndian;
  const out: (number | bigint | string)[] = [];
  // AT values are pairs of 16-bit numbers (swapped as such, hence width 2): step 4 bytes.
  const step = vr === "AT" ? 4 : width;
  const n = Math.floor(bytes.length / step);
  for (let i = 0; i < n; i++) {
    const o = i * step;
    switch (vr) {
      case "US": case "OW": out.push(dv.getUint16(o, le)); break;
      case "SS": out.push(dv.getInt16(o, le)); break;
      case "UL": case "OL": out.push(dv.getUint32(o, le)); break;
      case "SL": out.push(dv.getInt32(o, le)); break;
      case "FL": case "OF": out.push(dv.getFloat32(o, le)); break;
      case "FD": case "OD": out.push(dv.getFloat64(o, le)); break;
      case "SV": out.push(dv.getBigInt64(o, le)); break;
      case "UV": case "OV": out.push(dv.getBigUint64(o, le)); break;
      case "AT": {
        const g = dv.getUint16(o, le), e = dv.getUint16(o + 2, le);
        out.push(formatTag(((g << 16) | e) >>> 0));
        break;
      }
    }
  }
  return out;
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/** Removes padding as PS3.5 allows: trailing spaces (and NUL for UI), leading spaces where insignificant. */
function trimValue(v: string, vr: string): string {
  if (vr === "UI") return v.replace(/[\0 ]+$/, "");
  if (vr === "LT" || vr === "ST" || vr === "UT" || vr === "UR") return v.replace(/[\0 ]+$/, "");
  return v.replace(/^ +/, "").replace(/[\0 ]+$/, "");
}

/** Keyword → tag, throwing a clear error for unknown keywords (for library callers). */
export function tagForKeyword(keyword: string): Tag {
  const e = lookupKeyword(keyword);
  if (!e) throw new Error(`Unknown DICOM keyword "${keyword}"`);
  return e.tag;
}

/** Pads a value to the even length PS3.5 requires: NUL for UI, OB and UN, a space for text. */
export function padValue(value: Uint8Array, vr: string): Uint8Array {
  if (value.length % 2 === 0) return value;
  const out = new Uint8Array(value.length + 1);
  out.set(value);
  out[value.length] = vr === "UI" || vr === "OB" || vr === "UN" ? 0 : 0x20;
  return out;
}

/** An element holding `text` (ASCII or UTF-8 bytes), padded to even length. */
export function textElement(tag: Tag, vr: string, text: string): DicomElement {
  const value = padValue(new TextEncoder().encode(text), vr);
  return { tag, vr, value, offset: 0, length: value.length };
}
