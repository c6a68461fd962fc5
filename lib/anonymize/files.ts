/**
 * Anonymizing files: read each one's header (large values stay in the file), anonymize its data
 * set, write the result atomically (temporary file + rename, so a partially anonymized file never
 * appears at a final path) copying the large values from the input as it goes, and describe it
 * as a `file` record.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { CopyBuffers, removeStaleTemporaryFiles, type Source, tempName, writeOutputSync } from "./_output.ts";
import { metaHeaderDisagreement } from "../dicom/file_record.ts";
import { type DicomFile, parseDicom, readDicomFd } from "../dicom/reader.ts";
import { DataSet } from "../dicom/dataset.ts";
import { PIXEL_DATA } from "../dicom/tag.ts";
import { EXPLICIT_VR_BIG_ENDIAN, NATIVE_TRANSFER_SYNTAXES, transferSyntaxEncoding } from "../dicom/uids.ts";
import { buildMeta, encodeDataSet, encodeDataSetParts, type EncodedPart, encodeMeta } from "../dicom/writer.ts";
import { DICOM_CATEGORIES, type FileRecord } from "../records/types.ts";
import { uniqueName } from "../layout/sanitize.ts";
import { fsReason } from "../fs/errors.ts";

export { removeStaleTemporaryFiles };
import {
  type AnonymizeContext, type AnonymizedIds, anonymizeDataSet, type AnonymizeOptions, BurnedInAnnotationError,
  createAnonymizeContext,
} from "./anonymize.ts";

/** One file to anonymize. */
export interface FileInput {
  path: string;
  /** The directory the user named, for the mirror layout (absent: the file's own directory). */
  root?: string;
  /** The record the file came from, when it came from stdin. */
  record?: FileRecord;
}

/** Where results go. */
export interface AnonymizeFilesOptions {
  /** Output directory (required unless `inPlace`). */
  out?: string;
  /** Overwrite each input with its anonymized version. */
  inPlace?: boolean;
  /**
   * `uid` (default): `<new patient id>/<new series UID>/<new SOP instance UID>.dcm`, no original
   * names in paths. `mirror`: the input's path relative to the directory given (original folder
   * and file names may carry PHI).
   */
  layout?: "uid" | "mirror";
}

/** The outcome for one input: a record for the written file, or why nothing was written. */
export type AnonymizeFileResult =
  | {
    ok: true; input: FileInput; record: FileRecord; ids: AnonymizedIds;
    /** The input's meta header disagreed with its data set (the copy's meta header is built from the data set). */
    metaDisagreed?: boolean;
  }
  | { ok: false; input: FileInput; reason: "unreadable" | "refused" | "write" | "skipped"; message: string };

const MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10";

/** Writes bytes to `path` atomically: a temporary file in the same directory, then a rename. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempName(path);
  const fd = openSync(tmp, "wx");
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
}

/**
 * The encoded parts of a Part 10 file: preamble + `DICM`, meta information, data set. Native
 * pixel data is not copied into an intermediate buffer: the elements before and after it are
 * encoded by the writer and the pixel value (already in the target byte order) is referenced as
 * it is, so a 512×512 CT slice costs one copy instead of three. Concatenated, the parts are the
 * bytes `encodeFile` writes (the tests check this).
 */
export function encodeParts(file: Pick<DicomFile, "dataset" | "transferSyntaxUid">, sopClass: string, sopInstance: string): Uint8Array[] {
  const ts = file.transferSyntaxUid;
  const enc = transferSyntaxEncoding(ts);
  const head = new Uint8Array(132);
  head.set([0x44, 0x49, 0x43, 0x4d], 128);
  const meta = encodeMeta(buildMeta(sopClass, sopInstance, ts));
  const ds = file.dataset;
  const pixel = ds.elements.get(PIXEL_DATA);
  const direct = pixel !== undefined && !enc.deflated && pixel.value !== undefined && !pixel.fragments && !pixel.items &&
    !pixel.skipped && (pixel.vr === "OW" || pixel.vr === "OB") && pixel.value.length % 2 === 0 &&
    ds.littleEndian === enc.littleEndian && NATIVE_TRANSFER_SYNTAXES.includes(ts);
  if (!direct) return [head, meta, encodeDataSet(ds, ts)];
  const before = new DataSet({ littleEndian: ds.littleEndian, explicitVR: ds.explicitVR }, ds.charset);
  const afterPixel = new DataSet({ littleEndian: ds.littleEndian, explicitVR: ds.explicitVR }, ds.charset);
  for (const el of ds.elements.values()) {
    if (el.tag < PIXEL_DATA) before.set(el);
    else if (el.tag > PIXEL_DATA) afterPixel.set(el);
  }
  const value = pixel.value!;
  const h = new Uint8Array(enc.explicitVR ? 12 : 8);
  const dv = new DataView(h.buffer);
  dv.setUint16(0, 0x7fe0, enc.littleEndian);
  dv.setUint16(2, 0x0010, enc.littleEndian);
  if (enc.explicitVR) {
    h[4] = pixel.vr.charCodeAt(0);
    h[5] = pixel.vr.charCodeAt(1);
    dv.setUint32(8, value.length, enc.littleEndian);
  } else {
    dv.setUint32(4, value.length, enc.littleEndian);
  }
  const parts = [head, meta, encodeDataSet(before, ts), h, value];
  if (afterPixel.size > 0) parts.push(encodeDataSet(afterPixel, ts));
  return parts;
}

/**
 * Anonymizes a data set that did not come from a file (e.g. received by C-MOVE/C-GET, for
 * `retrieve --anonymize`) and encodes it as a Part 10 file in the same transfer syntax. Returns
 * the parts to write (with `writev`, or concatenated). Throws `BurnedInAnnotationError` when the
 * object is refused.
 */
export function anonymizeToParts(
  dataset: DataSet,
  transferSyntaxUid: string,
  ctx: AnonymizeContext,
): { ids: AnonymizedIds; parts: Uint8Array[] } {
  const ids = anonymizeDataSet(dataset, ctx.options, ctx);
  const parts = encodeParts({ dataset, transferSyntaxUid }, ids.sopClassUid ?? "", ids.sopInstanceUid ?? "");
  return { ids, parts };
}

/**
 * Where `prepare` would write an input, from its header alone (no de-identification): for a rerun
 * to tell whether the output an earlier run recorded is the one this run would write (same key,
 * layout and output folder). Undefined when that cannot be told without anonymizing.
 */
export function expectedOutput(input: FileInput, header: DicomFile, ctx: AnonymizeContext, files: AnonymizeFilesOptions): string | undefined {
  const src = input.path;
  if (files.inPlace) return src;
  if (!files.out) return undefined;
  if ((files.layout ?? "uid") === "mirror") {
    const rel = relative(input.root ?? dirname(src), src);
    return join(files.out, rel.startsWith("..") || rel === "" ? basename(src) : rel);
  }
  const ds = header.dataset;
  const sop = ds.string(0x00080018) ?? header.meta.string(0x00020003);
  const series = ds.string(0x0020000e);
  if (!sop || ctx.profile.byTag.get(0x00100020) === "K") return undefined;
  const keep = ctx.options.retainUids === true;
  const patient = ctx.patient(ds.string(0x00100020) ?? "").id;
  const seriesUid = series === undefined ? "no-series" : keep ? series : ctx.uid(series);
  return join(files.out, uniqueName(patient, "_"), uniqueName(seriesUid, "_"), `${uniqueName(keep ? sop : ctx.uid(sop), "_")}.dcm`);
}

/** Notes an output written by an earlier run, so this run still refuses a second input for it. */
export function claimOutput(ctx: AnonymizeContext, dest: string, src: string): boolean {
  const earlier = ctx.outputs.get(resolve(dest));
  if (earlier !== undefined && earlier !== resolve(src)) return false;
  ctx.outputs.set(resolve(dest), resolve(src));
  return true;
}

type Prepared =
  | { ok: true; dest: string; parts: EncodedPart[]; bytes: number; record: FileRecord; ids: AnonymizedIds; metaDisagreed: boolean }
  | (AnonymizeFileResult & { ok: false });

/** Anonymizes and encodes one parsed file (the CPU part; no I/O). Values left in the file become source ranges. */
function prepare(input: FileInput, file: DicomFile, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Prepared {
  const src = input.path;
  if (file.meta.string(0x00020002) === MEDIA_STORAGE_DIRECTORY || basename(src).toUpperCase() === "DICOMDIR") {
    return { ok: false, input, reason: "skipped", message: `Skipped "${src}": a DICOMDIR is not anonymized; build a new one from the output` };
  }
  // Before the data set's UIDs are replaced.
  const metaDisagreed = metaHeaderDisagreement(file) !== undefined;
  let ids: AnonymizedIds;
  try {
    ids = anonymizeDataSet(file.dataset, ctx.options, ctx);
  } catch (e) {
    if (e instanceof BurnedInAnnotationError) return { ok: false, input, reason: "refused", message: `Refused "${src}": ${e.message}` };
    return { ok: false, input, reason: "unreadable", message: `Cannot anonymize "${src}": ${fsReason(e)}` };
  }
  const ts = file.transferSyntaxUid;
  const sopClass = ids.sopClassUid ?? file.meta.string(0x00020002) ?? "";
  const sopInstance = ids.sopInstanceUid ?? ctx.uid(file.meta.string(0x00020003) ?? "");
  let dest: string;
  if (files.inPlace) dest = src;
  else {
    if (!files.out) throw new Error("An output directory (--out) or --in-place is required");
    if ((files.layout ?? "uid") === "mirror") {
      const root = input.root ?? dirname(src);
      const rel = relative(root, src);
      dest = join(files.out, rel.startsWith("..") || rel === "" ? basename(src) : rel);
    } else {
      dest = join(files.out, uniqueName(ids.patientId, "_"), uniqueName(ids.seriesUid ?? "no-series", "_"), `${uniqueName(sopInstance, "_")}.dcm`);
    }
  }
  const destKey = resolve(dest), srcKey = resolve(src);
  if (!files.inPlace && destKey === srcKey) {
    return { ok: false, input, reason: "write", message: `Cannot write "${dest}": it is the input file; use --in-place to overwrite inputs` };
  }
  const earlier = ctx.outputs.get(destKey);
  if (earlier !== undefined && earlier !== srcKey) {
    const why = (files.layout ?? "uid") === "uid" && !files.inPlace ? "has the same SOP Instance UID as" : "would be written to the same path as";
    return { ok: false, input, reason: "write", message: `Cannot write "${dest}": "${src}" ${why} "${earlier}", which was written there in this run` };
  }
  ctx.outputs.set(destKey, srcKey);
  let parts: EncodedPart[];
  try {
    const head = new Uint8Array(132);
    head.set([0x44, 0x49, 0x43, 0x4d], 128);
    const meta = encodeMeta(buildMeta(sopClass, sopInstance, ts));
    const body = transferSyntaxEncoding(ts).deflated ? [encodeDataSet(file.dataset, ts)] : encodeDataSetParts(file.dataset, ts);
    parts = [head, meta, ...body];
  } catch (e) {
    return { ok: false, input, reason: "write", message: `Cannot write "${dest}": ${fsReason(e)}` };
  }
  let bytes = 0;
  for (const p of parts) bytes += p.length;
  const planUid = sopClass === "1.2.840.10008.5.1.4.1.1.481.5" || sopClass === "1.2.840.10008.5.1.4.1.1.481.8"
    ? sopInstance
    : typeof input.record?.planUid === "string" ? (ctx.options.retainUids ? input.record.planUid : ctx.uid(input.record.planUid)) : undefined;
  const record: FileRecord = {
    type: "file",
    path: dest,
    bytes,
    sha256: "", // filled in by the writer, which hashes the bytes as it writes them
    // export-plan's finer DICOM categories (image, rt-object) ride through
    category: typeof input.record?.category === "string" && DICOM_CATEGORIES.has(input.record.category) ? input.record.category : "dicom",
  };
  // Absent fields are left out (assigned as undefined they would be written as nothing, but an
  // object with deleted keys is slow to serialize).
  const put = (k: string, v: unknown) => { if (v !== undefined && v !== "") record[k] = v; };
  put("sopClassUid", sopClass);
  put("sopInstanceUid", sopInstance);
  put("modality", ids.modality);
  put("patientId", ids.patientId);
  put("studyUid", ids.studyUid);
  put("seriesUid", ids.seriesUid);
  put("transferSyntaxUid", ts);
  put("planUid", planUid);
  record.anonymized = { from: src };
  return { ok: true, dest, parts, bytes, record, ids, metaDisagreed };
}

// Values up to this size are read with the header; larger bulk values (pixel data, big OB/OW/UN)
// stay in the input file and are copied to the output in chunks, so a 1 GiB object costs a chunk
// of memory, not a gigabyte.
const DEFER_THRESHOLD = 64 * 1024;

/**
 * An input file open for reading: its descriptor, its parsed form, and where the values left in
 * it are copied from: its bytes when it fitted one read buffer (`buffer`, given back after the
 * write), else the descriptor.
 */
interface OpenInput {
  fd: number;
  file: DicomFile;
  source: Source;
  buffer?: Uint8Array;
}

// Most inputs (CT, MR slices, RT objects) fit one read: read whole, parsed from memory, their
// pixel data written from the same buffer (one read system call, no second copy). Larger ones
// are parsed from windows and their large values copied in chunks.
const readBuffers = new CopyBuffers();

/**
 * Opens and parses an input, leaving its bulk values where they are. Synchronous on purpose:
 * reads of files in the page cache are a memory copy, and the asynchronous calls cost more CPU
 * and overlapped with nothing useful (see anonymizeStream).
 */
function openInput(input: FileInput): { ok: true; open: OpenInput } | { ok: false; result: AnonymizeFileResult } {
  let fd: number | undefined;
  let buffer: Uint8Array | undefined = readBuffers.take();
  try {
    fd = openSync(input.path, "r");
    let n = 0;
    for (;;) {
      const r = readSync(fd, buffer, n, buffer.length - n, n);
      if (r === 0) break;
      n += r;
      if (n === buffer.length) break;
    }
    const opts = { full: true, deferBulk: true, bulkThreshold: DEFER_THRESHOLD };
    let file: DicomFile, source: Source;
    if (n < buffer.length) {
      const bytes = buffer.subarray(0, n);
      file = parseDicom(bytes, opts);
      file.path = input.path;
      source = { bytes };
    } else {
      readBuffers.give(buffer);
      buffer = undefined;
      file = readDicomFd(fd, fstatSync(fd).size, opts, input.path);
      source = { fd };
    }
    // Big endian (retired) files are read whole: their values may have to change byte order.
    if (file.transferSyntaxUid === EXPLICIT_VR_BIG_ENDIAN) file = readDicomFd(fd, fstatSync(fd).size, { full: true }, input.path);
    return { ok: true, open: { fd, file, source, buffer } };
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    if (buffer) readBuffers.give(buffer);
    return { ok: false, result: { ok: false, input, reason: "unreadable", message: `Cannot read DICOM file "${input.path}": ${fsReason(e)}` } };
  }
}

/**
 * Anonymizes one file and writes the result synchronously; never throws for a per-file problem
 * (the result says what went wrong).
 */
export function anonymizeFile(input: FileInput, ctx: AnonymizeContext, files: AnonymizeFilesOptions): AnonymizeFileResult {
  const opened = openInput(input);
  if (!opened.ok) return opened.result;
  const { fd, file, source, buffer } = opened.open;
  try {
    const p = prepare(input, file, ctx, files);
    if (!p.ok) return p;
    try {
      p.record.sha256 = writeOutputSync(p.dest, p.parts, source);
    } catch (e) {
      return { ok: false, input, reason: "write", message: `Cannot write "${p.dest}": ${fsReason(e)}` };
    }
    return { ok: true, input, record: p.record, ids: p.ids, metaDisagreed: p.metaDisagreed };
  } finally {
    closeSync(fd);
    if (buffer) readBuffers.give(buffer); // nothing refers to it any more: the output is written
  }
}

/** The same as `anonymizeFile`, as a promise (kept for library callers; the work is synchronous). */
export async function anonymizeFileAsync(input: FileInput, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Promise<AnonymizeFileResult> {
  return await Promise.resolve(anonymizeFile(input, ctx, files));
}

/**
 * The pipeline behind `anonymizeFiles` and the command, for streams that mix files with other
 * items (records passed through): files are read, anonymized and written one at a time, **in
 * input order** (so which of two colliding inputs wins, and everything else, does not depend on
 * I/O timing), with synchronous calls. A file holds its header and one copy buffer (1 MiB),
 * whatever its size: pixel data and other large values are copied from the input as they are
 * written. Temporary files that a killed run left in the output folder are removed first.
 * Yields every item with its result (none for items that are not files), in input order.
 *
 * Why one at a time and synchronous: measured against `gdcmanon -e` on 4,994 files (bench/README),
 * this beat both the runtime's asynchronous writes (Node's thread pool: more system time; Deno's
 * `node:fs` opens and renames on the calling thread anyway) and two writer threads (equal wall
 * time in Node for 15 % more CPU and 60 MB more memory; in Deno 1.5 times the CPU). `limit` is
 * accepted for callers of the earlier pipelined version and has no effect.
 */
export async function* anonymizeStream<T>(
  items: AsyncIterable<T> | Iterable<T>,
  fileOf: (item: T) => FileInput | undefined,
  ctx: AnonymizeContext,
  files: AnonymizeFilesOptions,
  limit = 16,
): AsyncGenerator<{ item: T; result?: AnonymizeFileResult }> {
  void limit;
  if (files.out && !files.inPlace) removeStaleTemporaryFiles(files.out);
  for await (const item of items as AsyncIterable<T>) {
    const input = fileOf(item);
    yield input ? { item, result: anonymizeFile(input, ctx, files) } : { item };
  }
}

/**
 * Anonymizes files, yielding one result per input in input order, one file at a time (see
 * `anonymizeStream`; `concurrency` is accepted and has no effect). Files only: the stage
 * `anonymizeRecords` (lib/anonymize/stage.ts) takes records, de-identifies `patient` and `plan`
 * records too, and writes the ledger.
 *
 * @example
 * ```ts
 * const ctx = createAnonymizeContext({ key: process.env.KEY! });
 * for await (const r of anonymizeFiles([{ path: "in/plan.dcm" }, { path: "in/ct1.dcm" }], ctx.options, { out: "anon/" }, ctx)) {
 *   if (!r.ok) console.error(r.message);
 * }
 * ```
 */
export async function* anonymizeFiles(
  inputs: AsyncIterable<FileInput> | Iterable<FileInput>,
  options: AnonymizeOptions,
  files: AnonymizeFilesOptions & { concurrency?: number },
  context?: AnonymizeContext,
): AsyncGenerator<AnonymizeFileResult> {
  const ctx = context ?? createAnonymizeContext(options);
  if (!files.inPlace && !files.out) throw new Error("An output directory (--out) or --in-place is required");
  for await (const { result } of anonymizeStream(inputs, (input) => input, ctx, files, files.concurrency)) yield result!;
}

/**
 * Maps an iterable through an async function with up to `limit` calls in flight, yielding results
 * in input order. Stops pulling input when the consumer stops.
 */
export async function* orderedMap<T, R>(
  source: AsyncIterable<T> | Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  const pending: Promise<R>[] = [];
  for await (const item of source as AsyncIterable<T>) {
    pending.push(fn(item));
    if (pending.length >= Math.max(1, limit)) yield await pending.shift()!;
  }
  while (pending.length > 0) yield await pending.shift()!;
}
