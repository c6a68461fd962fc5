/** Turning a decoder's sample buffer into a native frame: widths, sample order, byte order. */
import { CodecError, type PixelDescription } from "./pixel.ts";

/**
 * Copies `samples` (little endian, `inWidth` bytes per sample, as decoders give them) into a new
 * native frame of `px.bitsAllocated / 8` bytes per sample, color-by-pixel. `planar` says the
 * decoder gave the components one after the other.
 */
export function nativeFrame(samples: Uint8Array, inWidth: 1 | 2, px: PixelDescription, planar = false, what = "frame"): Uint8Array {
  const outWidth = px.bitsAllocated / 8;
  const count = px.rows * px.columns * px.samplesPerPixel;
  if (samples.length < count * inWidth) {
    throw new CodecError(`${what} decodes to ${samples.length} bytes, not the ${count * inWidth} of ${px.rows} × ${px.columns} × ${px.samplesPerPixel} samples`);
  }
  if (outWidth !== 1 && outWidth !== 2) throw new CodecError(`${what}: Bits Allocated ${px.bitsAllocated} is not supported by this codec`);
  if (inWidth > outWidth) throw new CodecError(`${what} has ${inWidth * 8}-bit samples where Bits Allocated is ${px.bitsAllocated}`);
  const out = new Uint8Array(px.frameBytes + (px.frameBytes & 1));
  const pixels = px.rows * px.columns;
  const spp = px.samplesPerPixel;
  if (!planar || spp === 1) {
    if (inWidth === outWidth) {
      out.set(samples.subarray(0, count * inWidth));
    } else {
      for (let i = 0; i < count; i++) out[2 * i] = samples[i];
    }
    return out.subarray(0, px.frameBytes);
  }
  for (let s = 0; s < spp; s++) {
    for (let p = 0; p < pixels; p++) {
      const src = (s * pixels + p) * inWidth;
      const dst = (p * spp + s) * outWidth;
      out[dst] = samples[src];
      if (inWidth === 2) out[dst + 1] = samples[src + 1];
    }
  }
  return out.subarray(0, px.frameBytes);
}
