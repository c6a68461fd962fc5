/** The Image Pixel module attributes a decoder needs, read once and checked. */
import type { DataSet } from "../dicom/dataset.ts";

/** What the data set says its pixels are. */
export interface PixelDescription {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation: 0 | 1;
  /** 0 (color-by-pixel) or 1 (color-by-plane); 0 when absent. */
  planarConfiguration: 0 | 1;
  photometricInterpretation: string;
  numberOfFrames: number;
  /** Bytes of one decoded frame in native encoding (bits allocated × samples × pixels / 8, rounded up). */
  frameBytes: number;
}

/** A codec failure: the message says what is wrong with which frame; callers add the file.
 *
 * @example
 * ```ts
 * try { await decodeDataSet(ds, ts); } catch (e) { if (e instanceof CodecError) console.error(e.message); }
 * ```
 */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}

/**
 * A decoded object must fit one value of 32-bit length (PS3.5 7.1: 2^32 − 2 bytes) and one
 * Uint8Array; a hostile header claiming more is refused before anything is allocated.
 */
export const MAX_DECODED_BYTES = 0xfffffffe;

/** Reads and checks the pixel description of `ds` (a data set or an icon item). */
export function describePixels(ds: DataSet): PixelDescription {
  const need = (keyword: string, tag: number): number => {
    const v = ds.number(tag);
    if (v === undefined || !Number.isInteger(v)) throw new CodecError(`${keyword} is missing or not a number`);
    return v;
  };
  const rows = need("Rows (0028,0010)", 0x00280010);
  const columns = need("Columns (0028,0011)", 0x00280011);
  const samplesPerPixel = ds.number(0x00280002) ?? 1;
  const bitsAllocated = need("Bits Allocated (0028,0100)", 0x00280100);
  const bitsStored = ds.number(0x00280101) ?? bitsAllocated;
  const pr = ds.number(0x00280103) ?? 0;
  const pc = ds.number(0x00280006) ?? 0;
  const framesText = ds.string(0x00280008);
  const numberOfFrames = framesText === undefined ? 1 : Number(framesText);
  const photometricInterpretation = ds.string(0x00280004) ?? "";
  if (rows < 1 || columns < 1 || rows > 0xffff || columns > 0xffff) throw new CodecError(`image size ${rows} × ${columns} is not valid`);
  if (![1, 3, 4].includes(samplesPerPixel)) throw new CodecError(`Samples per Pixel ${samplesPerPixel} is not supported (1, 3 or 4)`);
  if (![1, 8, 16, 32, 64].includes(bitsAllocated)) throw new CodecError(`Bits Allocated ${bitsAllocated} is not supported`);
  if (!Number.isInteger(bitsStored) || bitsStored < 1 || bitsStored > bitsAllocated) {
    throw new CodecError(`Bits Stored ${bitsStored} does not fit Bits Allocated ${bitsAllocated}`);
  }
  if (pr !== 0 && pr !== 1) throw new CodecError(`Pixel Representation ${pr} is not 0 or 1`);
  if (pc !== 0 && pc !== 1) throw new CodecError(`Planar Configuration ${pc} is not 0 or 1`);
  if (!Number.isInteger(numberOfFrames) || numberOfFrames < 1) throw new CodecError(`Number of Frames "${framesText}" is not a positive integer`);
  const frameBytes = Math.ceil((rows * columns * samplesPerPixel * bitsAllocated) / 8);
  if (frameBytes * numberOfFrames > MAX_DECODED_BYTES) {
    throw new CodecError(`${numberOfFrames} frames of ${rows} × ${columns} × ${samplesPerPixel} at ${bitsAllocated} bits decode to more than 4 GiB`);
  }
  return {
    rows, columns, samplesPerPixel, bitsAllocated, bitsStored, pixelRepresentation: pr as 0 | 1,
    planarConfiguration: pc as 0 | 1, photometricInterpretation, numberOfFrames, frameBytes,
  };
}
