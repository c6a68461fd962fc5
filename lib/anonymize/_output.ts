/**
 * Writing anonymize's outputs: temporary names, the removal of temporary files killed runs left,
 * and the copy of an encoded file (bytes and ranges of its input) to a temporary file renamed
 * into place, hashed as it is written.
 */
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import type { EncodedPart } from "../dicom/writer.ts";
import { removeStale } from "../fs/stale.ts";

let tempCounter = 0;

// Temporary names say which host and process write them (several machines may write one shared
// tree): `<name>.rtexport-tmp-<host>-<pid>-<n>`. Older runs wrote `<name>.rtexport-tmp-<pid>-<n>`.
const HOST_TAG = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);

/** A temporary name beside `path`, unique to this process. */
export function tempName(path: string): string {
  return `${path}.rtexport-tmp-${HOST_TAG}-${process.pid}-${++tempCounter}`;
}

// This host's temporary files (and those of runs before names carried the host); the pid is the
// first group, as lib/fs/stale.ts's removeStale expects. Other hosts' are theirs to remove.
const STALE = new RegExp(`\\.rtexport-tmp-(?:${HOST_TAG}-)?(\\d+)-\\d+$`);

/** Removes the temporary files dead processes of this host left in one directory. */
export function sweepDirectory(dir: string): number {
  return removeStale(dir, STALE).length;
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
    }
    if (entries.some((e) => e.name.includes(".rtexport-tmp-"))) removed += sweepDirectory(dir);
  };
  try {
    if (statSync(root).isDirectory()) walk(root, 0);
  } catch { /* no output folder yet */ }
  return removed;
}

/** Where the ranges of an encoded file are read: the input's bytes when it was read whole, else its descriptor. */
export type Source = { bytes: Uint8Array; fd?: undefined } | { fd: number; bytes?: undefined };

/**
 * Buffers for copying values from input to output (one per file being written), reused: a fresh
 * buffer per file was the largest cost of the garbage collector in the benchmark.
 */
export class CopyBuffers {
  private free: Uint8Array[] = [];
  take(): Uint8Array {
    return this.free.pop() ?? new Uint8Array(COPY_CHUNK);
  }
  give(b: Uint8Array): void {
    if (this.free.length < 16) this.free.push(b);
  }
}
const COPY_CHUNK = 1 << 20;
export const copyBuffers: CopyBuffers = new CopyBuffers();

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
export function* batches(parts: readonly EncodedPart[], source: Source, buf: Uint8Array): Generator<Uint8Array[]> {
  let batch: Uint8Array[] = [];
  let used = 0; // bytes of `buf` in the batch
  for (const p of parts) {
    if (p instanceof Uint8Array) {
      if (p.length > 0) batch.push(p);
      continue;
    }
    if (source.bytes) {
      // The whole input is in memory: its ranges are written from there, not copied again.
      if (p.offset + p.length > source.bytes.length) throw new Error(`a value ends at offset ${p.offset + p.length}, past the end of the input`);
      batch.push(source.bytes.subarray(p.offset, p.offset + p.length));
      continue;
    }
    const srcFd = source.fd;
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

const madeDirs = new Set<string>();

/** Makes the directory of an output (once per run) and sweeps the temporary files dead runs left in it. */
export function prepareDirectorySync(dir: string): void {
  if (madeDirs.has(dir)) return;
  mkdirSync(dir, { recursive: true });
  sweepDirectory(dir);
  if (madeDirs.size > 10_000) madeDirs.clear();
  madeDirs.add(dir);
}

/**
 * Writes buffers one call each: Deno's writevSync joins them into one new buffer first (400 µs
 * for a CT slice, measured), where separate writes cost a few µs in both runtimes.
 */
function writeAllSync(fd: number, batch: Uint8Array[]): void {
  for (const b of batch) {
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
  }
}

/**
 * Writes an encoded file atomically with synchronous calls: a temporary file beside `dest`, the
 * parts in order (ranges from `source`), then a rename. Returns the SHA-256 of what was written.
 */
export function writeOutputSync(dest: string, parts: readonly EncodedPart[], source: Source): string {
  prepareDirectorySync(dirname(dest));
  const tmp = tempName(dest);
  const out = openSync(tmp, "wx");
  const buf = copyBuffers.take();
  let sha256: string;
  try {
    const hash = createHash("sha256");
    for (const batch of batches(parts, source, buf)) {
      for (const b of batch) hash.update(b);
      writeAllSync(out, batch);
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
  try {
    renameSync(tmp, dest);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  return sha256;
}
