/**
 * Frames from encapsulated pixel data (PS3.5 A.4): the fragments after the Basic Offset Table
 * item grouped into one byte string per frame, by the Basic Offset Table, the Extended Offset
 * Table, one fragment per frame, or the codestreams' own start markers, in that order.
 */
import { concatBytes } from "../util/bytes.ts";
import { CodecError } from "./pixel.ts";
import type { CodecName } from "./syntaxes.ts";

/** Where each frame starts, from the Extended Offset Table (7FE0,0001) and its lengths (7FE0,0002). */
export interface ExtendedOffsets {
  offsets: readonly bigint[];
  lengths?: readonly bigint[];
}

/** Reads a little-endian table of 64-bit values (OV). */
export function readOffsets64(bytes: Uint8Array | undefined, littleEndian = true): bigint[] | undefined {
  if (!bytes || bytes.length === 0 || bytes.length % 8 !== 0) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.length / 8 }, (_, i) => dv.getBigUint64(i * 8, littleEndian));
}

/** True when `fragment` begins a codestream of `codec` (SOI for JPEG and JPEG-LS, SOC+SIZ or a JP2 box for JPEG 2000). */
function startsFrame(fragment: Uint8Array, codec: CodecName | undefined): boolean {
  if (fragment.length < 4) return false;
  if (codec === "jpeg-lossless" || codec === "jpeg-ls") return fragment[0] === 0xff && fragment[1] === 0xd8;
  if (codec === "jpeg-2000") {
    if (fragment[0] === 0xff && fragment[1] === 0x4f && fragment[2] === 0xff && fragment[3] === 0x51) return true;
    return fragment.length >= 8 && fragment[4] === 0x6a && fragment[5] === 0x50 && fragment[6] === 0x20 && fragment[7] === 0x20; // "jP  "
  }
  return false;
}

/**
 * Splits `fragments` (the Basic Offset Table item first, as the reader keeps them) into
 * `numberOfFrames` frames. Throws a CodecError that says why when they cannot be told apart.
 */
export function splitFrames(
  fragments: readonly Uint8Array[], numberOfFrames: number, codec?: CodecName, extended?: ExtendedOffsets,
): Uint8Array[] {
  if (fragments.length === 0) throw new CodecError("encapsulated pixel data has no Basic Offset Table item");
  const bot = fragments[0];
  const data = fragments.slice(1);
  if (data.length === 0) throw new CodecError("encapsulated pixel data has no fragments");
  // Item offsets of each fragment, relative to the first byte of the first fragment's item.
  const itemOffsets: number[] = [];
  let at = 0;
  for (const f of data) {
    itemOffsets.push(at);
    at += 8 + f.length;
  }
  const byOffsets = (offsets: readonly number[], what: string): Uint8Array[] => {
    if (offsets.length !== numberOfFrames) {
      throw new CodecError(`the ${what} has ${offsets.length} entries for ${numberOfFrames} frames`);
    }
    const starts = offsets.map((o, k) => {
      const i = itemOffsets.indexOf(o);
      if (i < 0) throw new CodecError(`the ${what} points frame ${k + 1} at offset ${o}, which is not the start of a fragment`);
      if (k > 0 && o <= offsets[k - 1]) throw new CodecError(`the ${what} is not in increasing order at frame ${k + 1}`);
      return i;
    });
    return starts.map((s, k) => concatBytes(data.slice(s, k + 1 < starts.length ? starts[k + 1] : data.length)));
  };
  if (bot.length > 0) {
    if (bot.length % 4 !== 0) throw new CodecError(`the Basic Offset Table has ${bot.length} bytes, not a multiple of 4`);
    const dv = new DataView(bot.buffer, bot.byteOffset, bot.byteLength);
    return byOffsets(Array.from({ length: bot.length / 4 }, (_, i) => dv.getUint32(i * 4, true)), "Basic Offset Table");
  }
  if (extended && extended.offsets.length > 0) {
    const offsets = extended.offsets.map(Number);
    const frames = byOffsets(offsets, "Extended Offset Table");
    if (extended.lengths && extended.lengths.length === frames.length) {
      // A frame's length in the table excludes a trailing pad byte its fragment may have.
      return frames.map((f, k) => {
        const n = Number(extended.lengths![k]);
        return n <= f.length ? f.subarray(0, n) : f;
      });
    }
    return frames;
  }
  if (numberOfFrames === 1) return [concatBytes(data)];
  if (data.length === numberOfFrames) return data.slice();
  if (data.length < numberOfFrames) {
    throw new CodecError(`encapsulated pixel data has ${data.length} fragments for ${numberOfFrames} frames`);
  }
  // More fragments than frames and no table: a frame begins where a codestream begins.
  const starts: number[] = [];
  data.forEach((f, i) => {
    if (startsFrame(f, codec)) starts.push(i);
  });
  if (starts.length !== numberOfFrames || starts[0] !== 0) {
    throw new CodecError(
      `cannot tell ${numberOfFrames} frames apart in ${data.length} fragments (no offset table, ${starts.length} codestream starts)`,
    );
  }
  return starts.map((s, k) => concatBytes(data.slice(s, k + 1 < starts.length ? starts[k + 1] : data.length)));
}
