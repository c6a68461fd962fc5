/**
 * Decoding encapsulated pixel data to native and transcoding whole objects between transfer
 * syntaxes. Everything but the pixel data and the attributes that describe its encoding stays as
 * it was, byte for byte. The codecs load on first use: nothing here costs start-up time until an
 * object needs decoding.
 */
import { DataSet, type DicomElement, textElement } from "../dicom/dataset.ts";
import { type DicomFile, parseDataSet } from "../dicom/reader.ts";
import { formatTag, PIXEL_DATA } from "../dicom/tag.ts";
import { EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN } from "../dicom/uids.ts";
import { buildMeta, encodeDataSet, encodeFile, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from "../dicom/writer.ts";
import { readOffsets64, splitFrames } from "./frames.ts";
import { CodecError, describePixels, type PixelDescription } from "./pixel.ts";
import { decodeRleFrame, encodeRleFrame } from "./rle.ts";
import { type CodecName, isNativeSyntax, RLE_LOSSLESS, syntaxInfo } from "./syntaxes.ts";

/** Decodes one frame into native little-endian bytes, color-by-pixel. */
export type FrameDecoder = (frame: Uint8Array, px: PixelDescription) => Uint8Array;

const EXTENDED_OFFSET_TABLE = 0x7fe00001;
const EXTENDED_OFFSET_TABLE_LENGTHS = 0x7fe00002;
const PHOTOMETRIC_INTERPRETATION = 0x00280004;
const PLANAR_CONFIGURATION = 0x00280006;

/** Loads (once) and returns the decoder of a codec. */
export async function loadDecoder(codec: CodecName): Promise<FrameDecoder> {
  switch (codec) {
    case "rle":
      return decodeRleFrame;
    case "uncompressed":
      return (frame, px) => {
        if (frame.length < px.frameBytes) throw new CodecError(`frame of ${frame.length} bytes is shorter than ${px.frameBytes}`);
        return frame.subarray(0, px.frameBytes);
      };
    case "jpeg-ls":
      return await (await import("./jpeg_ls.ts")).jpegLsDecoder();
    case "jpeg-2000":
      return await (await import("./jpeg_2000.ts")).jpeg2000Decoder();
    case "jpeg-lossless":
      return (await import("./jpeg_lossless.ts")).jpegLosslessFrame;
  }
}

/**
 * Why `from` cannot be turned into `to` without loss by this layer, or undefined when it can.
 * Lossy sources are refused whatever the target: their decoded pixels would pass for originals.
 *
 * @example
 * ```ts
 * transcodeRefusal("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"); // "JPEG Baseline (Process 1) (…) is lossy: …"
 * ```
 */
export function transcodeRefusal(from: string, to: string): string | undefined {
  if (from === to) return undefined;
  const source = syntaxInfo(from);
  const target = syntaxInfo(to);
  if (target.encoding !== "native" && to !== RLE_LOSSLESS) {
    return `encoding to ${target.name} (${to}) is not supported (targets: native syntaxes and RLE Lossless)`;
  }
  if (source.encoding === "lossy") {
    return `${source.name} (${from}) is lossy: its pixels are never decoded to be stored elsewhere`;
  }
  if (source.encoding === "unsupported") return `no decoder for ${source.name} (${from})`;
  return undefined;
}

/** The encapsulated pixel data elements of `ds` and its items (icon images), depth first. */
function* encapsulated(ds: DataSet): Generator<{ owner: DataSet; el: DicomElement }> {
  for (const el of ds.elements.values()) {
    if (el.fragments) yield { owner: ds, el };
    if (el.items) for (const item of el.items) yield* encapsulated(item);
  }
}

/** A copy of `ds` whose elements and items can be replaced without touching `ds` (values are shared). */
function copyDataSet(ds: DataSet): DataSet {
  const out = new DataSet({ littleEndian: ds.littleEndian, explicitVR: ds.explicitVR }, ds.charset);
  for (const [tag, el] of ds.elements) {
    out.elements.set(tag, el.items ? { ...el, items: el.items.map(copyDataSet) } : { ...el });
  }
  return out;
}

function usValue(n: number, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(2);
  new DataView(out.buffer).setUint16(0, n, littleEndian);
  return out;
}

/** Sets the attributes that describe the decoded encoding: Photometric Interpretation and Planar Configuration. */
function describeNative(ds: DataSet, px: PixelDescription, codec: CodecName): void {
  // JPEG 2000's reversible color transform is undone by the decoder (PS3.5 8.2.4): the pixels are RGB.
  if (codec === "jpeg-2000" && px.photometricInterpretation === "YBR_RCT") {
    ds.set(textElement(PHOTOMETRIC_INTERPRETATION, "CS", "RGB"));
  }
  // Every decoder here gives color-by-pixel samples (RLE's color-by-plane segments included).
  if (px.samplesPerPixel > 1 && px.planarConfiguration !== 0) {
    const value = usValue(0, ds.littleEndian);
    ds.set({ tag: PLANAR_CONFIGURATION, vr: "US", value, offset: 0, length: 2 });
  }
}

/** Decodes every frame of one encapsulated element and returns the native value. */
async function decodeElement(owner: DataSet, el: DicomElement, codec: CodecName, decoders: Map<CodecName, FrameDecoder>): Promise<{ px: PixelDescription; value: Uint8Array }> {
  const px = describePixels(owner);
  const extended = owner.get(EXTENDED_OFFSET_TABLE)?.value;
  const offsets = readOffsets64(extended, owner.littleEndian);
  const lengths = readOffsets64(owner.get(EXTENDED_OFFSET_TABLE_LENGTHS)?.value, owner.littleEndian);
  const frames = splitFrames(el.fragments!, px.numberOfFrames, codec, offsets ? { offsets, lengths } : undefined);
  let decode = decoders.get(codec);
  if (!decode) {
    decode = await loadDecoder(codec);
    decoders.set(codec, decode);
  }
  const total = px.frameBytes * px.numberOfFrames;
  const out = new Uint8Array(total + (total & 1));
  for (let k = 0; k < frames.length; k++) {
    let native: Uint8Array;
    try {
      checkComplete(frames[k], codec);
      native = decode(frames[k], px);
    } catch (e) {
      const detail = e instanceof CodecError ? e.message : `${e instanceof Error ? e.message : String(e)}`;
      throw new CodecError(px.numberOfFrames > 1 ? `frame ${k + 1} of ${px.numberOfFrames}: ${detail}` : detail);
    }
    if (native.length !== px.frameBytes) {
      throw new CodecError(`frame ${k + 1} decodes to ${native.length} bytes, not ${px.frameBytes}`);
    }
    out.set(native, k * px.frameBytes);
  }
  if (px.pixelRepresentation === 1 && px.bitsStored < px.bitsAllocated && (owner.number(0x00280102) ?? px.bitsStored - 1) === px.bitsStored - 1) {
    signExtend(out, px);
  }
  return { px, value: out };
}

/**
 * A JPEG-LS or JPEG 2000 codestream must end with its EOI/EOC marker (FFD9), after the padding
 * DICOM allows (a trailing 00, or FF fill bytes before the marker). Checked before decoding
 * because CharLS, given a truncated codestream, can take a minute to fail (measured: 63 s for a
 * 296-byte CT slice cut at 223 bytes); JPEG Lossless and RLE find truncation themselves.
 */
function checkComplete(frame: Uint8Array, codec: CodecName): void {
  if (codec !== "jpeg-ls" && codec !== "jpeg-2000") return;
  let end = frame.length;
  while (end > 0 && frame[end - 1] === 0x00) end--;
  if (end < 2 || frame[end - 2] !== 0xff || frame[end - 1] !== 0xd9) {
    throw new CodecError(`${codec === "jpeg-ls" ? "JPEG-LS" : "JPEG 2000"} codestream is truncated: it does not end with its end-of-image marker (FFD9)`);
  }
}

/**
 * Sets the unused high bits of signed samples to their sign, as GDCM's decoders do. PS3.5 8.1.1
 * lets receivers assume nothing of those bits, but not all do, and codecs disagree about them
 * (JPEG Lossless and JPEG-LS carry only Bits Stored bits, RLE carries whatever the bytes were).
 */
function signExtend(out: Uint8Array, px: PixelDescription): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const shift = 32 - px.bitsStored;
  const n = Math.floor((px.frameBytes * px.numberOfFrames) / (px.bitsAllocated / 8));
  if (px.bitsAllocated === 16) {
    for (let i = 0; i < n; i++) dv.setInt16(2 * i, (dv.getUint16(2 * i, true) << shift) >> shift, true);
  } else if (px.bitsAllocated === 8) {
    for (let i = 0; i < n; i++) out[i] = ((out[i] << shift) >> shift) & 0xff;
  } else if (px.bitsAllocated === 32) {
    for (let i = 0; i < n; i++) dv.setInt32(4 * i, (dv.getUint32(4 * i, true) << shift) >> shift, true);
  }
}

/**
 * A copy of `ds` with its encapsulated pixel data (the image's and any icon's) decoded to native,
 * as the data set of transfer syntax `from` describes it. Lossy and unknown syntaxes are refused
 * with a CodecError that says why.
 *
 * @example
 * ```ts
 * const file = readDicomFile("ct.dcm", { full: true });
 * const native = await decodeDataSet(file.dataset, file.transferSyntaxUid);
 * writeFileSync("ct-raw.dcm", encodeFile(native, { transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN }));
 * ```
 */
export async function decodeDataSet(ds: DataSet, from: string): Promise<DataSet> {
  const info = syntaxInfo(from);
  const found = [...encapsulated(ds)];
  if (found.length === 0) return ds;
  if (info.encoding === "native") {
    throw new CodecError(`${formatTag(found[0].el.tag)} is encapsulated in ${info.name}, which has native pixel data`);
  }
  if (info.encoding !== "lossless") {
    throw new CodecError(transcodeRefusal(from, EXPLICIT_VR_LITTLE_ENDIAN) ?? `cannot decode ${info.name}`);
  }
  const out = copyDataSet(ds);
  const decoders = new Map<CodecName, FrameDecoder>();
  for (const { owner, el } of encapsulated(out)) {
    if (el.skipped) throw new CodecError(`${formatTag(el.tag)} was not read (read the file in full to decode it)`);
    const { px, value } = await decodeElement(owner, el, info.codec!, decoders);
    owner.set({ tag: el.tag, vr: px.bitsAllocated > 8 ? "OW" : "OB", value, offset: el.offset, length: value.length });
    if (el.tag === PIXEL_DATA) {
      owner.delete(EXTENDED_OFFSET_TABLE);
      owner.delete(EXTENDED_OFFSET_TABLE_LENGTHS);
    }
    describeNative(owner, px, info.codec!);
  }
  return out;
}

/** RLE-encodes the native pixel data of `ds` (from a data set in a native syntax) into a copy. */
function encodeRle(ds: DataSet): DataSet {
  const pixel = ds.get(PIXEL_DATA);
  if (!pixel) return ds;
  if (!pixel.value) throw new CodecError(`${formatTag(PIXEL_DATA)} was not read (read the file in full to encode it)`);
  const px = describePixels(ds);
  if (px.bitsAllocated % 8 !== 0 || px.samplesPerPixel * (px.bitsAllocated / 8) > 15) {
    throw new CodecError(`RLE cannot hold ${px.samplesPerPixel} samples of ${px.bitsAllocated} bits`);
  }
  const value = pixel.value;
  if (!ds.littleEndian) throw new CodecError("RLE encoding needs a little-endian data set");
  if (value.length < px.frameBytes * px.numberOfFrames) {
    throw new CodecError(`Pixel Data has ${value.length} bytes, ${px.numberOfFrames} frames of ${px.frameBytes} need ${px.frameBytes * px.numberOfFrames}`);
  }
  const out = copyDataSet(ds);
  const fragments: Uint8Array[] = [new Uint8Array(0)];
  for (let k = 0; k < px.numberOfFrames; k++) {
    fragments.push(encodeRleFrame(value.subarray(k * px.frameBytes, (k + 1) * px.frameBytes), px));
  }
  // A Basic Offset Table for multi-frame objects, so readers find frames without scanning.
  if (px.numberOfFrames > 1) {
    const bot = new Uint8Array(4 * px.numberOfFrames);
    const dv = new DataView(bot.buffer);
    let at = 0;
    for (let k = 0; k < px.numberOfFrames; k++) {
      dv.setUint32(4 * k, at, true);
      at += 8 + fragments[k + 1].length + (fragments[k + 1].length & 1);
    }
    fragments[0] = bot;
  }
  out.set({ tag: PIXEL_DATA, vr: "OB", fragments, undefinedLength: true, offset: pixel.offset, length: 0 });
  if (px.samplesPerPixel > 1) out.set({ tag: PLANAR_CONFIGURATION, vr: "US", value: usValue(1, true), offset: 0, length: 2 });
  return out;
}

/**
 * A copy of data set `ds` (transfer syntax `from`) ready to be written in `to` by
 * `encodeDataSet`/`encodeFile`: decoded when `from` is encapsulated, RLE-encoded when `to` is RLE.
 * Throws a CodecError with the reason when that cannot be done without loss.
 */
export async function transcodeDataSet(ds: DataSet, from: string, to: string): Promise<DataSet> {
  if (from === to) return ds;
  const refusal = transcodeRefusal(from, to);
  if (refusal) throw new CodecError(refusal);
  let native = isNativeSyntax(from) ? ds : await decodeDataSet(ds, from);
  if (to === RLE_LOSSLESS && !native.littleEndian) {
    // Byte-swap every value of a big-endian object through the writer and reader.
    native = parseDataSet(encodeDataSet(native, EXPLICIT_VR_LITTLE_ENDIAN), EXPLICIT_VR_LITTLE_ENDIAN);
  }
  if (to === EXPLICIT_VR_BIG_ENDIAN) {
    for (const { el, owner } of pixelElements(native)) {
      const bits = owner.number(0x00280100) ?? 0;
      if (bits > 16) {
        throw new CodecError(`${formatTag(el.tag)} with Bits Allocated ${bits} cannot be written in Explicit VR Big Endian (its OW words are 16 bits)`);
      }
    }
  }
  return to === RLE_LOSSLESS ? encodeRle(native) : native;
}

function* pixelElements(ds: DataSet): Generator<{ owner: DataSet; el: DicomElement }> {
  for (const el of ds.elements.values()) {
    if (el.tag === PIXEL_DATA && el.value) yield { owner: ds, el };
    if (el.items) for (const item of el.items) yield* pixelElements(item);
  }
}

/**
 * File meta information for the transcoded object: the source's, with this implementation as the
 * writer and the data set's SOP Class and Instance UIDs.
 */
function transcodedMeta(file: DicomFile, to: string): DataSet {
  const sop = file.dataset.string(0x00080016) ?? file.meta.string(0x00020002) ?? "";
  const inst = file.dataset.string(0x00080018) ?? file.meta.string(0x00020003) ?? "";
  if (file.meta.size === 0) return buildMeta(sop, inst, to);
  const meta = copyDataSet(file.meta);
  // The data set names the object: a meta header that disagrees is corrected in the copy.
  for (const [tag, value] of [[0x00020002, sop], [0x00020003, inst]] as const) {
    if (value) meta.set(textElement(tag, "UI", value));
  }
  meta.set(textElement(0x00020012, "UI", IMPLEMENTATION_CLASS_UID));
  meta.set(textElement(0x00020013, "SH", IMPLEMENTATION_VERSION_NAME));
  meta.delete(0x00020000); // group length: recomputed by the writer
  return meta;
}

/**
 * Transcodes a Part 10 file read in full (`readDicomFile(path, { full: true })`) to transfer
 * syntax `to` and returns the new file's bytes: meta header updated (Transfer Syntax UID,
 * Implementation Class UID and Version Name), pixel data decoded (or RLE-encoded), every other
 * element as it was. Throws a CodecError with the reason for lossy or undecodable objects.
 *
 * @example
 * ```ts
 * const file = readDicomFile("ct_jpegls.dcm", { full: true });
 * writeFileSync("ct.dcm", await transcodeFile(file, EXPLICIT_VR_LITTLE_ENDIAN));
 * ```
 */
export async function transcodeFile(file: DicomFile, to: string): Promise<Uint8Array> {
  if (!file.complete) throw new CodecError("the file was read header-only (read it in full to transcode it)");
  const ds = await transcodeDataSet(file.dataset, file.transferSyntaxUid, to);
  return encodeFile(ds, { meta: transcodedMeta(file, to), transferSyntaxUid: to });
}

/**
 * The object of `file` with its pixel data decoded, as a Part 10 file in native syntax `target`
 * (Explicit VR Little Endian by default): what push, C-GET and the receiver use when a peer takes
 * no syntax the object has. Objects already native are re-encoded in `target` only.
 *
 * @example
 * ```ts
 * const bytes = await decodeToNative(readDicomFile("ct_jpegls.dcm", { full: true }));
 * ```
 */
export async function decodeToNative(file: DicomFile, target: string = EXPLICIT_VR_LITTLE_ENDIAN): Promise<Uint8Array> {
  if (!isNativeSyntax(target)) throw new CodecError(`${syntaxInfo(target).name} (${target}) is not a native transfer syntax`);
  return await transcodeFile(file, target);
}

/**
 * A bare data set's bytes (as DIMSE carries them) in syntax `from`, transcoded to `to`: for the
 * network paths, which hold data sets without meta information.
 */
export async function transcodeDataSetBytes(ds: DataSet, from: string, to: string): Promise<Uint8Array> {
  return encodeDataSet(await transcodeDataSet(ds, from, to), to);
}
