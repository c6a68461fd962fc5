/**
 * JPEG Lossless, Non-Hierarchical (Process 14; ITU-T T.81 Annex H), decoded in TypeScript: every
 * selection value 1–7, 2 to 16 bits, 1 to 4 components, interleaved or one scan per component,
 * restart intervals. Written here rather than taken from npm because the npm decoder evaluated
 * (jpeg-lossless-decoder-js 2.1.2) drops the last sample of some images (docs/codecs.md).
 * A point transform (Pt > 0) discards low bits, so such a codestream is refused as lossy.
 */
import { CodecError, type PixelDescription } from "./pixel.ts";

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DHT = 0xc4;
const DRI = 0xdd;
const DNL = 0xdc;
const SOF3 = 0xc3;

/** A Huffman table as T.81 C and F.2.2.3 build it, plus a 9-bit lookup for short codes. */
interface HuffmanTable {
  /** Next 9 bits → (code length << 8) | value, or 0 when the code is longer. */
  fast: Uint16Array;
  maxcode: Int32Array; // by length 1..16, -1 when no code of that length
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
}

const FAST_BITS = 9;

function buildTable(counts: Uint8Array, values: Uint8Array): HuffmanTable {
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  const fast = new Uint16Array(1 << FAST_BITS);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    valptr[len] = k;
    mincode[len] = code;
    for (let i = 0; i < counts[len - 1]; i++) {
      if (len <= FAST_BITS) {
        const shift = FAST_BITS - len;
        const base = code << shift;
        for (let j = 0; j < 1 << shift; j++) fast[base + j] = (len << 8) | values[k];
      }
      code++;
      k++;
    }
    if (counts[len - 1] > 0) maxcode[len] = code - 1;
    if (code > 1 << len) throw new CodecError("JPEG Lossless codestream has an invalid Huffman table");
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff; // sentinel: no code longer than 16 bits
  return { fast, maxcode, valptr, mincode, values };
}

/** Reads entropy-coded bits: stuffed 0xFF00 bytes removed, stops at a marker (then feeds zeros). */
class BitReader {
  readonly data: Uint8Array;
  pos: number;
  bits = 0; // bit buffer, the next bit is bit `count - 1`
  count = 0;
  /** The marker that ended the entropy-coded segment (0 while none was met). */
  marker = 0;
  /** Zero bytes fed after the data ended or a marker was met (reading ahead feeds a few). */
  padding = 0;

  constructor(data: Uint8Array, pos: number) {
    this.data = data;
    this.pos = pos;
  }

  fill(): void {
    while (this.count <= 24) {
      let b = 0;
      if (this.marker === 0 && this.pos < this.data.length) {
        b = this.data[this.pos];
        if (b === 0xff) {
          const next = this.pos + 1 < this.data.length ? this.data[this.pos + 1] : 0;
          if (next === 0x00) {
            this.pos += 2;
          } else if (next === 0xff) {
            this.pos += 1; // fill bytes before a marker
            continue;
          } else {
            this.marker = next;
            this.pos += 2;
            b = 0;
            this.padding++;
          }
        } else {
          this.pos++;
        }
      } else {
        this.padding++;
      }
      this.bits = ((this.bits << 8) | b) >>> 0;
      this.count += 8;
    }
  }

  peek(n: number): number {
    if (this.count < n) this.fill();
    return (this.bits >>> (this.count - n)) & ((1 << n) - 1);
  }

  skip(n: number): void {
    this.count -= n;
    this.bits &= this.count === 0 ? 0 : (0xffffffff >>> (32 - this.count));
  }

  read(n: number): number {
    if (n === 0) return 0;
    const v = this.peek(n);
    this.skip(n);
    return v;
  }

  /** Decodes one Huffman symbol (T.81 F.2.2.3). */
  decode(t: HuffmanTable): number {
    const look = t.fast[this.peek(FAST_BITS)];
    if (look !== 0) {
      this.skip(look >> 8);
      return look & 0xff;
    }
    let code = this.read(1);
    let len = 1;
    while (code > t.maxcode[len]) {
      code = (code << 1) | this.read(1);
      len++;
      if (len > 16) throw new CodecError("JPEG Lossless codestream has an invalid Huffman code (damaged data)");
    }
    return t.values[t.valptr[len] + code - t.mincode[len]] ?? 0xff;
  }

  /** True when more bits were consumed than the data had: the codestream is truncated. */
  get overrun(): boolean {
    return this.padding * 8 > this.count;
  }

  /** Drops the bits left in the byte and reads the restart marker that must follow. */
  restart(expected: number): void {
    this.bits = 0;
    this.count = 0;
    if (this.marker === 0) {
      // The marker was not reached yet: it follows the last entropy-coded byte.
      while (this.pos + 1 < this.data.length && this.data[this.pos] === 0xff && this.data[this.pos + 1] === 0xff) this.pos++;
      if (this.pos + 1 < this.data.length && this.data[this.pos] === 0xff) {
        this.marker = this.data[this.pos + 1];
        this.pos += 2;
      }
    }
    if (this.marker !== expected) {
      throw new CodecError(`JPEG Lossless codestream lacks restart marker RST${expected & 7} (damaged or truncated data)`);
    }
    this.marker = 0;
    this.padding = 0;
  }
}

interface Component {
  id: number;
  index: number;
}

interface Frame {
  precision: number;
  rows: number;
  columns: number;
  components: Component[];
}

/** What `decodeJpegLossless` found in a codestream, beside the samples. */
export interface JpegLosslessInfo {
  precision: number;
  rows: number;
  columns: number;
  components: number;
  /** Selection value (predictor) of the first scan. */
  predictor: number;
  pointTransform: number;
}

function u16(d: Uint8Array, p: number): number {
  if (p + 2 > d.length) throw new CodecError(`JPEG Lossless codestream is truncated at offset ${p}`);
  return (d[p] << 8) | d[p + 1];
}

/**
 * Decodes a JPEG Lossless codestream into samples, color-by-pixel, one Uint16 per sample.
 * `check` sees the frame header before anything is allocated and throws to refuse it.
 */
export function decodeJpegLossless(data: Uint8Array, check?: (info: JpegLosslessInfo) => void): { samples: Uint16Array; info: JpegLosslessInfo } {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== SOI) throw new CodecError("JPEG Lossless codestream does not start with an SOI marker");
  const dc: (HuffmanTable | undefined)[] = [];
  let restartInterval = 0;
  let frame: Frame | undefined;
  let samples: Uint16Array | undefined;
  let info: JpegLosslessInfo | undefined;
  let pos = 2;
  let scans = 0;
  for (;;) {
    // Find the next marker (fill bytes 0xFF allowed).
    if (pos >= data.length) {
      if (samples && scans > 0) break; // EOI missing after complete scans: tolerated, as GDCM and DCMTK do
      throw new CodecError("JPEG Lossless codestream ends before its image data");
    }
    if (data[pos] !== 0xff) throw new CodecError(`JPEG Lossless codestream has no marker at offset ${pos}`);
    while (pos < data.length && data[pos] === 0xff) pos++;
    const marker = data[pos++];
    if (marker === EOI) break;
    if (marker >= 0xd0 && marker <= 0xd7) continue; // a stray RSTn
    const length = u16(data, pos);
    if (length < 2 || pos + length > data.length) throw new CodecError(`JPEG Lossless marker segment 0xFF${marker.toString(16).toUpperCase()} at offset ${pos - 2} runs past the end`);
    const seg = data.subarray(pos + 2, pos + length);
    pos += length;
    if (marker === DHT) {
      let p = 0;
      while (p < seg.length) {
        const tc = seg[p] >> 4;
        const th = seg[p] & 15;
        if (p + 17 > seg.length) throw new CodecError("JPEG Lossless codestream has a truncated Huffman table");
        const counts = seg.subarray(p + 1, p + 17);
        let n = 0;
        for (const c of counts) n += c;
        if (p + 17 + n > seg.length || n > 256) throw new CodecError("JPEG Lossless codestream has a truncated Huffman table");
        if (tc === 0 && th < 4) dc[th] = buildTable(counts, seg.slice(p + 17, p + 17 + n));
        p += 17 + n;
      }
    } else if (marker === DRI) {
      if (seg.length < 2) throw new CodecError("JPEG Lossless codestream has a short DRI segment");
      restartInterval = (seg[0] << 8) | seg[1];
    } else if (marker >= 0xc0 && marker <= 0xcf && marker !== DHT && marker !== 0xc8 && marker !== 0xcc) {
      if (marker !== SOF3) {
        const kind = marker === 0xc7 ? "differential (hierarchical) lossless" : marker >= 0xc9 ? "arithmetic-coded" : "DCT-based (lossy)";
        throw new CodecError(`JPEG codestream is ${kind} (SOF${marker - 0xc0}), not Process 14 lossless`);
      }
      if (frame) throw new CodecError("JPEG Lossless codestream has two frame headers");
      if (seg.length < 6) throw new CodecError("JPEG Lossless codestream has a short frame header");
      const nf = seg[5];
      if (nf < 1 || nf > 4 || seg.length < 6 + 3 * nf) throw new CodecError(`JPEG Lossless codestream has ${nf} components (1 to 4 supported)`);
      const components: Component[] = [];
      for (let i = 0; i < nf; i++) {
        const hv = seg[7 + 3 * i];
        if (hv !== 0x11) throw new CodecError("JPEG Lossless codestream has subsampled components");
        components.push({ id: seg[6 + 3 * i], index: i });
      }
      frame = { precision: seg[0], rows: (seg[1] << 8) | seg[2], columns: (seg[3] << 8) | seg[4], components };
      if (frame.precision < 2 || frame.precision > 16) throw new CodecError(`JPEG Lossless codestream has precision ${frame.precision} (2 to 16)`);
      if (frame.rows === 0) throw new CodecError("JPEG Lossless codestream defers its height to a DNL marker, which is not supported");
      if (frame.columns === 0) throw new CodecError("JPEG Lossless codestream has zero columns");
    } else if (marker === SOS) {
      if (!frame) throw new CodecError("JPEG Lossless codestream has a scan before its frame header");
      const ns = seg[0];
      if (ns < 1 || ns > frame.components.length || seg.length < 1 + 2 * ns + 3) throw new CodecError("JPEG Lossless codestream has an invalid scan header");
      const scanComponents: { index: number; table: HuffmanTable }[] = [];
      for (let i = 0; i < ns; i++) {
        const c = frame.components.find((x) => x.id === seg[1 + 2 * i]);
        if (!c) throw new CodecError(`JPEG Lossless scan names component ${seg[1 + 2 * i]}, which the frame does not have`);
        const table = dc[seg[2 + 2 * i] >> 4];
        if (!table) throw new CodecError(`JPEG Lossless scan uses Huffman table ${seg[2 + 2 * i] >> 4}, which is not defined`);
        scanComponents.push({ index: c.index, table });
      }
      const predictor = seg[1 + 2 * ns];
      const pt = seg[3 + 2 * ns] & 15;
      if (predictor < 1 || predictor > 7) throw new CodecError(`JPEG Lossless codestream has selection value ${predictor} (1 to 7)`);
      if (!info) {
        info = { precision: frame.precision, rows: frame.rows, columns: frame.columns, components: frame.components.length, predictor, pointTransform: pt };
        check?.(info);
        samples = new Uint16Array(frame.rows * frame.columns * frame.components.length);
      }
      if (pt !== 0) info.pointTransform = Math.max(info.pointTransform, pt);
      pos = decodeScan(data, pos, frame, samples!, scanComponents, predictor, pt, restartInterval);
      scans++;
    } else if (marker === DNL) {
      // Only meaningful with a zero height, refused above.
    }
    // APPn, COM, DQT and anything else: skipped.
  }
  if (!samples || !info) throw new CodecError("JPEG Lossless codestream has no scan");
  return { samples, info };
}

/** Decodes one scan into `out`; returns the position after its entropy-coded data. */
function decodeScan(
  data: Uint8Array, pos: number, frame: Frame, out: Uint16Array, comps: { index: number; table: HuffmanTable }[],
  predictor: number, pt: number, restartInterval: number,
): number {
  const { rows, columns } = frame;
  const nf = frame.components.length;
  const ns = comps.length;
  const reader = new BitReader(data, pos);
  const initial = 1 << (frame.precision - pt - 1);
  const mask = 0xffff;
  let mcus = 0;
  let rstIndex = 0;
  // The row where prediction restarts as on a first line (row 0, or the row after a restart).
  let firstRow = 0;
  let firstColumnAfterRestart = 0;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < columns; x++) {
      if (restartInterval > 0 && mcus === restartInterval) {
        reader.restart(0xd0 + rstIndex);
        rstIndex = (rstIndex + 1) & 7;
        mcus = 0;
        firstRow = y;
        firstColumnAfterRestart = x;
      }
      const p = (y * columns + x) * nf;
      for (let c = 0; c < ns; c++) {
        const { index, table } = comps[c];
        const s = reader.decode(table);
        let diff: number;
        if (s === 0) diff = 0;
        else if (s === 16) diff = 32768;
        else if (s > 16) throw new CodecError(`JPEG Lossless codestream has difference category ${s} (damaged data)`);
        else {
          const v = reader.read(s);
          diff = v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
        }
        const at = p + index;
        let px: number;
        if (y === firstRow) {
          px = x === firstColumnAfterRestart ? initial : out[at - nf];
        } else if (x === 0) {
          px = out[at - columns * nf];
        } else {
          const ra = out[at - nf];
          const rb = out[at - columns * nf];
          const rc = out[at - columns * nf - nf];
          switch (predictor) {
            case 1: px = ra; break;
            case 2: px = rb; break;
            case 3: px = rc; break;
            case 4: px = ra + rb - rc; break;
            case 5: px = ra + ((rb - rc) >> 1); break;
            case 6: px = rb + ((ra - rc) >> 1); break;
            default: px = (ra + rb) >> 1; break;
          }
        }
        out[at] = (px + diff) & mask;
      }
      mcus++;
    }
    if (reader.overrun) throw new CodecError(`JPEG Lossless codestream ends early, at row ${y + 1} of ${rows} (truncated data)`);
  }
  // Continue after the scan's entropy-coded data: at the marker that ended it.
  if (reader.marker !== 0) return reader.pos - 2;
  let p = reader.pos;
  while (p + 1 < data.length && !(data[p] === 0xff && data[p + 1] !== 0x00 && !(data[p + 1] >= 0xd0 && data[p + 1] <= 0xd7))) p++;
  return p + 1 < data.length ? p : data.length;
}

/** Decodes JPEG Lossless frames into native little-endian samples. */
export function jpegLosslessFrame(frame: Uint8Array, px: PixelDescription): Uint8Array {
  const { samples, info } = decodeJpegLossless(frame, (i) => {
    if (i.columns !== px.columns || i.rows !== px.rows || i.components !== px.samplesPerPixel) {
      throw new CodecError(
        `JPEG Lossless codestream is ${i.rows} × ${i.columns} × ${i.components}, the data set says ${px.rows} × ${px.columns} × ${px.samplesPerPixel}`,
      );
    }
    if (i.precision > px.bitsAllocated) throw new CodecError(`JPEG Lossless codestream has ${i.precision}-bit samples where Bits Allocated is ${px.bitsAllocated}`);
    if (px.bitsAllocated !== 8 && px.bitsAllocated !== 16) throw new CodecError(`JPEG Lossless with Bits Allocated ${px.bitsAllocated} is not supported`);
  });
  if (info.pointTransform !== 0) {
    throw new CodecError(`JPEG Lossless codestream uses point transform ${info.pointTransform}, which discards low bits (lossy)`);
  }
  const out = new Uint8Array(px.frameBytes);
  if (px.bitsAllocated === 8) {
    for (let i = 0; i < samples.length; i++) out[i] = samples[i];
  } else {
    for (let i = 0; i < samples.length; i++) {
      out[2 * i] = samples[i] & 0xff;
      out[2 * i + 1] = samples[i] >> 8;
    }
  }
  return out;
}
