import { concatBytes } from "../util/bytes.ts";
import { DataSet, type DicomElement, padValue } from "./dataset.ts";
import { deflateRawSync } from "node:zlib";
import { formatTag, ITEM, ITEM_DELIMITATION, SEQUENCE_DELIMITATION } from "./tag.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN, NATIVE_TRANSFER_SYNTAXES, transferSyntaxEncoding } from "./uids.ts";
import { BINARY_WIDTH, LONG_LENGTH_VRS } from "./vr.ts";

/** This implementation's identity in the file meta information. */
export const IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.10.1467.1";
export const IMPLEMENTATION_VERSION_NAME = "RTEXPORT_010";

/** Bytes of the source file a value was left in (a deferred read): copied, never held. */
export interface SourceRange {
  offset: number;
  length: number;
}

/** A piece of an encoded data set: bytes, or a range of the source file to copy. */
export type EncodedPart = Uint8Array | SourceRange;

/** Accumulates byte chunks (and source ranges, when the target allows them); concatenated once at the end. */
class Chunks {
  parts: EncodedPart[] = [];
  length = 0;
  push(b: EncodedPart): void {
    this.parts.push(b);
    this.length += b.length;
  }
  concat(): Uint8Array {
    return concatBytes(this.parts as Uint8Array[], this.length);
  }
}

interface Target {
  littleEndian: boolean;
  explicitVR: boolean;
  /** The transfer syntax keeps pixel data encapsulated (anything but the native ones). */
  encapsulated?: boolean;
  uid?: string;
  /** Values left in the source (`skipped`) become source ranges instead of an error. */
  ranges?: boolean;
}

const PAD_ZERO = Uint8Array.of(0);

// Byte by byte rather than through a DataView: a header is written per element, and creating a
// DataView for each was a tenth of the time anonymize spends encoding.
function put16(out: Uint8Array, at: number, v: number, le: boolean): void {
  if (le) { out[at] = v & 0xff; out[at + 1] = (v >>> 8) & 0xff; }
  else { out[at] = (v >>> 8) & 0xff; out[at + 1] = v & 0xff; }
}

function put32(out: Uint8Array, at: number, v: number, le: boolean): void {
  if (le) { out[at] = v & 0xff; out[at + 1] = (v >>> 8) & 0xff; out[at + 2] = (v >>> 16) & 0xff; out[at + 3] = (v >>> 24) & 0xff; }
  else { out[at] = (v >>> 24) & 0xff; out[at + 1] = (v >>> 16) & 0xff; out[at + 2] = (v >>> 8) & 0xff; out[at + 3] = v & 0xff; }
}

function header(tag: number, vr: string, length: number, t: Target): Uint8Array {
  const long = !t.explicitVR || LONG_LENGTH_VRS.has(vr);
  const out = new Uint8Array(t.explicitVR && long ? 12 : 8);
  put16(out, 0, tag >>> 16, t.littleEndian);
  put16(out, 2, tag & 0xffff, t.littleEndian);
  if (!t.explicitVR) {
    put32(out, 4, length, t.littleEndian);
  } else {
    out[4] = vr.charCodeAt(0);
    out[5] = vr.charCodeAt(1);
    if (long) put32(out, 8, length, t.littleEndian);
    else put16(out, 6, length, t.littleEndian);
  }
  return out;
}

function itemHeader(tag: number, length: number, le: boolean): Uint8Array {
  const out = new Uint8Array(8);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, 0xfffe, le);
  dv.setUint16(2, tag & 0xffff, le);
  dv.setUint32(4, length, le);
  return out;
}

/** Converts a value's bytes between byte orders, by the VR's value width. */
function swapped(value: Uint8Array, vr: string): Uint8Array {
  const w = BINARY_WIDTH[vr];
  if (!w || w === 1) return value;
  const out = new Uint8Array(value.length);
  const n = value.length - (value.length % w);
  for (let i = 0; i < n; i += w) for (let k = 0; k < w; k++) out[i + k] = value[i + w - 1 - k];
  out.set(value.subarray(n), n);
  return out;
}

function encodeElements(ds: DataSet, t: Target, out: Chunks): void {
  for (const el of ds.sorted()) encodeElement(el, ds, t, out);
}

function encodeElement(el: DicomElement, ds: DataSet, t: Target, out: Chunks): void {
  if (el.skipped) {
    encodeSkipped(el, ds, t, out);
    return;
  }
  let vr = el.vr;
  // A known sequence stored as UN whose items were read is written as SQ from its items (so
  // changes made to them, e.g. by de-identification, are what is written), as DCMTK's +uc does.
  if (el.items) {
    const body = new Chunks();
    for (const item of el.items) {
      const itemBody = new Chunks();
      encodeElements(item, t, itemBody);
      if (el.undefinedLength) {
        body.push(itemHeader(ITEM, 0xffffffff, t.littleEndian));
        for (const p of itemBody.parts) body.push(p);
        body.push(itemHeader(ITEM_DELIMITATION, 0, t.littleEndian));
      } else {
        body.push(itemHeader(ITEM, itemBody.length, t.littleEndian));
        for (const p of itemBody.parts) body.push(p);
      }
    }
    if (el.undefinedLength) {
      out.push(header(el.tag, "SQ", 0xffffffff, t));
      for (const p of body.parts) out.push(p);
      out.push(itemHeader(SEQUENCE_DELIMITATION, 0, t.littleEndian));
    } else {
      out.push(header(el.tag, "SQ", body.length, t));
      for (const p of body.parts) out.push(p);
    }
    return;
  }
  if (el.fragments) {
    if (t.encapsulated === false) {
      throw new Error(`Cannot write encapsulated ${formatTag(el.tag)} in transfer syntax ${t.uid}: decompressing pixel data is not supported`);
    }
    // Encapsulated pixel data is OB (PS3.5 A.4), also when the source said OW.
    out.push(header(el.tag, "OB", 0xffffffff, t));
    for (const f of el.fragments) {
      out.push(itemHeader(ITEM, f.length + (f.length & 1), t.littleEndian));
      out.push(padValue(f, "OB"));
    }
    out.push(itemHeader(SEQUENCE_DELIMITATION, 0, t.littleEndian));
    return;
  }
  let value = el.value ?? new Uint8Array(0);
  if (ds.littleEndian !== t.littleEndian) value = swapped(value, vr);
  value = padValue(value, vr);
  if (t.explicitVR && !LONG_LENGTH_VRS.has(vr) && value.length > 0xffff) vr = "UN"; // too long for a 16-bit length
  out.push(header(el.tag, vr, value.length, t));
  out.push(value);
}

/** A value left in the source: its header, then the range to copy (and a pad byte for an odd length). */
function encodeSkipped(el: DicomElement, ds: DataSet, t: Target, out: Chunks): void {
  if (!t.ranges) throw new Error(`Cannot write ${formatTag(el.tag)}: its value was not read (read the file in full to write it)`);
  const width = BINARY_WIDTH[el.vr] ?? 1;
  if (ds.littleEndian !== t.littleEndian && width > 1) {
    throw new Error(`Cannot write ${formatTag(el.tag)}: a value left in the file cannot change byte order`);
  }
  if (el.fragmentRanges) {
    if (t.encapsulated === false) {
      throw new Error(`Cannot write encapsulated ${formatTag(el.tag)} in transfer syntax ${t.uid}: decompressing pixel data is not supported`);
    }
    out.push(header(el.tag, "OB", 0xffffffff, t));
    for (const f of el.fragmentRanges) {
      out.push(itemHeader(ITEM, f.length + (f.length & 1), t.littleEndian));
      out.push({ offset: f.offset, length: f.length });
      if (f.length & 1) out.push(PAD_ZERO);
    }
    out.push(itemHeader(SEQUENCE_DELIMITATION, 0, t.littleEndian));
    return;
  }
  let vr = el.vr;
  const padded = el.length + (el.length & 1);
  if (t.explicitVR && !LONG_LENGTH_VRS.has(vr) && padded > 0xffff) vr = "UN";
  out.push(header(el.tag, vr, padded, t));
  out.push({ offset: el.offset, length: el.length });
  if (el.length & 1) out.push(PAD_ZERO); // OB, OW, UN and the other bulk VRs pad with NUL
}

/**
 * Encodes a data set (no meta information) whose large values were left in the source file (a
 * deferred read): the result is bytes interleaved with ranges of the source, to be written in
 * order with the ranges copied from the file. Not for deflated transfer syntaxes.
 */
export function encodeDataSetParts(ds: DataSet, transferSyntaxUid: string): EncodedPart[] {
  const enc = transferSyntaxEncoding(transferSyntaxUid);
  if (enc.deflated) throw new Error("Cannot write a deflated data set in parts");
  const native = NATIVE_TRANSFER_SYNTAXES.includes(transferSyntaxUid);
  const out = new Chunks();
  encodeElements(ds, { ...enc, encapsulated: !native, uid: transferSyntaxUid, ranges: true }, out);
  // Merge runs of small byte parts, so a writer issues few system calls.
  const merged: EncodedPart[] = [];
  let run: Uint8Array[] = [];
  let runLength = 0;
  const flush = () => {
    if (run.length === 1) merged.push(run[0]);
    else if (run.length > 1) merged.push(concatBytes(run, runLength));
    run = [];
    runLength = 0;
  };
  for (const p of out.parts) {
    if (p instanceof Uint8Array && p.length < 65536) {
      run.push(p);
      runLength += p.length;
    } else {
      flush();
      merged.push(p);
    }
  }
  flush();
  return merged;
}

/**
 * Encodes a data set (no preamble, no meta information) in the given transfer syntax; every
 * value keeps its bytes (byte-swapped for big endian).
 *
 * @example
 * ```ts
 * const bytes = encodeDataSet(readDicomFile("a.dcm", { full: true }).dataset, IMPLICIT_VR_LITTLE_ENDIAN);
 * ```
 */
export function encodeDataSet(ds: DataSet, transferSyntaxUid: string = EXPLICIT_VR_LITTLE_ENDIAN): Uint8Array {
  const enc = transferSyntaxEncoding(transferSyntaxUid);
  const native = NATIVE_TRANSFER_SYNTAXES.includes(transferSyntaxUid) || enc.deflated;
  const out = new Chunks();
  encodeElements(ds, { ...enc, encapsulated: !native, uid: transferSyntaxUid }, out);
  const bytes = out.concat();
  return enc.deflated ? evenLength(new Uint8Array(deflateRawSync(bytes))) : bytes;
}

/**
 * A deflated data set padded with a NUL to an even length (PS3.5 A.5): network peers refuse odd
 * fragments (DCMTK: "Odd Fragment Length"), and inflating stops at the end of the stream.
 */
export function evenLength(bytes: Uint8Array): Uint8Array {
  if (bytes.length % 2 === 0) return bytes;
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

function uiValue(text: string): Uint8Array {
  const b = new TextEncoder().encode(text);
  return padValue(b, "UI");
}

/**
 * Builds file meta information (group 0002) for a SOP instance: version, SOP class and instance,
 * transfer syntax, rtexport's implementation class and version, and the source AE title when given.
 *
 * @example
 * ```ts
 * const meta = buildMeta(RT_SOP_CLASSES.RTPlan, "2.25.1234", EXPLICIT_VR_LITTLE_ENDIAN);
 * ```
 */
export function buildMeta(sopClassUid: string, sopInstanceUid: string, transferSyntaxUid: string, sourceAet?: string): DataSet {
  const meta = new DataSet({ littleEndian: true, explicitVR: true });
  const put = (tag: number, vr: string, value: Uint8Array) => meta.set({ tag, vr, value, offset: 0, length: value.length });
  put(0x00020001, "OB", Uint8Array.of(0, 1));
  put(0x00020002, "UI", uiValue(sopClassUid));
  put(0x00020003, "UI", uiValue(sopInstanceUid));
  put(0x00020010, "UI", uiValue(transferSyntaxUid));
  put(0x00020012, "UI", uiValue(IMPLEMENTATION_CLASS_UID));
  put(0x00020013, "SH", padValue(new TextEncoder().encode(IMPLEMENTATION_VERSION_NAME), "SH"));
  if (sourceAet) put(0x00020016, "AE", padValue(new TextEncoder().encode(sourceAet), "AE"));
  return meta;
}

/**
 * Encodes file meta information (explicit VR little endian), with its group length computed.
 *
 * @example
 * ```ts
 * const bytes = encodeMeta(buildMeta(RT_SOP_CLASSES.RTDose, "2.25.99", EXPLICIT_VR_LITTLE_ENDIAN));
 * ```
 */
export function encodeMeta(meta: DataSet): Uint8Array {
  const t = { littleEndian: true, explicitVR: true };
  const body = new Chunks();
  for (const el of meta.sorted()) if (el.tag !== 0x00020000) encodeElement(el, meta, t, body);
  const gl = new Uint8Array(12);
  const dv = new DataView(gl.buffer);
  dv.setUint16(0, 0x0002, true);
  dv.setUint16(2, 0x0000, true);
  gl[4] = 0x55; gl[5] = 0x4c; // UL
  dv.setUint16(6, 4, true);
  dv.setUint32(8, body.length, true);
  const out = new Chunks();
  out.push(gl);
  for (const p of body.parts) out.push(p);
  return out.concat();
}

/**
 * Encodes a Part 10 file: preamble, `DICM`, meta information, data set. The meta header's
 * Transfer Syntax UID is set to the one written; SOP class/instance come from the data set
 * when the meta has none.
 *
 * @example
 * ```ts
 * import { writeFileSync } from "node:fs";
 * const file = readDicomFile("in.dcm", { full: true });
 * writeFileSync("out.dcm", encodeFile(file.dataset, { meta: file.meta }));
 * ```
 */
export function encodeFile(dataset: DataSet, opts: { meta?: DataSet; transferSyntaxUid?: string } = {}): Uint8Array {
  const ts = opts.transferSyntaxUid ?? opts.meta?.string(0x00020010) ?? EXPLICIT_VR_LITTLE_ENDIAN;
  const meta = opts.meta ?? buildMeta(dataset.string(0x00080016) ?? "", dataset.string(0x00080018) ?? "", ts);
  const tsValue = uiValue(ts);
  meta.set({ tag: 0x00020010, vr: "UI", value: tsValue, offset: 0, length: tsValue.length });
  const metaBytes = encodeMeta(meta);
  const body = encodeDataSet(dataset, ts);
  const out = new Uint8Array(132 + metaBytes.length + body.length);
  out.set([0x44, 0x49, 0x43, 0x4d], 128);
  out.set(metaBytes, 132);
  out.set(body, 132 + metaBytes.length);
  return out;
}
