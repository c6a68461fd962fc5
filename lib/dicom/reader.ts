import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { inflateRawSync } from "node:zlib";
import { characterSet } from "./charset.ts";
import { DataSet, type DicomElement } from "./dataset.ts";
import { dictionaryVr, isUsOrSs, privateDictionaryVr } from "./dictionary.ts";
import { privateVr } from "./private_dictionary.ts";
import {
  DOUBLE_PIXEL_DATA, FLOAT_PIXEL_DATA, formatTag, ITEM, ITEM_DELIMITATION, PIXEL_DATA,
  SEQUENCE_DELIMITATION, SPECIFIC_CHARACTER_SET, type Tag,
} from "./tag.ts";
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN, transferSyntaxEncoding,
} from "./uids.ts";
import { BULK_VRS, isKnownVr, LONG_LENGTH_VRS } from "./vr.ts";

/** A DICOM file or stream, parsed. */
export interface DicomFile {
  /** The file's path, when read from a file. */
  path?: string;
  /** The source had the 128-byte preamble and `DICM`. */
  preamble: boolean;
  /** File meta information (group 0002); empty when the source had none. */
  meta: DataSet;
  dataset: DataSet;
  /** From the meta header, or detected when there is none. */
  transferSyntaxUid: string;
  /** Offset of the data set's first byte in the source (after the meta header). */
  datasetOffset: number;
  /** Size of the source in bytes. */
  size: number;
  /** False when a header-only read stopped at Pixel Data (later elements were not parsed). */
  complete: boolean;
}

/**
 * How {@linkcode readDicomFile} and {@linkcode parseDicom} read: header only (the default) or everything.
 */
export interface ReadOptions {
  /** Read everything, bulk values and pixel data included (default: header only). */
  full?: boolean;
  /**
   * Header-only reads skip values of bulk VRs (OB, OW, OF, OD, OL, OV, UN) longer than this,
   * recording only where they are. Default 4096 bytes.
   */
  bulkThreshold?: number;
  /**
   * Read every element, pixel data and what follows it included, but leave values of bulk VRs
   * longer than `bulkThreshold` in the source: they are `skipped`, with `offset`/`length` (and
   * `fragmentRanges` for encapsulated pixel data), so a writer can copy them from the file without
   * ever holding them (de-identification of gigabyte objects). Ignored for deflated data sets.
   */
  deferBulk?: boolean;
  /**
   * Header-only reads also walk the file past Pixel Data without reading pixel values: the item
   * headers of encapsulated fragments up to the sequence delimiter, then any later elements. A file
   * that ends early (a truncated JPEG, a sequence cut short after the pixels) then fails here with
   * the offset, instead of passing for complete. Costs one small read per fragment.
   */
  checkEnd?: boolean;
}

/**
 * A DICOM parse failure: the message says what was wrong, `offset` where (a byte offset in the
 * source). `not a DICOM file: …` at offset 0 means the source is not DICOM at all.
 *
 * @example
 * ```ts
 * try {
 *   readDicomFile("x.dcm");
 * } catch (e) {
 *   if (e instanceof DicomParseError) console.error(e.message, e.offset);
 * }
 * ```
 */
export class DicomParseError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = "DicomParseError";
    this.offset = offset;
  }
}

const MAX_DEPTH = 64;
const CHUNK = 16384;
// Most headers end within 2 KiB (CT slices); a smaller first read copies less from the page cache.
const FIRST_CHUNK = 4096;

/**
 * Byte access for the parser: a window over a file that grows on demand, or a whole buffer.
 * A new window is a new allocation, so value subarrays taken earlier stay valid.
 */
class Source {
  buf: Uint8Array;
  dv: DataView;
  start = 0; // source offset of buf[0]
  end: number; // source offset one past the last valid byte in buf
  readonly size: number;
  private readonly fd: number | undefined;

  constructor(bytes: Uint8Array | undefined, fd: number | undefined, size: number) {
    this.fd = fd;
    this.size = size;
    this.buf = bytes ?? new Uint8Array(0);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.end = bytes ? bytes.length : 0;
  }

  /** Makes [pos, pos+n) available; false when the source ends before that. */
  ensure(pos: number, n: number): boolean {
    if (pos >= this.start && pos + n <= this.end) return true;
    if (pos + n > this.size) return false;
    if (this.fd === undefined) return false;
    const want = Math.min(Math.max(n, this.end === 0 ? FIRST_CHUNK : CHUNK), this.size - pos);
    const buf = new Uint8Array(want);
    let got = 0;
    while (got < want) {
      const r = readSync(this.fd, buf, got, want - got, pos + got);
      if (r === 0) break;
      got += r;
    }
    if (got < n) return false;
    this.buf = buf;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.start = pos;
    this.end = pos + got;
    return true;
  }

  /** Like ensure, but throws; `what` and `tag` name the part (formatted only on failure: hot path). */
  need(pos: number, n: number, what: string, tag?: Tag): void {
    if (!this.ensure(pos, n)) {
      const detail = tag === undefined ? what : `${what} ${formatTag(tag)}`;
      throw new DicomParseError(`unexpected end of data at offset ${pos} (${detail})`, pos);
    }
  }

  u16(pos: number, le: boolean): number {
    return this.dv.getUint16(pos - this.start, le);
  }
  u32(pos: number, le: boolean): number {
    return this.dv.getUint32(pos - this.start, le);
  }
  byte(pos: number): number {
    return this.buf[pos - this.start];
  }
  bytes(pos: number, n: number): Uint8Array {
    return this.buf.subarray(pos - this.start, pos - this.start + n);
  }
}

interface ParseState {
  src: Source;
  full: boolean;
  /** Leave large bulk values in the source even in a full read (`ReadOptions.deferBulk`). */
  defer: boolean;
  bulkThreshold: number;
  /** Header-only: walk on past Pixel Data (see ReadOptions.checkEnd). */
  checkEnd?: boolean;
  /** Set when a header-only parse stops at Pixel Data. */
  stopped: boolean;
}

function signedPixels(ds: DataSet): boolean {
  const el = ds.elements.get(0x00280103);
  const v = el?.value;
  if (!v || v.length < 2) return false;
  return (ds.littleEndian ? v[0] | (v[1] << 8) : (v[0] << 8) | v[1]) === 1;
}

// Interned VR strings by their two bytes, so the hot loop doesn't build a string per element.
const VR_STRINGS: Record<number, string> = {};
for (const vr of ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"]) {
  VR_STRINGS[(vr.charCodeAt(0) << 8) | vr.charCodeAt(1)] = vr;
}

/** The VR of a private element in an implicit VR data set: from the private dictionaries by its creator, else UN. */
function privateElementVr(ds: DataSet, tag: Tag): string {
  const creator = ds.elements.get(((tag & 0xffff0000) | ((tag & 0xff00) >>> 8)) >>> 0);
  if (!creator?.value) return "UN";
  // The vendors' tables (seed 002: TomoTherapy, Varian VISION) first, then DCMTK's private.dic,
  // whose VR is the one DCMTK reads and writes when it converts the file to explicit VR.
  const text = latin1Text(creator.value);
  return privateVr(text, tag) ?? privateDictionaryVr(tag, text.replace(/\0+$/, ""));
}

function latin1Text(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function isVrChars(a: number, b: number): boolean {
  return a >= 0x41 && a <= 0x5a && b >= 0x41 && b <= 0x5a;
}

/**
 * Parses elements from `pos` until `end` (exclusive), or until an item delimiter when `end` is
 * Infinity inside an undefined-length item. Returns the position after the last byte consumed.
 */
function parseElements(st: ParseState, ds: DataSet, pos: number, end: number, depth: number, inItem: boolean): number {
  const src = st.src;
  const le = ds.littleEndian;
  const explicit = ds.explicitVR;
  const top = depth === 0;
  while (pos < end) {
    if (!src.ensure(pos, 8)) {
      if (end === Infinity && !inItem && pos === src.size) return pos;
      if (pos >= src.size && !inItem && end === Infinity) return pos;
      throw new DicomParseError(`unexpected end of data at offset ${pos} (element header)`, pos);
    }
    const group = src.u16(pos, le);
    const element = src.u16(pos + 2, le);
    const tag = ((group << 16) | element) >>> 0;
    if (group === 0xfffe) {
      if (tag === ITEM_DELIMITATION && inItem) return pos + 8;
      if (tag === SEQUENCE_DELIMITATION || tag === ITEM_DELIMITATION) {
        // Stray delimiter (seen in the wild after defined-length content): skip it.
        pos += 8;
        continue;
      }
      throw new DicomParseError(`unexpected item tag ${formatTag(tag)} at offset ${pos}`, pos);
    }
    let vr: string;
    let len: number;
    let valuePos: number;
    if (explicit) {
      const a = src.byte(pos + 4), b = src.byte(pos + 5);
      if (!isVrChars(a, b)) {
        throw new DicomParseError(`invalid VR bytes 0x${a.toString(16)} 0x${b.toString(16)} for ${formatTag(tag)} at offset ${pos + 4}`, pos + 4);
      }
      vr = VR_STRINGS[(a << 8) | b] ?? String.fromCharCode(a, b);
      if (LONG_LENGTH_VRS.has(vr) || !isKnownVr(vr)) {
        src.need(pos, 12, "length of", tag);
        len = src.u32(pos + 8, le);
        valuePos = pos + 12;
        if (!isKnownVr(vr)) vr = "UN"; // unknown VR with a 4-byte length, as PS3.5 6.2 advises
      } else {
        len = src.u16(pos + 6, le);
        valuePos = pos + 8;
      }
    } else {
      vr = (group & 1) === 1 && element >= 0x1000 ? privateElementVr(ds, tag) : dictionaryVr(tag);
      len = src.u32(pos + 4, le);
      valuePos = pos + 8;
      // US|SS elements (smallest/largest pixel value, padding value …) follow Pixel
      // Representation (0028,0103) of the same data set, as DCMTK resolves them.
      if (vr === "US" && isUsOrSs(tag) && signedPixels(ds)) vr = "SS";
    }

    const el: DicomElement = { tag, vr, offset: valuePos, length: len };
    const isPixel = tag === PIXEL_DATA || tag === FLOAT_PIXEL_DATA || tag === DOUBLE_PIXEL_DATA;
    if (top && isPixel && !st.full) {
      // Header-only: stop before the pixel data without reading it.
      el.skipped = true;
      if (len === 0xffffffff) {
        el.undefinedLength = true;
        el.length = src.size - valuePos;
      } else if (valuePos + len > src.size) {
        throw new DicomParseError(`${formatTag(tag)} of ${len} bytes extends beyond the end of the data (${src.size} bytes)`, valuePos);
      }
      ds.set(el);
      st.stopped = true;
      if (!st.checkEnd) return valuePos;
      // Walk on past the pixel values: fragment headers, then whatever elements follow.
      const after = len === 0xffffffff ? skipFragments(st, el, valuePos, le) : valuePos + len;
      if (len === 0xffffffff) el.length = after - valuePos;
      pos = after;
      continue;
    }
    if (len === 0xffffffff) {
      el.undefinedLength = true;
      if (vr === "SQ" || vr === "UN" || !explicit && !isPixel) {
        // UN with undefined length is a sequence in implicit VR little endian (PS3.5 6.2.2).
        const itemEncoding = vr === "UN" || (vr !== "SQ" && !explicit)
          ? { littleEndian: true, explicitVR: false }
          : { littleEndian: le, explicitVR: explicit };
        if (vr !== "SQ") el.vr = "SQ";
        const after = parseSequence(st, ds, el, valuePos, Infinity, depth, itemEncoding);
        el.length = after - valuePos;
        ds.set(el);
        pos = after;
        continue;
      }
      if (isPixel || vr === "OB" || vr === "OW") {
        const after = st.defer ? fragmentRanges(st, el, valuePos, le) : parseFragments(st, el, valuePos, le);
        el.length = after - valuePos;
        ds.set(el);
        pos = after;
        continue;
      }
      throw new DicomParseError(`undefined length for ${formatTag(tag)} with VR ${vr} at offset ${pos}`, pos);
    }
    if (valuePos + len > end || valuePos + len > src.size) {
      throw new DicomParseError(`value of ${formatTag(tag)} (${len} bytes at offset ${valuePos}) extends beyond the end of its ${end === Infinity || end > src.size ? "data" : "container"}`, valuePos);
    }
    if (vr === "SQ" && !explicit && (group & 1) === 1) {
      // The private dictionary says SQ, but a vendor's element may hold anything: read it as a
      // sequence when it is one, else keep its bytes as UN.
      try {
        parseSequence(st, ds, el, valuePos, valuePos + len, depth, { littleEndian: le, explicitVR: explicit });
      } catch (e) {
        if (!(e instanceof DicomParseError)) throw e;
        el.items = undefined;
        el.vr = "UN";
        src.need(valuePos, len, "value of", tag);
        el.value = src.bytes(valuePos, len);
      }
      ds.set(el);
      pos = valuePos + len;
      continue;
    }
    if (vr === "SQ") {
      const after = parseSequence(st, ds, el, valuePos, valuePos + len, depth, { littleEndian: le, explicitVR: explicit });
      ds.set(el);
      pos = after;
      continue;
    }
    if (vr === "UN" && explicit && len > 0 && dictionaryVr(tag) === "SQ") {
      // A sequence that a converter did not know, stored as UN with a defined length: keep the
      // bytes (as dcmdump shows them), and also read its items as implicit VR little endian
      // (PS3.5 6.2.2) so searches and reference trees see into it; the writer writes it as SQ.
      src.need(valuePos, len, "value of", tag);
      el.value = src.bytes(valuePos, len);
      try {
        parseSequence(st, ds, el, valuePos, valuePos + len, depth, { littleEndian: true, explicitVR: false });
      } catch (e) {
        if (!(e instanceof DicomParseError)) throw e;
        el.items = undefined; // not a sequence after all: the bytes stay
      }
      ds.set(el);
      pos = valuePos + len;
      continue;
    }
    if ((!st.full || st.defer) && len > st.bulkThreshold && BULK_VRS.has(vr)) {
      el.skipped = true;
    } else {
      src.need(valuePos, len, "value of", tag);
      el.value = src.bytes(valuePos, len);
      if (tag === SPECIFIC_CHARACTER_SET) {
        ds.set(el);
        ds.charset = characterSet(ds.strings(tag));
      }
    }
    ds.set(el);
    pos = valuePos + len;
  }
  if (pos > end) throw new DicomParseError(`element overruns its container at offset ${end}`, end);
  return pos;
}

function parseSequence(
  st: ParseState, parent: DataSet, el: DicomElement, pos: number, end: number, depth: number,
  encoding: { littleEndian: boolean; explicitVR: boolean },
): number {
  if (depth + 1 > MAX_DEPTH) throw new DicomParseError(`sequences nested deeper than ${MAX_DEPTH} levels at offset ${pos}`, pos);
  const src = st.src;
  const le = encoding.littleEndian;
  const items: DataSet[] = [];
  el.items = items;
  while (pos < end) {
    src.need(pos, 8, "item header in", el.tag);
    const tag = ((src.u16(pos, le) << 16) | src.u16(pos + 2, le)) >>> 0;
    const len = src.u32(pos + 4, le);
    if (tag === SEQUENCE_DELIMITATION) {
      if (end === Infinity) return pos + 8;
      pos += 8; // a delimiter inside a defined-length sequence: tolerated
      continue;
    }
    if (tag !== ITEM) {
      throw new DicomParseError(`expected an item in ${formatTag(el.tag)} but found ${formatTag(tag)} at offset ${pos}`, pos);
    }
    const item = new DataSet(encoding, parent.charset);
    items.push(item);
    if (len === 0xffffffff) {
      pos = parseElements(st, item, pos + 8, Infinity, depth + 1, true);
    } else {
      if (pos + 8 + len > end) {
        throw new DicomParseError(`item of ${len} bytes at offset ${pos} extends beyond its sequence ${formatTag(el.tag)}`, pos);
      }
      const itemEnd = pos + 8 + len;
      const after = parseElements(st, item, pos + 8, itemEnd, depth + 1, false);
      if (after !== itemEnd) throw new DicomParseError(`item at offset ${pos} ends at ${after}, not at ${itemEnd}`, pos);
      pos = itemEnd;
    }
  }
  if (end !== Infinity && pos !== end) throw new DicomParseError(`sequence ${formatTag(el.tag)} overruns its length`, pos);
  if (end === Infinity) throw new DicomParseError(`unexpected end of data in sequence ${formatTag(el.tag)}`, pos);
  return pos;
}

/**
 * Walks the fragment items of encapsulated pixel data by their headers alone (values are not
 * read) and returns the position after the sequence delimiter; throws when the data ends first.
 */
function skipFragments(st: ParseState, el: DicomElement, pos: number, le: boolean): number {
  const src = st.src;
  let fragments = 0;
  for (;;) {
    if (!src.ensure(pos, 8)) {
      throw new DicomParseError(
        `encapsulated ${formatTag(el.tag)} ends at offset ${src.size} after ${fragments} fragment${fragments === 1 ? "" : "s"}, without its sequence delimiter (the file is truncated)`,
        pos,
      );
    }
    const tag = ((src.u16(pos, le) << 16) | src.u16(pos + 2, le)) >>> 0;
    const len = src.u32(pos + 4, le);
    if (tag === SEQUENCE_DELIMITATION) return pos + 8;
    if (tag !== ITEM || len === 0xffffffff) {
      throw new DicomParseError(`expected a fragment item in ${formatTag(el.tag)} but found ${formatTag(tag)} at offset ${pos}`, pos);
    }
    if (pos + 8 + len > src.size) {
      throw new DicomParseError(`fragment ${fragments + 1} of ${formatTag(el.tag)} (${len} bytes at offset ${pos + 8}) extends beyond the end of the file (${src.size} bytes): the file is truncated`, pos);
    }
    fragments++;
    pos += 8 + len;
  }
}

function parseFragments(st: ParseState, el: DicomElement, pos: number, le: boolean): number {
  const src = st.src;
  const fragments: Uint8Array[] = [];
  for (;;) {
    src.need(pos, 8, "fragment header in", el.tag);
    const tag = ((src.u16(pos, le) << 16) | src.u16(pos + 2, le)) >>> 0;
    const len = src.u32(pos + 4, le);
    if (tag === SEQUENCE_DELIMITATION) {
      if (st.full || el.tag !== PIXEL_DATA) el.fragments = fragments;
      return pos + 8;
    }
    if (tag !== ITEM || len === 0xffffffff) {
      throw new DicomParseError(`expected a fragment item in ${formatTag(el.tag)} but found ${formatTag(tag)} at offset ${pos}`, pos);
    }
    if (pos + 8 + len > src.size) {
      throw new DicomParseError(`fragment of ${len} bytes at offset ${pos} extends beyond the end of the data`, pos);
    }
    src.need(pos + 8, len, "fragment in", el.tag);
    fragments.push(src.bytes(pos + 8, len));
    pos += 8 + len;
  }
}

/**
 * Encapsulated pixel data in a deferred read: only the item headers are read, the fragments are
 * recorded as ranges of the source (`fragmentRanges`) and the element is `skipped`.
 */
function fragmentRanges(st: ParseState, el: DicomElement, pos: number, le: boolean): number {
  const src = st.src;
  const ranges: { offset: number; length: number }[] = [];
  for (;;) {
    src.need(pos, 8, "fragment header in", el.tag);
    const tag = ((src.u16(pos, le) << 16) | src.u16(pos + 2, le)) >>> 0;
    const len = src.u32(pos + 4, le);
    if (tag === SEQUENCE_DELIMITATION) {
      el.fragmentRanges = ranges;
      el.skipped = true;
      return pos + 8;
    }
    if (tag !== ITEM || len === 0xffffffff) {
      throw new DicomParseError(`expected a fragment item in ${formatTag(el.tag)} but found ${formatTag(tag)} at offset ${pos}`, pos);
    }
    if (pos + 8 + len > src.size) {
      throw new DicomParseError(`fragment of ${len} bytes at offset ${pos} extends beyond the end of the data`, pos);
    }
    ranges.push({ offset: pos + 8, length: len });
    pos += 8 + len;
  }
}

/** Deflated data sets are small in practice; a cap keeps a "zip bomb" from allocating gigabytes. */
const MAX_INFLATED = 1 << 30;

function inflate(bytes: Uint8Array, offset: number): Uint8Array {
  try {
    const out = inflateRawSync(bytes, { maxOutputLength: MAX_INFLATED });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    const reason = /larger than/.test((e as Error).message) ? "it inflates to more than 1 GiB" : (e as Error).message;
    throw new DicomParseError(`deflated data set cannot be inflated: ${reason}`, offset);
  }
}

function readMeta(src: Source, pos: number): { meta: DataSet; end: number } {
  const meta = new DataSet({ littleEndian: true, explicitVR: true });
  const st: ParseState = { src, full: true, defer: false, bulkThreshold: Infinity, stopped: false };
  // Group 0002 is always explicit VR little endian; read elements while the group is 0002.
  while (src.ensure(pos, 8) && src.u16(pos, true) === 0x0002) {
    const vr0 = src.byte(pos + 4), vr1 = src.byte(pos + 5);
    if (!isVrChars(vr0, vr1)) throw new DicomParseError(`invalid VR in file meta information at offset ${pos + 4}`, pos + 4);
    const vr = String.fromCharCode(vr0, vr1);
    const headerLen = LONG_LENGTH_VRS.has(vr) ? 12 : 8;
    src.need(pos, headerLen, "file meta information");
    const len = headerLen === 12 ? src.u32(pos + 8, true) : src.u16(pos + 6, true);
    if (len === 0xffffffff) throw new DicomParseError(`undefined length in file meta information at offset ${pos}`, pos);
    const end = pos + headerLen + len;
    pos = parseElements(st, meta, pos, end, 0, false);
  }
  return { meta, end: pos };
}

function startsWithDicm(src: Source, pos: number): boolean {
  return src.ensure(pos, 4) && src.byte(pos) === 0x44 && src.byte(pos + 1) === 0x49 &&
    src.byte(pos + 2) === 0x43 && src.byte(pos + 3) === 0x4d;
}

/** Guesses the encoding of a data set without meta information from its first element. */
function detectEncoding(src: Source, pos: number, hasMeta: boolean): string {
  if (!src.ensure(pos, 8)) throw new DicomParseError("not a DICOM file: too short", 0);
  const leGroup = src.u16(pos, true);
  const beGroup = src.u16(pos, false);
  const explicit = isVrChars(src.byte(pos + 4), src.byte(pos + 5)) &&
    isKnownVr(String.fromCharCode(src.byte(pos + 4), src.byte(pos + 5)));
  const littleEndian = leGroup <= beGroup;
  const group = littleEndian ? leGroup : beGroup;
  // A data set starts with a low, even group (0008 usually; 0000–0028 seen in ACR-NEMA-like files).
  // With meta information already read (but no Transfer Syntax UID in it) the source is DICOM:
  // only the encoding is in question, whatever the first group is.
  if (!hasMeta && (group > 0x0100 || (group & 1) === 1 && group !== 0x0009)) {
    throw new DicomParseError("not a DICOM file: no preamble, no meta information, and no recognisable first element", 0);
  }
  if (!littleEndian) {
    if (!explicit) throw new DicomParseError("not a DICOM file: implicit VR big endian is not a DICOM encoding", 0);
    return EXPLICIT_VR_BIG_ENDIAN;
  }
  return explicit ? EXPLICIT_VR_LITTLE_ENDIAN : IMPLICIT_VR_LITTLE_ENDIAN;
}

function parse(src: Source, opts: ReadOptions, path?: string): DicomFile {
  let pos = 0;
  let preamble = false;
  if (src.size >= 132 && startsWithDicm(src, 128)) {
    preamble = true;
    pos = 132;
  } else if (startsWithDicm(src, 0)) {
    pos = 4; // "DICM" without a preamble
  }
  let meta = new DataSet();
  let transferSyntaxUid: string | undefined;
  if (src.ensure(pos, 6) && src.u16(pos, true) === 0x0002 && isVrChars(src.byte(pos + 4), src.byte(pos + 5))) {
    const r = readMeta(src, pos);
    meta = r.meta;
    pos = r.end;
    transferSyntaxUid = meta.string(0x00020010);
  } else if (preamble) {
    throw new DicomParseError("file meta information missing after DICM", pos);
  }
  const datasetOffset = pos;
  if (!transferSyntaxUid) transferSyntaxUid = detectEncoding(src, pos, meta.size > 0);
  const enc = transferSyntaxEncoding(transferSyntaxUid);
  let dataSrc = src;
  let dataPos = pos;
  if (enc.deflated) {
    src.need(pos, src.size - pos, "deflated data set");
    const inflated = inflate(src.bytes(pos, src.size - pos), pos);
    dataSrc = new Source(inflated, undefined, inflated.length);
    dataPos = 0;
  } else if (enc.explicitVR && src.ensure(pos, 6) && !isVrChars(src.byte(pos + 4), src.byte(pos + 5)) &&
    src.u16(pos, true) !== 0xfffe) {
    // The meta header says explicit but the data set is implicit: read it as it is, as DCMTK does.
    enc.explicitVR = false;
  }
  const dataset = new DataSet({ littleEndian: enc.littleEndian, explicitVR: enc.explicitVR });
  // A deflated data set is inflated whole, so nothing is skipped: offsets of skipped values
  // would point into the inflated stream, not into the file.
  const defer = !!opts.deferBulk && !enc.deflated;
  const st: ParseState = {
    src: dataSrc, full: !!opts.full || enc.deflated || defer, defer, bulkThreshold: opts.bulkThreshold ?? 4096, stopped: false, checkEnd: opts.checkEnd,
  };
  try {
    parseElements(st, dataset, dataPos, Infinity, 0, false);
  } catch (e) {
    // Without DICM and meta information only the first bytes said "data set": one that then
    // does not parse is taken for what it most likely is, a file that is not DICOM (random bytes
    // pass the first-element check about once in 250 files), not a damaged DICOM file.
    if (pos === 0 && meta.size === 0 && e instanceof DicomParseError) {
      throw new DicomParseError(`not a DICOM file: no preamble or meta information, and what follows does not parse as a data set (${e.message})`, 0);
    }
    throw e;
  }
  if (dataset.size === 0 && meta.size === 0) throw new DicomParseError("not a DICOM file: no elements", 0);
  return { path, preamble, meta, dataset, transferSyntaxUid, datasetOffset, size: src.size, complete: !st.stopped };
}

/**
 * Parses DICOM from bytes in memory (a whole Part 10 file, or a bare data set without preamble
 * and meta information), as {@linkcode readDicomFile} reads a file.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * const file = parseDicom(new Uint8Array(readFileSync("a.dcm")), { full: true });
 * file.dataset.string("SOPInstanceUID");
 * ```
 */
export function parseDicom(bytes: Uint8Array, opts: ReadOptions = {}): DicomFile {
  return parse(new Source(bytes, undefined, bytes.length), opts);
}

/**
 * Parses a bare data set in a known transfer syntax (as received over the network in a DIMSE
 * message). Reads everything by default.
 *
 * @example
 * ```ts
 * const ds = parseDataSet(bytes, EXPLICIT_VR_LITTLE_ENDIAN);
 * ds.string("PatientID");
 * ```
 */
export function parseDataSet(bytes: Uint8Array, transferSyntaxUid: string, opts: ReadOptions = { full: true }): DataSet {
  const enc = transferSyntaxEncoding(transferSyntaxUid);
  const data = enc.deflated ? inflate(bytes, 0) : bytes;
  const ds = new DataSet({ littleEndian: enc.littleEndian, explicitVR: enc.explicitVR });
  const st: ParseState = {
    src: new Source(data, undefined, data.length), full: opts.full ?? true, defer: false, bulkThreshold: opts.bulkThreshold ?? 4096, stopped: false,
  };
  parseElements(st, ds, 0, Infinity, 0, false);
  return ds;
}

/**
 * Parses the header of a Part 10 file of `size` bytes from its first bytes, already in memory
 * (what `readDicomFile` returns without `full`, for a file it need not read back). Values are
 * views into `prefix`. Throws a DicomParseError when the header runs past `prefix`: the caller
 * then reads the file, which also tells a short prefix from a damaged file.
 */
export function parseDicomHeader(prefix: Uint8Array, size: number, path?: string): DicomFile {
  // Fewer bytes than a preamble and "DICM" would be taken for a file without them.
  if (prefix.length < Math.min(size, 132)) throw new DicomParseError(`a header prefix of ${prefix.length} bytes is too short`, prefix.length);
  return parse(new Source(prefix, undefined, size), {}, path);
}

/**
 * Parses a DICOM file from an open file descriptor of a file of `size` bytes, reading windows of
 * it as needed (with `deferBulk`, large values stay in the file; the caller copies them from the
 * same descriptor, so a file replaced meanwhile cannot mix into the output).
 */
export function readDicomFd(fd: number, size: number, opts: ReadOptions = {}, path?: string): DicomFile {
  return parse(new Source(undefined, fd, size), opts, path);
}

/**
 * Reads a DICOM file: Part 10, or a bare data set without preamble or meta header. By default it
 * reads the header only: it stops before Pixel Data and skips bulk values over 4096 bytes (marked
 * `skipped`), so scanning thousands of files reads a few kilobytes of each; `{full: true}` reads
 * everything. Throws a {@linkcode DicomParseError} (or a file system error) naming what is wrong.
 *
 * @example
 * ```ts
 * const { dataset, transferSyntaxUid } = readDicomFile("RP1.dcm");
 * console.log(dataset.string("RTPlanLabel"), transferSyntaxUid);
 * ```
 */
export function readDicomFile(path: string, opts: ReadOptions = {}): DicomFile {
  if (opts.full && !opts.deferBulk) {
    const bytes = readFileSync(path);
    const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return parse(new Source(u8, undefined, u8.length), opts, path);
  }
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    return parse(new Source(undefined, fd, size), opts, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the bytes of a value that a header-only read skipped.
 *
 * @example
 * ```ts
 * const file = readDicomFile("CT1.dcm");
 * const el = file.dataset.get("PixelData");
 * if (el?.skipped) console.log(readSkippedValue("CT1.dcm", el).length);
 * ```
 */
export function readSkippedValue(path: string, el: DicomElement): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(el.length);
    let got = 0;
    while (got < el.length) {
      const r = readSync(fd, buf, got, el.length - got, el.offset + got);
      if (r === 0) throw new DicomParseError(`unexpected end of data at offset ${el.offset + got}`, el.offset + got);
      got += r;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

export { DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, type Tag };
