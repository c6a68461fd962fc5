/** JPEG 2000 lossless decoding with OpenJPEG (the @cornerstonejs/codec-openjpeg WebAssembly build). */
import { errorLines, factoryOf, instantiate, type QuietModule } from "./_emscripten.ts";
import { nativeFrame } from "./_samples.ts";
import { CodecError, type PixelDescription } from "./pixel.ts";

interface J2kDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean };
  getIsReversible(): boolean;
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
interface OpenJpegModule {
  J2KDecoder: new () => J2kDecoder;
}

let loading: Promise<QuietModule<OpenJpegModule>> | undefined;

function load(): Promise<QuietModule<OpenJpegModule>> {
  loading ??= import("@cornerstonejs/codec-openjpeg/decodewasmjs").then((m) => instantiate<OpenJpegModule>("openjpeg", factoryOf(m)));
  loading.catch(() => (loading = undefined));
  return loading;
}

/** Decodes JPEG 2000 frames (reversible wavelet only); resolves once OpenJPEG is loaded. */
export async function jpeg2000Decoder(): Promise<(frame: Uint8Array, px: PixelDescription) => Uint8Array> {
  const openjpeg = await load();
  return (frame, px) => {
    const decoder = new openjpeg.module.J2KDecoder();
    try {
      decoder.getEncodedBuffer(frame.length).set(frame);
      openjpeg.take();
      try {
        decoder.decode();
      } catch (e) {
        const detail = errorLines(openjpeg.take())[0] ?? (e instanceof Error ? e.message : "the codestream is damaged or truncated");
        throw new CodecError(`JPEG 2000 codestream cannot be decoded: ${detail}`);
      }
      // OpenJPEG reports most failures by printing them and leaving an empty image.
      const errors = errorLines(openjpeg.take());
      const info = decoder.getFrameInfo();
      if (info.width === 0 || info.height === 0 || errors.length > 0) {
        throw new CodecError(`JPEG 2000 codestream cannot be decoded: ${errors[0] ?? "the codestream is damaged or truncated"}`);
      }
      if (!decoder.getIsReversible()) {
        throw new CodecError("JPEG 2000 codestream uses the irreversible (lossy) wavelet in a lossless transfer syntax");
      }
      if (info.width !== px.columns || info.height !== px.rows || info.componentCount !== px.samplesPerPixel) {
        throw new CodecError(
          `JPEG 2000 codestream is ${info.height} × ${info.width} × ${info.componentCount}, the data set says ${px.rows} × ${px.columns} × ${px.samplesPerPixel}`,
        );
      }
      if (info.bitsPerSample > px.bitsAllocated) {
        throw new CodecError(`JPEG 2000 codestream has ${info.bitsPerSample}-bit samples where Bits Allocated is ${px.bitsAllocated}`);
      }
      return nativeFrame(decoder.getDecodedBuffer(), info.bitsPerSample <= 8 ? 1 : 2, px, false, "JPEG 2000 codestream");
    } finally {
      decoder.delete();
    }
  };
}
