/**
 * Anonymizing files: read each one's header (large values stay in the file), anonymize its data
 * set, write the result atomically (temporary file + rename, so a partially anonymized file never
 * appears at a final path) copying the large values from the input as it goes, and describe it
 * as a `file` record.
 */
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { close as fsClose, fstatSync, open as fsOpen, readSync, writev as fsWritev } from "node:fs";
import { mkdir, rename, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { type DicomFile, readDicomFd } from "../dicom/reader.ts";
import { DataSet } from "../dicom/dataset.ts";
import { PIXEL_DATA } from "../dicom/tag.ts";
import { EXPLICIT_VR_BIG_ENDIAN, NATIVE_TRANSFER_SYNTAXES, transferSyntaxEncoding } from "../dicom/uids.ts";
import { buildMeta, encodeDataSet, encodeDataSetParts, type EncodedPart, encodeMeta } from "../dicom/writer.ts";
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

/** Files under the given paths (directories walked, in name order); each remembers the path it was found under. */
export function* walkInputs(paths: readonly string[]): Generator<FileInput> {
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      yield { path: p };
      continue;
    }
    if (st.isDirectory()) yield* walkDirectory(p, p);
    else yield { path: p };
  }
}

function* walkDirectory(dir: string, root: string): Generator<FileInput> {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory()) yield* walkDirectory(full, root);
    else if (e.isFile() && !e.name.includes(".rtexport-tmp-")) yield { path: full, root };
  }
}

/** A path component from an identifier: no separators, no traversal, bounded length. */
function safeComponent(text: string): string {
  let s = text.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 100);
  if (s === "" || s === "." || s === "..") s = "_";
  return s;
}

let tempCounter = 0;

// Temporary names say which host and process write them (several machines may write one shared
// tree): `<name>.rtexport-tmp-<host>-<pid>-<n>`. Older runs wrote `<name>.rtexport-tmp-<pid>-<n>`.
const HOST_TAG = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);
const TEMP = /\.rtexport-tmp-(?:([0-9a-f]{8})-)?(\d+)-\d+$/;

/** A temporary name beside `path`, unique to this process. */
function tempName(path: string): string {
  return `${path}.rtexport-tmp-${HOST_TAG}-${process.pid}-${++tempCounter}`;
}

/** True for a temporary file a dead process of this host left (a killed run). */
function isStaleTemporaryFile(name: string): boolean {
  const m = TEMP.exec(name);
  if (!m || (m[1] !== undefined && m[1] !== HOST_TAG)) return false;
  const pid = Number(m[2]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false; // alive (or its pid was reused: left alone either way)
  } catch (e) {
    return (e as { code?: string }).code === "ESRCH";
  }
}

/** Removes the temporary files dead processes left in one directory. */
function sweepDirectory(dir: string): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.includes(".rtexport-tmp-") || !isStaleTemporaryFile(name)) continue;
    try {
      unlinkSync(join(dir, name));
      removed++;
    } catch { /* gone meanwhile, or not ours to remove */ }
  }
  return removed;
}

/**
 * Removes the temporary files that killed runs left anywhere under `root` (an output folder):
 * files named `*.rtexport-tmp-*` of processes of this host that no longer run. Returns how many.
 */
export function removeStaleTemporaryFiles(root: string): number {
  let removed = 0;
  const walk = (dir: string, depth: number) => {
    if (depth > 32) return;
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(join(dir, e.name), depth + 1);
      else if (e.name.includes(".rtexport-tmp-") && isStaleTemporaryFile(e.name)) {
        try {
          unlinkSync(join(dir, e.name));
          removed++;
        } catch { /* gone meanwhile */ }
      }
    }
  };
  try {
    if (statSync(root).isDirectory()) walk(root, 0);
  } catch { /* no output folder yet */ }
  return removed;
}

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
  | { ok: true; dest: string; parts: EncodedPart[]; bytes: number; record: FileRecord; ids: AnonymizedIds }
  | (AnonymizeFileResult & { ok: false });

/** Anonymizes and encodes one parsed file (the CPU part; no I/O). Values left in the file become source ranges. */
function prepare(input: FileInput, file: DicomFile, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Prepared {
  const src = input.path;
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
  let parts: EncodedPart[];
  try {
    const head = new Uint8Array(132);
    head.set([0x44, 0x49, 0x43, 0x4d], 128);
    const meta = encodeMeta(buildMeta(sopClass, sopInstance, ts));
    const body = transferSyntaxEncoding(ts).deflated ? [encodeDataSet(file.dataset, ts)] : encodeDataSetParts(file.dataset, ts);
    parts = [head, meta, ...body];
  } catch (e) {
    return { ok: false, input, reason: "write", message: `Cannot write "${dest}": ${errorDetail(e)}` };
  }
  let bytes = 0;
  for (const p of parts) bytes += p.length;
  const record: FileRecord = {
    type: "file",
    path: dest,
    bytes,
    sha256: "", // filled in by the writer, which hashes the bytes as it writes them
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

// Values up to this size are read with the header; larger bulk values (pixel data, big OB/OW/UN)
// stay in the input file and are copied to the output in chunks, so a 1 GiB object costs a chunk
// of memory, not a gigabyte.
const DEFER_THRESHOLD = 64 * 1024;

/** An input file open for reading: its descriptor (for copying the values left in it) and its parsed form. */
interface OpenInput {
  fd: number;
  file: DicomFile;
}

/**
 * Opens and parses an input, leaving its bulk values in the file. Synchronous on purpose: reads
 * of files in the page cache are a memory copy, and measured here the asynchronous calls cost
 * three times the CPU (thread pool hand-offs) and overlapped with nothing useful. Writes, which
 * can block on the disk, stay asynchronous.
 */
function openInput(input: FileInput): { ok: true; open: OpenInput } | { ok: false; result: AnonymizeFileResult } {
  let fd: number | undefined;
  try {
    fd = openSync(input.path, "r");
    const size = fstatSync(fd).size;
    // Big endian (retired) files are read whole: their values may have to change byte order.
    const file = readDicomFd(fd, size, { full: true, deferBulk: true, bulkThreshold: DEFER_THRESHOLD }, input.path);
    if (file.transferSyntaxUid === EXPLICIT_VR_BIG_ENDIAN) return { ok: true, open: { fd, file: readDicomFd(fd, size, { full: true }, input.path) } };
    return { ok: true, open: { fd, file } };
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    return { ok: false, result: { ok: false, input, reason: "unreadable", message: `Cannot read DICOM file "${input.path}": ${errorDetail(e)}` } };
  }
}

/**
 * Buffers for copying values from input to output (one per file being written), reused: a fresh
 * buffer per file was the largest cost of the garbage collector in the benchmark.
 */
class CopyBuffers {
  private free: Uint8Array[] = [];
  take(): Uint8Array {
    return this.free.pop() ?? new Uint8Array(COPY_CHUNK);
  }
  give(b: Uint8Array): void {
    if (this.free.length < 16) this.free.push(b);
  }
}
const COPY_CHUNK = 1 << 20;
const copyBuffers = new CopyBuffers();

function readRange(fd: number, buf: Uint8Array, length: number, position: number): void {
  let got = 0;
  while (got < length) {
    const r = readSync(fd, buf, got, length - got, position + got);
    if (r === 0) throw new Error(`the input file ended at offset ${position + got} while its value was being copied (changed while anonymized?)`);
    got += r;
  }
}

/**
 * The bytes of an encoded file in batches to write, source ranges read from `srcFd` into `buf`:
 * each batch holds at most one buffer of source bytes, and the buffer is reused once the caller
 * has written the batch and asks for the next.
 */
function* batches(parts: readonly EncodedPart[], srcFd: number, buf: Uint8Array): Generator<Uint8Array[]> {
  let batch: Uint8Array[] = [];
  let used = 0; // bytes of `buf` in the batch
  for (const p of parts) {
    if (p instanceof Uint8Array) {
      if (p.length > 0) batch.push(p);
      continue;
    }
    let pos = p.offset;
    let left = p.length;
    while (left > 0) {
      if (used === buf.length) {
        yield batch;
        batch = [];
        used = 0;
      }
      const n = Math.min(left, buf.length - used);
      const chunk = buf.subarray(used, used + n);
      readRange(srcFd, chunk, n, pos);
      batch.push(chunk);
      used += n;
      pos += n;
      left -= n;
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * Anonymizes one file and writes the result synchronously; never throws for a per-file problem
 * (the result says what went wrong).
 */
export function anonymizeFile(input: FileInput, ctx: AnonymizeContext, files: AnonymizeFilesOptions): AnonymizeFileResult {
  const opened = openInput(input);
  if (!opened.ok) return opened.result;
  const { fd, file } = opened.open;
  try {
    const p = prepare(input, file, ctx, files);
    if (!p.ok) return p;
    const dest = p.dest;
    let sha256 = "";
    try {
      mkdirSync(dirname(dest), { recursive: true });
      sweepDirectory(dirname(dest));
      const tmp = tempName(dest);
      const out = openSync(tmp, "wx");
      const buf = copyBuffers.take();
      try {
        const hash = createHash("sha256");
        for (const batch of batches(p.parts, fd, buf)) {
          for (const b of batch) {
            hash.update(b);
            let off = 0;
            while (off < b.length) off += writeSync(out, b, off, b.length - off);
          }
        }
        sha256 = hash.digest("hex");
      } catch (e) {
        closeSync(out);
        try { unlinkSync(tmp); } catch { /* already gone */ }
        throw e;
      } finally {
        copyBuffers.give(buf);
      }
      closeSync(out);
      renameSync(tmp, dest);
    } catch (e) {
      return { ok: false, input, reason: "write", message: `Cannot write "${dest}": ${errorDetail(e)}` };
    }
    p.record.sha256 = sha256;
    return { ok: true, input, record: p.record, ids: p.ids };
  } finally {
    closeSync(fd);
  }
}

function cb<T>(fn: (done: (err: Error | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/** The CPU part in input order, then the write in the background; resolves when the file is written. */
function processInput(input: FileInput, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Promise<AnonymizeFileResult> {
  const opened = openInput(input);
  if (!opened.ok) return Promise.resolve(opened.result);
  const { fd, file } = opened.open;
  let p: Prepared;
  try {
    p = prepare(input, file, ctx, files);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (!p.ok) {
    closeSync(fd);
    return Promise.resolve(p);
  }
  const { dest, record, ids, parts } = p;
  return writePartsAtomic(dest, parts, fd).then(
    (sha256): AnonymizeFileResult => {
      record.sha256 = sha256;
      return { ok: true, input, record, ids };
    },
    (e): AnonymizeFileResult => ({ ok: false, input, reason: "write", message: `Cannot write "${dest}": ${errorDetail(e)}` }),
  ).finally(() => closeSync(fd)); // the values left in the input are copied: nothing refers to it any more
}

/** The same as `anonymizeFile`, with the writing done asynchronously. */
export async function anonymizeFileAsync(input: FileInput, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Promise<AnonymizeFileResult> {
  return await processInput(input, ctx, files);
}

/**
 * The pipeline behind `anonymizeFiles` and the command, for streams that mix files with other
 * items (records passed through): files are read and anonymized one at a time **in input order**
 * (so which of two colliding inputs wins, and everything else, does not depend on I/O timing),
 * and written up to `limit` at a time in the runtime's I/O threads while the next ones are
 * anonymized. Each file in flight holds its header and one copy buffer (1 MiB), whatever its
 * size: pixel data and other large values are copied from the input as they are written.
 * Temporary files that a killed run left in the output folder are removed first.
 * Yields every item with its result (none for items that are not files), in input order.
 */
export async function* anonymizeStream<T>(
  items: AsyncIterable<T> | Iterable<T>,
  fileOf: (item: T) => FileInput | undefined,
  ctx: AnonymizeContext,
  files: AnonymizeFilesOptions,
  limit = 4,
): AsyncGenerator<{ item: T; result?: AnonymizeFileResult }> {
  if (files.out && !files.inPlace) removeStaleTemporaryFiles(files.out);
  const writes: Promise<{ item: T; result?: AnonymizeFileResult }>[] = [];
  for await (const item of items as AsyncIterable<T>) {
    const input = fileOf(item);
    if (input) writes.push(processInput(input, ctx, files).then((result) => ({ item, result })));
    else writes.push(Promise.resolve({ item }));
    if (writes.length >= Math.max(1, limit)) yield await writes.shift()!;
  }
  while (writes.length > 0) yield await writes.shift()!;
}

const madeDirs = new Set<string>();

async function writePartsAtomic(path: string, parts: EncodedPart[], srcFd: number): Promise<string> {
  const dir = dirname(path);
  if (!madeDirs.has(dir)) {
    await mkdir(dir, { recursive: true });
    sweepDirectory(dir);
    if (madeDirs.size > 10_000) madeDirs.clear();
    madeDirs.add(dir);
  }
  const tmp = tempName(path);
  const fd = await cb<number>((d) => fsOpen(tmp, "wx", d));
  let sha256: string;
  const buf = copyBuffers.take();
  try {
    const hash = createHash("sha256");
    for (const batch of batches(parts, srcFd, buf)) {
      for (const b of batch) hash.update(b);
      let pending = batch;
      while (pending.length > 0) {
        let n = await cb<number>((d) => fsWritev(fd, pending, (err, written) => d(err, written)));
        const rest: Uint8Array[] = [];
        for (const part of pending) {
          if (n >= part.length) n -= part.length;
          else { rest.push(part.subarray(n)); n = 0; }
        }
        pending = rest;
      }
    }
    sha256 = hash.digest("hex");
  } catch (e) {
    await cb<void>((d) => fsClose(fd, (err) => d(err, undefined))).catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  } finally {
    copyBuffers.give(buf);
  }
  await cb<void>((d) => fsClose(fd, (err) => d(err, undefined)));
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return sha256;
}

/**
 * Anonymizes files, yielding one result per input in input order. Up to `concurrency` files
 * (default 4) are read ahead and as many written behind, so I/O overlaps with the CPU work,
 * which runs in input order (see `anonymizeStream`).
 *
 * @example
 * ```ts
 * const ctx = createAnonymizeContext({ key: process.env.KEY! });
 * for await (const r of anonymizeFiles(walkInputs(["in/"]), ctx.options, { out: "anon/" }, ctx)) {
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
