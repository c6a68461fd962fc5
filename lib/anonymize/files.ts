/**
 * Anonymizing files: read each in full, anonymize its data set, write the result atomically
 * (temporary file + rename, so a partially anonymized file never appears at a final path) and
 * describe it as a `file` record.
 */
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync as readFileSyncNode, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { type DicomFile, parseDicom } from "../dicom/reader.ts";
import { buildMeta, encodeDataSet, encodeMeta } from "../dicom/writer.ts";
import type { FileRecord } from "../records/types.ts";
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

/** The encoded parts of a Part 10 file: preamble + `DICM`, meta information, data set. */
function encodeParts(file: DicomFile, sopClass: string, sopInstance: string): Uint8Array[] {
  const ts = file.transferSyntaxUid;
  const head = new Uint8Array(132);
  head.set([0x44, 0x49, 0x43, 0x4d], 128);
  // The data set is encoded as it was read (same transfer syntax); only the meta header is new.
  return [head, encodeMeta(buildMeta(sopClass, sopInstance, ts)), encodeDataSet(file.dataset, ts)];
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
    category: "dicom",
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

/** The same as `anonymizeFile`, with reading and writing done asynchronously (overlaps with other files' CPU work). */
export async function anonymizeFileAsync(input: FileInput, ctx: AnonymizeContext, files: AnonymizeFilesOptions): Promise<AnonymizeFileResult> {
  let data: Uint8Array;
  try {
    const b = await readFile(input.path);
    data = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    return { ok: false, input, reason: "unreadable", message: `Cannot read DICOM file "${input.path}": ${errorDetail(e)}` };
  }
  const p = prepare(input, data, ctx, files);
  if (!p.ok) return p;
  const bytes = concat(p.parts, p.bytes);
  // Web Crypto digests off the main thread (in both runtimes), overlapping with the write.
  const digest = crypto.subtle.digest("SHA-256", bytes);
  try {
    await writeBytesAtomic(p.dest, bytes);
  } catch (e) {
    return { ok: false, input, reason: "write", message: `Cannot write "${p.dest}": ${errorDetail(e)}` };
  }
  p.record.sha256 = hex(new Uint8Array(await digest));
  return { ok: true, input, record: p.record, ids: p.ids };
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += bytes[i].toString(16).padStart(2, "0");
  return s;
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

async function writeBytesAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path);
  if (!madeDirs.has(dir)) {
    await mkdir(dir, { recursive: true });
    if (madeDirs.size > 10_000) madeDirs.clear();
    madeDirs.add(dir);
  }
  const tmp = `${path}.rtexport-tmp-${process.pid}-${++tempCounter}`;
  try {
    await writeFile(tmp, bytes, { flag: "wx" });
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Anonymizes files, yielding one result per input in input order. Up to `concurrency` files
 * (default 4) are in flight, so reading and writing overlap with the CPU work on other files;
 * the keyed results do not depend on the order.
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
  yield* orderedMap(inputs, files.concurrency ?? 4, (input) => anonymizeFileAsync(input, ctx, files));
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
