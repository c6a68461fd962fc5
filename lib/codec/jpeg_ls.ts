/** JPEG-LS lossless decoding with CharLS (the @cornerstonejs/codec-charls WebAssembly build). */
import { errorLines, factoryOf, instantiate, type QuietModule } from "./_emscripten.ts";
import { nativeFrame } from "./_samples.ts";
import { CodecError, type PixelDescription } from "./pixel.ts";

interface CharlsDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  getInterleaveMode(): number;
  getNearLossless(): number;
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
interface CharlsModule {
  JpegLSDecoder: new () => CharlsDecoder;
}

let loading: Promise<QuietModule<CharlsModule>> | undefined;

function load(): Promise<QuietModule<CharlsModule>> {
  loading ??= import("@cornerstonejs/codec-charls/decodewasmjs").then((m) => instantiate<CharlsModule>("charls", factoryOf(m)));
  // A failed load is not cached: the next object tries again and reports its own error.
  loading.catch(() => (loading = undefined));
  return loading;
}

/** Decodes JPEG-LS frames; resolves once CharLS is loaded. */
export async function jpegLsDecoder(): Promise<(frame: Uint8Array, px: PixelDescription) => Uint8Array> {
  const charls = await load();
  return (frame, px) => {
    const decoder = new charls.module.JpegLSDecoder();
    try {
      decoder.getEncodedBuffer(frame.length).set(frame);
      try {
        decoder.decode();
      } catch (e) {
        // CharLS throws C++ exceptions, which arrive as numbers without their text.
        const detail = errorLines(charls.take())[0] ?? (e instanceof Error ? e.message : "the codestream is damaged or truncated");
        throw new CodecError(`JPEG-LS codestream cannot be decoded: ${detail}`);
      }
      charls.take();
      const info = decoder.getFrameInfo();
      const near = decoder.getNearLossless();
      if (near !== 0) throw new CodecError(`JPEG-LS codestream is near-lossless (NEAR=${near}) in a lossless transfer syntax`);
      if (info.width !== px.columns || info.height !== px.rows || info.componentCount !== px.samplesPerPixel) {
        throw new CodecError(
          `JPEG-LS codestream is ${info.height} × ${info.width} × ${info.componentCount}, the data set says ${px.rows} × ${px.columns} × ${px.samplesPerPixel}`,
        );
      }
      if (info.bitsPerSample > px.bitsAllocated) {
        throw new CodecError(`JPEG-LS codestream has ${info.bitsPerSample}-bit samples where Bits Allocated is ${px.bitsAllocated}`);
      }
      // Interleave mode 0 (none) keeps each component's samples together.
      const planar = decoder.getInterleaveMode() === 0 && info.componentCount > 1;
      return nativeFrame(decoder.getDecodedBuffer(), info.bitsPerSample <= 8 ? 1 : 2, px, planar, "JPEG-LS codestream");
    } finally {
      decoder.delete();
    }
  };
}
