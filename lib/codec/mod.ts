/**
 * Compressed pixel data: lossless decoding (JPEG Lossless Process 14 and SV1, JPEG-LS lossless,
 * JPEG 2000 lossless, RLE), RLE encoding, frames from encapsulated pixel data, whole-object
 * transcoding and the transcode stage. Lossy syntaxes are refused with the reason. Codecs load
 * on first use.
 * @module
 */
export {
  decodeDataSet, decodeToNative, type FrameDecoder, loadDecoder, transcodeDataSet, transcodeDataSetBytes, transcodeFile,
  transcodeRefusal,
} from "./decode.ts";
export { type ExtendedOffsets, splitFrames } from "./frames.ts";
export { CodecError, describePixels, type PixelDescription } from "./pixel.ts";
export { decodeRleFrame, encodeRleFrame } from "./rle.ts";
export {
  type CodecName, DECODABLE_SYNTAXES, isNativeSyntax, type PixelEncoding, resolveSyntax, SYNTAX_ALIASES, syntaxInfo,
  type SyntaxInfo, syntaxName,
} from "./syntaxes.ts";
export { transcodeFiles, type TranscodeOptions, type TranscodeResult } from "./transcode.ts";
