/**
 * DICOM RLE Lossless (PS3.5 Annex G), both ways, in TypeScript: a frame is a 64-byte header
 * (the number of segments, then up to 15 segment offsets) and one PackBits segment per byte
 * plane, most significant byte of each sample first, samples one after the other.
 */
import { CodecError, type PixelDescription } from "./pixel.ts";

const HEADER_BYTES = 64;
const MAX_SEGMENTS = 15;

/** Decodes one PackBits segment into `out` at `start`, every `stride`-th byte, `count` bytes; returns how many it wrote. */
function unpackSegment(src: Uint8Array, begin: number, end: number, out: Uint8Array, start: number, stride: number, count: number): number {
  let i = begin;
  let n = 0;
  let o = start;
  while (i < end && n < count) {
    const h = src[i++];
    if (h < 128) {
      // h + 1 literal bytes
      let len = h + 1;
      if (i + len > end) len = end - i;
      if (n + len > count) len = count - n;
      for (let k = 0; k < len; k++, o += stride) out[o] = src[i + k];
      i += h + 1;
      n += len;
    } else if (h > 128) {
      // the next byte 257 − h times
      if (i >= end) break;
      const b = src[i++];
      let len = 257 - h;
      if (n + len > count) len = count - n;
      for (let k = 0; k < len; k++, o += stride) out[o] = b;
      n += len;
    }
    // h === 128: no operation
  }
  return n;
}

/**
 * Decodes one RLE frame into native little-endian pixels, color-by-pixel (Planar Configuration
 * 0, as GDCM's and DCMTK's decoders give them). Throws a CodecError when the frame's segments do
 * not match the pixel description or end early.
 */
export function decodeRleFrame(frame: Uint8Array, px: PixelDescription): Uint8Array {
  if (frame.length < HEADER_BYTES) throw new CodecError(`RLE frame of ${frame.length} bytes is shorter than its 64-byte header`);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = dv.getUint32(0, true);
  const bytesPerSample = px.bitsAllocated / 8;
  if (!Number.isInteger(bytesPerSample)) throw new CodecError(`RLE with Bits Allocated ${px.bitsAllocated} is not supported`);
  const expected = px.samplesPerPixel * bytesPerSample;
  if (segments !== expected) {
    throw new CodecError(`RLE frame has ${segments} segments where ${px.samplesPerPixel} samples of ${px.bitsAllocated} bits need ${expected}`);
  }
  if (segments > MAX_SEGMENTS) throw new CodecError(`RLE frame has ${segments} segments (at most 15)`);
  const offsets: number[] = [];
  for (let s = 0; s < segments; s++) offsets.push(dv.getUint32(4 + 4 * s, true));
  const pixels = px.rows * px.columns;
  const out = new Uint8Array(px.frameBytes);
  const stride = px.samplesPerPixel * bytesPerSample;
  for (let s = 0; s < segments; s++) {
    const begin = offsets[s];
    const end = s + 1 < segments ? offsets[s + 1] : frame.length;
    if (begin < HEADER_BYTES || begin > frame.length || end < begin || end > frame.length) {
      throw new CodecError(`RLE segment ${s + 1} has offset ${begin}, outside the frame of ${frame.length} bytes`);
    }
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample); // segments run from the most significant byte
    const got = unpackSegment(frame, begin, end, out, sample * bytesPerSample + byteInSample, stride, pixels);
    if (got < pixels) throw new CodecError(`RLE segment ${s + 1} decodes to ${got} bytes, not ${pixels}`);
  }
  return out;
}

/** PackBits-encodes `count` bytes of `src` from `start`, every `stride`-th byte (PS3.5 G.3.1). */
function packSegment(src: Uint8Array, start: number, stride: number, count: number, rowLength: number, out: number[]): void {
  // Runs never cross a row (G.3.1: each row is encoded separately).
  for (let rowStart = 0; rowStart < count; rowStart += rowLength) {
    const rowEnd = Math.min(count, rowStart + rowLength);
    let i = rowStart;
    const at = (k: number) => src[start + k * stride];
    while (i < rowEnd) {
      let run = 1;
      while (i + run < rowEnd && run < 128 && at(i + run) === at(i)) run++;
      if (run >= 2) {
        out.push(257 - run, at(i));
        i += run;
        continue;
      }
      const litStart = i;
      let len = 0;
      while (i < rowEnd && len < 128) {
        if (i + 1 < rowEnd && at(i + 1) === at(i) && i + 2 < rowEnd && at(i + 2) === at(i)) break;
        i++;
        len++;
      }
      out.push(len - 1);
      for (let k = 0; k < len; k++) out.push(at(litStart + k));
    }
  }
}

/**
 * Encodes one native little-endian frame (color-by-pixel when `planarConfiguration` is 0,
 * color-by-plane when 1) as an RLE frame. The encoded object carries Planar Configuration 1
 * (PS3.5 G.2, note): the caller sets it.
 */
export function encodeRleFrame(frame: Uint8Array, px: PixelDescription): Uint8Array {
  const bytesPerSample = px.bitsAllocated / 8;
  if (!Number.isInteger(bytesPerSample) || px.samplesPerPixel * bytesPerSample > MAX_SEGMENTS) {
    throw new CodecError(`RLE cannot encode ${px.samplesPerPixel} samples of ${px.bitsAllocated} bits`);
  }
  const pixels = px.rows * px.columns;
  if (frame.length < px.frameBytes) throw new CodecError(`frame of ${frame.length} bytes is shorter than ${px.frameBytes}`);
  const segments: number[][] = [];
  for (let sample = 0; sample < px.samplesPerPixel; sample++) {
    for (let b = bytesPerSample - 1; b >= 0; b--) {
      const seg: number[] = [];
      const start = px.planarConfiguration === 1
        ? sample * pixels * bytesPerSample + b
        : sample * bytesPerSample + b;
      const stride = px.planarConfiguration === 1 ? bytesPerSample : px.samplesPerPixel * bytesPerSample;
      packSegment(frame, start, stride, pixels, px.columns, seg);
      if (seg.length & 1) seg.push(0); // segments are even-length (G.5)
      segments.push(seg);
    }
  }
  const total = HEADER_BYTES + segments.reduce((n, s) => n + s.length, 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, segments.length, true);
  let at = HEADER_BYTES;
  segments.forEach((s, i) => {
    dv.setUint32(4 + 4 * i, at, true);
    out.set(s, at);
    at += s.length;
  });
  return out;
}
