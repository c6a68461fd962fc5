/**
 * Anonymizing files: read each in full, anonymize its data set, write the result atomically
 * (temporary file + rename, so a partially anonymized file never appears at a final path) and
 * describe it as a `file` record.
 */
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync as readFileSyncNode, renameSync, unlinkSync, writeSync } from "node:fs";
import { close as fsClose, fstatSync, open as fsOpen, readSync, writev as fsWritev } from "node:fs";
import { mkdir, rename, unlink } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { type DicomFile, parseDicom } from "../dicom/reader.ts";
import { DataSet } from "../dicom/dataset.ts";
import { PIXEL_DATA } from "../dicom/tag.ts";
import { NATIVE_TRANSFER_SYNTAXES, transferSyntaxEncoding } from "../dicom/uids.ts";
import { buildMeta, encodeDataSet, encodeMeta } from "../dicom/writer.ts";
import { DICOM_CATEGORIES, type FileRecord } from "../records/types.ts";
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
  | { ok: true; input: FileInput; record: FileRecord; ids: AnonymizedIds }
  | { ok: false; input: FileInput; reason: "unreadable" | "refused" | "write" | "skipped"; message: string };

const MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10";

/** A path component from an identifier: no separators, no traversal, bounded length. */
function safeComponent(text: string): string {
  let s = text.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 100);
  if (s === "" || s === "." || s === "..") s = "_";
  return s;
}

let tempCounter = 0;

/** Writes bytes to `path` atomically: a temporary file in the same directory, then a rename. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.rtexport-tmp-${process.pid}-${++tempCounter}`;
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

function errorDetail(e: unknown): string {
  const err = e as { code?: string; message?: string };
  if (err.code === "ENOENT") return "no such file";
  if (err.code === "EACCES" || err.code === "EPERM") return "permission denied";
  if (err.code === "EISDIR") return "is a directory";
  return err.message ?? String(e);
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

type Prepared =
  | { ok: true; dest: string; parts: Uint8Array[]; bytes: number; record: FileRecord; ids: AnonymizedIds }
  | (AnonymizeFileResult & { ok: false });

/** Parses, anonymizes and encodes one file held in memory (the CPU part; no I/O). */
function prepare(input: FileInput, data: Uint8Array, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Prepared {
  const src = input.path;
  let file: DicomFile;
  try {
    file = parseDicom(data, { full: true });
  } catch (e) {
    return { ok: false, input, reason: "unreadable", message: `Cannot read DICOM file "${src}": ${errorDetail(e)}` };
  }
  if (file.meta.string(0x00020002) === MEDIA_STORAGE_DIRECTORY || basename(src).toUpperCase() === "DICOMDIR") {
    return { ok: false, input, reason: "skipped", message: `Skipped "${src}": a DICOMDIR is not anonymized; build a new one from the output` };
  }
  let ids: AnonymizedIds;
  try {
    ids = anonymizeDataSet(file.dataset, ctx.options, ctx);
  } catch (e) {
    if (e instanceof BurnedInAnnotationError) return { ok: false, input, reason: "refused", message: `Refused "${src}": ${e.message}` };
    return { ok: false, input, reason: "unreadable", message: `Cannot anonymize "${src}": ${errorDetail(e)}` };
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
      dest = join(files.out, safeComponent(ids.patientId), safeComponent(ids.seriesUid ?? "no-series"), `${safeComponent(sopInstance)}.dcm`);
    }
    if (resolve(dest) === resolve(src)) {
      return { ok: false, input, reason: "write", message: `Cannot write "${dest}": it is the input file; use --in-place to overwrite inputs` };
    }
  }
  const earlier = ctx.outputs.get(resolve(dest));
  if (earlier !== undefined && earlier !== resolve(src)) {
    const why = (files.layout ?? "uid") === "uid" && !files.inPlace ? "has the same SOP Instance UID as" : "would be written to the same path as";
    return { ok: false, input, reason: "write", message: `Cannot write "${dest}": "${src}" ${why} "${earlier}", which was written there in this run` };
  }
  ctx.outputs.set(resolve(dest), resolve(src));
  let parts: Uint8Array[];
  try {
    parts = encodeParts(file, sopClass, sopInstance);
  } catch (e) {
    return { ok: false, input, reason: "write", message: `Cannot write "${dest}": ${errorDetail(e)}` };
  }
  let bytes = 0;
  for (const p of parts) bytes += p.length;
  const record: FileRecord = {
    type: "file",
    path: dest,
    bytes,
    sha256: "", // filled in by the caller, which hashes the bytes it writes
    // export-plan's finer DICOM categories (image, rt-object) ride through
    category: typeof input.record?.category === "string" && DICOM_CATEGORIES.has(input.record.category) ? input.record.category : "dicom",
    sopClassUid: sopClass || undefined,
    sopInstanceUid: sopInstance || undefined,
    modality: ids.modality,
    patientId: ids.patientId,
    studyUid: ids.studyUid,
    seriesUid: ids.seriesUid,
    transferSyntaxUid: ts,
    planUid: sopClass === "1.2.840.10008.5.1.4.1.1.481.5" || sopClass === "1.2.840.10008.5.1.4.1.1.481.8"
      ? sopInstance
      : typeof input.record?.planUid === "string" ? (ctx.options.retainUids ? input.record.planUid : ctx.uid(input.record.planUid)) : undefined,
    anonymized: { from: src },
  };
  for (const k of Object.keys(record)) if (record[k] === undefined) delete record[k];
  return { ok: true, dest, parts, bytes, record, ids };
}

/**
 * Anonymizes one file and writes the result synchronously; never throws for a per-file problem
 * (the result says what went wrong).
 */
export function anonymizeFile(input: FileInput, ctx: AnonymizeContext, files: AnonymizeFilesOptions): AnonymizeFileResult {
  let data: Uint8Array;
  try {
    const b = readFileSyncBytes(input.path);
    data = b;
  } catch (e) {
    return { ok: false, input, reason: "unreadable", message: `Cannot read DICOM file "${input.path}": ${errorDetail(e)}` };
  }
  const p = prepare(input, data, ctx, files);
  if (!p.ok) return p;
  const bytes = concat(p.parts, p.bytes);
  p.record.sha256 = createHash("sha256").update(bytes).digest("hex");
  try {
    writeFileAtomic(p.dest, bytes);
  } catch (e) {
    return { ok: false, input, reason: "write", message: `Cannot write "${p.dest}": ${errorDetail(e)}` };
  }
  return { ok: true, input, record: p.record, ids: p.ids };
}

/**
 * Buffers for reading input files, reused once a file's output is written: a full read of a CT
 * slice would otherwise allocate half a megabyte per file, and the garbage collector's work on
 * those was the largest cost in the benchmark.
 */
class ReadBuffers {
  private free: Uint8Array[] = [];
  take(n: number): Uint8Array {
    for (let i = 0; i < this.free.length; i++) {
      if (this.free[i].byteLength >= n) return this.free.splice(i, 1)[0];
    }
    return new Uint8Array(Math.max(n, 1 << 20));
  }
  give(b: Uint8Array): void {
    if (this.free.length < 16 && b.byteLength <= 64 << 20) this.free.push(b);
  }
}
const readBuffers = new ReadBuffers();

function cb<T>(fn: (done: (err: Error | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/**
 * Reads a whole file into a pooled buffer; the caller gives the buffer back. Synchronous on
 * purpose: reads of files in the page cache are a memory copy, and measured here a synchronous
 * open/fstat/read/close cost 0.07 ms of CPU per CT slice where the asynchronous calls cost 0.2 ms
 * (thread pool hand-offs) and did not overlap with anything useful. Writes, which can block on
 * the disk, stay asynchronous.
 */
function readPooled(path: string): { buffer: Uint8Array; data: Uint8Array } {
  const fd = openSync(path, "r");
  let buffer: Uint8Array | undefined;
  try {
    const size = fstatSync(fd).size;
    buffer = readBuffers.take(size);
    let got = 0;
    while (got < size) {
      const r = readSync(fd, buffer, got, size - got, got);
      if (r === 0) break;
      got += r;
    }
    return { buffer, data: buffer.subarray(0, got) };
  } catch (e) {
    if (buffer) readBuffers.give(buffer);
    throw e;
  } finally {
    closeSync(fd);
  }
}

type ReadResult = { ok: true; buffer: Uint8Array; data: Uint8Array } | { ok: false; result: AnonymizeFileResult };

function readInput(input: FileInput): ReadResult {
  try {
    return { ok: true, ...readPooled(input.path) };
  } catch (e) {
    return { ok: false, result: { ok: false, input, reason: "unreadable", message: `Cannot read DICOM file "${input.path}": ${errorDetail(e)}` } };
  }
}

/** The CPU part in input order, then the write in the background; resolves when the file is written. */
function processRead(input: FileInput, read: ReadResult, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Promise<AnonymizeFileResult> {
  if (!read.ok) return Promise.resolve(read.result);
  let p: Prepared;
  try {
    p = prepare(input, read.data, ctx, files);
  } catch (e) {
    readBuffers.give(read.buffer);
    throw e;
  }
  if (!p.ok) {
    readBuffers.give(read.buffer);
    return Promise.resolve(p);
  }
  const hash = createHash("sha256");
  for (const part of p.parts) hash.update(part);
  p.record.sha256 = hash.digest("hex");
  const dest = p.dest;
  return writePartsAtomic(dest, p.parts).then(
    (): AnonymizeFileResult => ({ ok: true, input, record: p.record, ids: p.ids }),
    (e): AnonymizeFileResult => ({ ok: false, input, reason: "write", message: `Cannot write "${dest}": ${errorDetail(e)}` }),
  ).finally(() => readBuffers.give(read.buffer)); // nothing refers to it any more: the output is written
}

/** The same as `anonymizeFile`, with reading and writing done asynchronously. */
export async function anonymizeFileAsync(input: FileInput, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Promise<AnonymizeFileResult> {
  return await processRead(input, readInput(input), ctx, files);
}

/**
 * The pipeline behind `anonymizeFiles` and the command, for streams that mix files with other
 * items (records passed through): files are read and anonymized one at a time **in input order**
 * (so which of two colliding inputs wins, and everything else, does not depend on I/O timing),
 * and written up to `limit` at a time in the runtime's I/O threads while the next ones are
 * anonymized.
 * Yields every item with its result (none for items that are not files), in input order.
 */
export async function* anonymizeStream<T>(
  items: AsyncIterable<T> | Iterable<T>,
  fileOf: (item: T) => FileInput | undefined,
  ctx: AnonymizeContext,
  files: AnonymizeFilesOptions,
  limit = 4,
): AsyncGenerator<{ item: T; result?: AnonymizeFileResult }> {
  const writes: Promise<{ item: T; result?: AnonymizeFileResult }>[] = [];
  for await (const item of items as AsyncIterable<T>) {
    const input = fileOf(item);
    if (input) writes.push(processRead(input, readInput(input), ctx, files).then((result) => ({ item, result })));
    else writes.push(Promise.resolve({ item }));
    if (writes.length >= Math.max(1, limit)) yield await writes.shift()!;
  }
  while (writes.length > 0) yield await writes.shift()!;
}

function readFileSyncBytes(path: string): Uint8Array {
  const b = readFileSyncNode(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function concat(parts: Uint8Array[], length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const madeDirs = new Set<string>();

async function writePartsAtomic(path: string, parts: Uint8Array[]): Promise<void> {
  const dir = dirname(path);
  if (!madeDirs.has(dir)) {
    await mkdir(dir, { recursive: true });
    if (madeDirs.size > 10_000) madeDirs.clear();
    madeDirs.add(dir);
  }
  const tmp = `${path}.rtexport-tmp-${process.pid}-${++tempCounter}`;
  const fd = await cb<number>((d) => fsOpen(tmp, "wx", d));
  try {
    let pending = parts.filter((p) => p.length > 0);
    while (pending.length > 0) {
      let n = await cb<number>((d) => fsWritev(fd, pending, (err, written) => d(err, written)));
      const rest: Uint8Array[] = [];
      for (const part of pending) {
        if (n >= part.length) n -= part.length;
        else { rest.push(part.subarray(n)); n = 0; }
      }
      pending = rest;
    }
  } catch (e) {
    await cb<void>((d) => fsClose(fd, (err) => d(err, undefined))).catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await cb<void>((d) => fsClose(fd, (err) => d(err, undefined)));
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Anonymizes files, yielding one result per input in input order. Up to `concurrency` files
 * (default 4) are read ahead and as many written behind, so I/O overlaps with the CPU work,
 * which runs in input order (see `anonymizeStream`). Files only: the stage `anonymizeRecords`
 * (lib/anonymize/stage.ts) takes records, de-identifies `patient` and `plan` records too, and
 * writes the ledger.
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
  for await (const { result } of anonymizeStream(inputs, (input) => input, ctx, files, files.concurrency ?? 4)) yield result!;
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
