/**
 * What each transfer syntax means for pixel data: native (bytes as they are), encapsulated and
 * lossless (this toolkit decodes it), encapsulated and lossy (never decoded to be stored: the
 * decoded pixels would pass for originals), or encapsulated in a syntax no codec here reads.
 */
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
  TRANSFER_SYNTAX_NAMES,
} from "../dicom/uids.ts";

export const JPEG_BASELINE = "1.2.840.10008.1.2.4.50";
export const JPEG_EXTENDED = "1.2.840.10008.1.2.4.51";
export const JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57";
export const JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70";
export const JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80";
export const JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81";
export const JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90";
export const JPEG_2000 = "1.2.840.10008.1.2.4.91";
export const RLE_LOSSLESS = "1.2.840.10008.1.2.5";
export const ENCAPSULATED_UNCOMPRESSED = "1.2.840.10008.1.2.1.98";

/** The decoders of this layer. */
export type CodecName = "rle" | "jpeg-lossless" | "jpeg-ls" | "jpeg-2000" | "uncompressed";

/** How a transfer syntax stores pixel data. */
export type PixelEncoding =
  /** Native (not encapsulated): explicit/implicit little endian, big endian, deflated. */
  | "native"
  /** Encapsulated, lossless, and decoded here. */
  | "lossless"
  /** Encapsulated with a lossy (or possibly lossy) process: never decoded to be stored. */
  | "lossy"
  /** Encapsulated in a syntax no codec here reads (MPEG, HEVC, JPIP, JPEG 2000 Part 2, HTJ2K …). */
  | "unsupported";

/** A transfer syntax as the codec layer sees it. */
export interface SyntaxInfo {
  uid: string;
  name: string;
  encoding: PixelEncoding;
  /** The decoder for a lossless syntax. */
  codec?: CodecName;
}

const LOSSLESS: Readonly<Record<string, CodecName>> = {
  [JPEG_LOSSLESS]: "jpeg-lossless",
  [JPEG_LOSSLESS_SV1]: "jpeg-lossless",
  [JPEG_LS_LOSSLESS]: "jpeg-ls",
  [JPEG_2000_LOSSLESS]: "jpeg-2000",
  [RLE_LOSSLESS]: "rle",
  [ENCAPSULATED_UNCOMPRESSED]: "uncompressed",
};

const NATIVE = new Set([
  IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
]);

/**
 * Syntaxes whose process may discard information: JPEG baseline/extended/progressive and the
 * other retired lossy JPEG processes (the retired lossless hierarchical ones, .58, .65 and .66, are
 * merely unsupported), JPEG-LS
 * near-lossless, JPEG 2000 (which allows irreversible wavelets), JPEG 2000 Part 2 and HTJ2K
 * (general), JPIP, MPEG-2/4, HEVC, JPEG XL. Decoding these and storing the result would hand on
 * pixels that look original and are not.
 */
const LOSSY = new Set([
  JPEG_BASELINE, JPEG_EXTENDED, "1.2.840.10008.1.2.4.52", "1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.54",
  "1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.56", "1.2.840.10008.1.2.4.59", "1.2.840.10008.1.2.4.60",
  "1.2.840.10008.1.2.4.61", "1.2.840.10008.1.2.4.62", "1.2.840.10008.1.2.4.63", "1.2.840.10008.1.2.4.64",
  JPEG_LS_NEAR_LOSSLESS, JPEG_2000, "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203",
  "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.100.1", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.101.1",
  "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.102.1", "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.103.1",
  "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.104.1", "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.105.1",
  "1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.106.1", "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108",
  "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111",
]);

const EXTRA_NAMES: Readonly<Record<string, string>> = {
  [ENCAPSULATED_UNCOMPRESSED]: "Encapsulated Uncompressed Explicit VR Little Endian",
  "1.2.840.10008.1.2.4.92": "JPEG 2000 Part 2 Multi-component (Lossless Only)",
  "1.2.840.10008.1.2.4.93": "JPEG 2000 Part 2 Multi-component",
  "1.2.840.10008.1.2.4.201": "High-Throughput JPEG 2000 (Lossless Only)",
  "1.2.840.10008.1.2.4.202": "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
  "1.2.840.10008.1.2.4.203": "High-Throughput JPEG 2000",
};

/** A transfer syntax's name, or its UID when it has none here. */
export function syntaxName(uid: string): string {
  return TRANSFER_SYNTAX_NAMES[uid] ?? EXTRA_NAMES[uid] ?? uid;
}

/** How `uid` stores pixel data, and which decoder reads it. */
export function syntaxInfo(uid: string): SyntaxInfo {
  const name = syntaxName(uid);
  if (NATIVE.has(uid)) return { uid, name, encoding: "native" };
  const codec = LOSSLESS[uid];
  if (codec) return { uid, name, encoding: "lossless", codec };
  if (LOSSY.has(uid)) return { uid, name, encoding: "lossy" };
  return { uid, name, encoding: "unsupported" };
}

/** True for the transfer syntaxes whose pixel data is native (not encapsulated). */
export function isNativeSyntax(uid: string): boolean {
  return NATIVE.has(uid);
}

/** The lossless encapsulated syntaxes this layer decodes, in the order a receiver proposes them. */
export const DECODABLE_SYNTAXES: readonly string[] = [
  JPEG_LOSSLESS_SV1, JPEG_LOSSLESS, JPEG_LS_LOSSLESS, JPEG_2000_LOSSLESS, RLE_LOSSLESS,
];

/** Short names for `--to` options and records, and the syntax each stands for. */
export const SYNTAX_ALIASES: Readonly<Record<string, string>> = {
  "explicit-le": EXPLICIT_VR_LITTLE_ENDIAN,
  "implicit-le": IMPLICIT_VR_LITTLE_ENDIAN,
  "explicit-be": EXPLICIT_VR_BIG_ENDIAN,
  "deflated": DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  "rle": RLE_LOSSLESS,
};

/** A `--to` value (an alias from {@linkcode SYNTAX_ALIASES} or a UID) → the UID; undefined when unknown. */
export function resolveSyntax(value: string): string | undefined {
  if (Object.hasOwn(SYNTAX_ALIASES, value)) return SYNTAX_ALIASES[value];
  return /^[0-9]+(\.[0-9]+)+$/.test(value) ? value : undefined;
}
