import { createHash } from "node:crypto";
import {
  closeSync, constants as fsConstants, fstatSync, fsync as fsyncCb, futimesSync, open as openCb, openSync, readdirSync, readSync, statSync,
  unlinkSync, writeSync,
} from "node:fs";
import { link, mkdir, open, stat, unlink, utimes, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { hostTag, processAlive } from "../runtime/mod.ts";

/** What happened to one file. */
export interface CopyOutcome {
  status: "copied" | "identical" | "conflict";
  source: string;
  dest: string;
  bytes: number;
  sha256: string;
  /** For a conflict: the hash of the different file already at `dest`. */
  existingSha256?: string;
}

/**
 * How {@linkcode copyFileVerified} copies: the expected hash of the source, whether to read the copy back.
 */
export interface CopyOptions {
  /** The source must have this sha256 (from a catalog or an earlier stage); a mismatch is an error. */
  expectedSha256?: string;
  /** Give the copy the source's modification time (default true). */
  keepMtime?: boolean;
  /** Read the copy back and compare its hash before it is put in place (default true). */
  verify?: boolean;
  /**
   * Abandons the copy when aborted: its temporary file is removed and nothing appears at the
   * destination; the promise rejects with the signal's reason. A copy already linked into place stays.
   */
  signal?: AbortSignal;
}

const CHUNK = 1 << 20;
/**
 * Files up to this size are copied with synchronous reads and writes (page-cache copies of a few
 * microseconds) and only the flush to disk runs on the thread pool: measured on 10,000 files of
 * 1–64 KiB, each asynchronous call cost more CPU than the copy itself.
 */
const SMALL = 256 * 1024;
/** Destinations this process is writing now (two writes of one destination at once are refused). */
const inFlight = new Set<string>();

// Copy buffers are reused: a fresh 1 MiB buffer per file (two with the read-back) kept the garbage
// collector busy for a fifth of a copy-files run of small files.
const spare: Buffer[] = [];
function takeBuffer(): Buffer {
  return spare.pop() ?? Buffer.allocUnsafe(CHUNK);
}
function giveBuffer(b: Buffer): void {
  if (spare.length < 16) spare.push(b);
}

// ---- temporary names -------------------------------------------------------------------------
// Every copy is written under a name of its own, `.<name>.<host>-<pid>-<n>.part`, beside its
// destination: several processes, on several machines, writing one shared tree never open, truncate
// or remove each other's temporary files. This process removes its own when a copy ends and, for
// the ones still open, when it exits; a killed process's are removed by the next process that
// writes into the same folder (see `sweepStaleTemps`).

const HOST = hostTag();
let tempCounter = 0;
/** Temporary files this process has open now (removed on exit if still there). */
const liveTemps = new Set<string>();
let exitHookInstalled = false;

/** The longest part of a destination's name kept in its temporary name (file names stop at 255 bytes). */
const TEMP_NAME_BYTES = 100;

function truncateUtf8(s: string, max: number): string {
  const bytes = new TextEncoder().encode(s);
  if (bytes.length <= max) return s;
  return new TextDecoder().decode(bytes.subarray(0, max)).replace(/\uFFFD+$/, "");
}

/** A fresh temporary name for `dest`, unique to this process. */
export function tempNameFor(dest: string): string {
  return join(dirname(dest), `.${truncateUtf8(basename(dest), TEMP_NAME_BYTES)}.${HOST}-${process.pid}-${++tempCounter}.part`);
}

/** The parts of a temporary name this module makes (`.<name>.<host>-<pid>-<n>.part`); undefined for any other name. */
export function parseTempName(name: string): { host: string; pid: number; n: number } | undefined {
  const m = /^\..+\.([A-Za-z0-9_-]+)-(\d+)-(\d+)\.part$/.exec(name);
  return m ? { host: m[1], pid: Number(m[2]), n: Number(m[3]) } : undefined;
}

function trackTemp(tmp: string): void {
  liveTemps.add(tmp);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const t of liveTemps) {
        try {
          unlinkSync(t);
        } catch { /* gone */ }
      }
    });
  }
}

function untrackTemp(tmp: string): void {
  liveTemps.delete(tmp);
}

/** Processes of other machines known to be gone (`<host tag>-<pid>`): their temporary files are removed at once. */
const goneOwners = new Set<string>();

/**
 * Tells the copy layer that a process (of this machine or another) is gone: the ledger says its lease ran
 * out and its work was taken over, even if it is only stopped. Its temporary files are removed when this process next
 * writes into their folders, without waiting for {@link STALE_TEMP_MS}.
 */
export function markProcessGone(host: string, pid: number): void {
  const owner = `${hostTag(host)}-${pid}`;
  if (goneOwners.has(owner)) return;
  goneOwners.add(owner);
  // Folders swept while it still counted as alive are swept again on their next write.
  sweptDirs.clear();
  knownDirs.clear();
}

/**
 * How old (by change time) another machine's temporary file must be before it counts as left
 * behind: a copy in progress changes its file at least once per megabyte written, and sets its
 * time just before the link that ends it.
 */
export const STALE_TEMP_MS = 15 * 60_000;

/**
 * Removes temporary files that dead processes left in `dir`: this machine's when their process
 * is gone, another machine's when it is known gone ({@link markProcessGone}) or its file is
 * unchanged for {@link STALE_TEMP_MS}, and the single
 * `.<name>.rtexport-part` names of older versions likewise after that time. Returns the names removed.
 * Called once per folder per process before the first copy into it.
 */
export function sweepStaleTemps(dir: string, now = Date.now()): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(".") || (!name.endsWith(".part") && !name.endsWith(".rtexport-part"))) continue;
    const path = join(dir, name);
    if (liveTemps.has(path)) continue;
    const t = parseTempName(name);
    let stale: boolean;
    // Known gone first: a process of this machine that is stopped (not dead) but lost its lease
    // and its work to another worker still looks alive, and its half-written copy is garbage.
    if (t && goneOwners.has(`${t.host}-${t.pid}`)) stale = true;
    else if (t && t.host === HOST) stale = t.pid === process.pid || !processAlive(t.pid);
    else if (t || name.endsWith(".rtexport-part")) {
      const s = statSync(path, { throwIfNoEntry: false });
      stale = s !== undefined && now - s.ctimeMs > STALE_TEMP_MS;
    } else stale = false;
    if (!stale) continue;
    try {
      unlinkSync(path);
      removed.push(name);
    } catch { /* removed meanwhile */ }
  }
  return removed;
}

// Folders this process has made or found: one mkdir (and one sweep of leftovers) per folder, not
// one per file. A folder removed meanwhile is made again when creating the temporary file fails
// with ENOENT.
const knownDirs = new Set<string>();
const sweptDirs = new Set<string>();
async function ensureDir(dir: string): Promise<void> {
  if (knownDirs.has(dir)) return;
  await mkdir(dir, { recursive: true });
  if (knownDirs.size > 100_000) knownDirs.clear();
  knownDirs.add(dir);
  sweepOnce(dir);
}

function sweepOnce(dir: string): void {
  if (sweptDirs.has(dir)) return;
  if (sweptDirs.size > 100_000) sweptDirs.clear();
  sweptDirs.add(dir);
  sweepStaleTemps(dir);
}

const EXCL = fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL;

/**
 * Creates a new temporary file for `dest` (exclusively: an existing file is never opened). A name
 * that exists (another machine with the same host name and process id) is skipped for the next.
 */
async function createTemp(dest: string): Promise<{ fh: FileHandle; tmp: string }> {
  for (let attempt = 0;; attempt++) {
    const tmp = tempNameFor(dest);
    // Tracked before it exists: a process that exits while the open is in flight still removes it.
    trackTemp(tmp);
    try {
      const fh = await open(tmp, EXCL, 0o644);
      return { fh, tmp };
    } catch (e) {
      untrackTemp(tmp);
      const code = (e as NodeJS.ErrnoException).code;
      if (attempt >= 4) throw e;
      if (code === "ENOENT") {
        knownDirs.delete(dirname(dest));
        await ensureDir(dirname(dest));
      } else if (code !== "EEXIST") throw e;
    }
  }
}

/** Reads into `buf` from `pos` until it is full or the file ends; returns the bytes read. */
async function readFull(fh: FileHandle, buf: Buffer, pos: number): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const { bytesRead } = await fh.read(buf, n, buf.length - n, pos + n);
    if (bytesRead === 0) break;
    n += bytesRead;
  }
  return n;
}

/** sha256 and size of a file, read in 1 MiB chunks. */
export async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const fh = await open(path, "r");
  try {
    return await hashHandle(fh);
  } finally {
    await fh.close();
  }
}

async function hashHandle(fh: FileHandle, signal?: AbortSignal): Promise<{ sha256: string; bytes: number }> {
  const h = createHash("sha256");
  const buf = takeBuffer();
  try {
    let bytes = 0;
    let pos = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
      pos += bytesRead;
    }
    return { sha256: h.digest("hex"), bytes };
  } finally {
    giveBuffer(buf);
  }
}

/**
 * The read-back check: the copy must hold exactly the bytes written. A copy that fit in one
 * buffer is compared byte for byte with that buffer (no second SHA-256 pass); a longer one is
 * hashed again and compared with the hash taken while copying. (Comparing it with a second read
 * of the source would save the hash, but reads a vault on a file server twice.)
 */
async function sameContent(copy: FileHandle, written: Buffer | undefined, bytes: number, sha256: string, signal?: AbortSignal): Promise<boolean> {
  if (!written) {
    const check = await hashHandle(copy, signal);
    return check.bytes === bytes && check.sha256 === sha256;
  }
  const a = takeBuffer();
  try {
    // One byte more than written fits, so a copy that grew is caught too.
    const r = a.length > bytes ? a : Buffer.allocUnsafe(bytes + 1);
    const n = await readFull(copy, r, 0);
    return n === bytes && r.subarray(0, n).equals(written.subarray(0, bytes));
  } finally {
    giveBuffer(a);
  }
}

/**
 * Whether something is at `path`. Synchronous: a stat is served from the kernel's caches in
 * microseconds, where the promise version costs a thread-pool round trip and, for the usual
 * answer (no file yet), an exception (~70 µs per file in a profile of 10,000 small files).
 */
function exists(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false }) !== undefined;
}

/**
 * Copies one file so that `dest` either does not exist or is complete and verified: the data goes
 * to a temporary file of this process beside `dest` ({@link tempNameFor}), is flushed to disk,
 * read back and hashed, and is then linked into place — a link fails rather than replace a file
 * that appeared meanwhile (another process or machine may write the same tree), so a different
 * file at `dest` is never overwritten (it is reported as a conflict) and no partial file is ever
 * at `dest`. A file already at `dest` with the same content is left alone ("identical").
 *
 * @example
 * ```ts
 * const { status, sha256 } = await copyFileVerified("vault/plan.xml", "export/P/Plan1/Plan_Files/plan.xml");
 * ```
 */
export async function copyFileVerified(source: string, dest: string, opts: CopyOptions = {}): Promise<CopyOutcome> {
  const verify = opts.verify ?? true;
  const srcStat = statSync(source);
  if (!srcStat.isFile()) throw new Error(`Cannot copy "${source}": not a regular file`);
  if (inFlight.has(dest)) throw new Error(`Cannot copy "${source}": "${dest}" is already being written by this run`);
  if (exists(dest)) {
    sweepOnce(dirname(dest)); // a killed run may have left a temporary file beside it
    // The source is read: an expected hash is a claim about the source (a catalog's), not its bytes.
    const s = await hashFile(source);
    if (opts.expectedSha256 && opts.expectedSha256.toLowerCase() !== s.sha256) {
      throw new Error(`Cannot copy "${source}": its sha256 ${s.sha256} differs from the expected ${opts.expectedSha256}`);
    }
    return await compareExisting(source, dest, s.sha256);
  }

  await ensureDir(dirname(dest));
  inFlight.add(dest);
  try {
    if (srcStat.size <= SMALL) return await copySmallFile(source, dest, srcStat, verify, opts);
    return await copyLargeFile(source, dest, srcStat, verify, opts);
  } finally {
    inFlight.delete(dest);
  }
}

async function copyLargeFile(
  source: string, dest: string, srcStat: { atime: Date; mtime: Date }, verify: boolean, opts: CopyOptions,
): Promise<CopyOutcome> {
  let src: FileHandle | undefined;
  let out: FileHandle | undefined;
  let tmp: string | undefined;
  const buf = takeBuffer();
  try {
    src = await open(source, "r");
    ({ fh: out, tmp } = await createTemp(dest));
    const h = createHash("sha256");
    let bytes = 0;
    let chunks = 0;
    for (;;) {
      opts.signal?.throwIfAborted();
      const bytesRead = await readFull(src, buf, bytes);
      if (bytesRead === 0) break;
      chunks++;
      h.update(buf.subarray(0, bytesRead));
      let written = 0;
      while (written < bytesRead) {
        const { bytesWritten } = await out.write(buf, written, bytesRead - written, bytes + written);
        written += bytesWritten;
      }
      bytes += bytesRead;
      if (bytesRead < CHUNK) break;
    }
    const sha256 = h.digest("hex");
    if (opts.expectedSha256 && opts.expectedSha256.toLowerCase() !== sha256) {
      throw new Error(`Cannot copy "${source}": its sha256 ${sha256} differs from the expected ${opts.expectedSha256}`);
    }
    opts.signal?.throwIfAborted();
    await out.sync();
    if (verify && !(await sameContent(out, chunks <= 1 ? buf : undefined, bytes, sha256, opts.signal))) {
      throw new Error(`Cannot copy "${source}": the copy read back differs from the source (disk or file system fault)`);
    }
    await out.close();
    out = undefined;
    if (opts.keepMtime ?? true) await utimes(tmp, srcStat.atime, srcStat.mtime);
    opts.signal?.throwIfAborted();
    return await linkIntoPlace(tmp, dest, source, bytes, sha256);
  } finally {
    giveBuffer(buf);
    await src?.close();
    if (out) await out.close().catch(() => {});
    if (tmp) {
      await unlink(tmp).catch(() => {});
      untrackTemp(tmp);
    }
  }
}

/**
 * Links the finished temporary file at `dest`. A link fails rather than replace a file, so one
 * that appeared meanwhile is compared instead: the same content is "identical", else a conflict.
 */
async function linkIntoPlace(tmp: string, dest: string, source: string, bytes: number, sha256: string): Promise<CopyOutcome> {
  try {
    await link(tmp, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    return await compareExisting(source, dest, sha256);
  }
  return { status: "copied", source, dest, bytes, sha256 };
}

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => openCb(path, flags, 0o644, (e, fd) => (e ? reject(e) : resolve(fd))));
}

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsyncCb(fd, (e) => (e ? reject(e) : resolve())));
}

function readAllSync(fd: number, buf: Buffer): number {
  let n = 0;
  for (;;) {
    const r = readSync(fd, buf, n, buf.length - n, n);
    if (r === 0 || n + r === buf.length) return n + r;
    n += r;
  }
}

/** `copyFileVerified` for a small file: the same steps and guarantees, fewer thread-pool trips. */
async function copySmallFile(
  source: string, dest: string, srcStat: { size: number; atime: Date; mtime: Date }, verify: boolean, opts: CopyOptions,
): Promise<CopyOutcome> {
  const buf = takeBuffer();
  const back = verify ? takeBuffer() : undefined;
  let out: number | undefined;
  let tmp: string | undefined;
  try {
    const fdIn = openSync(source, "r");
    let bytes: number;
    try {
      bytes = readAllSync(fdIn, buf);
    } finally {
      closeSync(fdIn);
    }
    if (bytes === buf.length) throw new Error(`Cannot copy "${source}": it grew while it was being copied`);
    const sha256 = createHash("sha256").update(buf.subarray(0, bytes)).digest("hex");
    if (opts.expectedSha256 && opts.expectedSha256.toLowerCase() !== sha256) {
      throw new Error(`Cannot copy "${source}": its sha256 ${sha256} differs from the expected ${opts.expectedSha256}`);
    }
    // Creating a file is a journaled metadata change: it stays on the thread pool, in parallel.
    for (let attempt = 0; out === undefined; attempt++) {
      opts.signal?.throwIfAborted();
      const name = tempNameFor(dest);
      // Tracked before it exists: a process that exits while the open is in flight still removes it.
      trackTemp(name);
      try {
        out = await openFd(name, EXCL);
        tmp = name;
      } catch (e) {
        untrackTemp(name);
        const code = (e as NodeJS.ErrnoException).code;
        if (attempt >= 4 || (code !== "ENOENT" && code !== "EEXIST")) throw e;
        if (code === "ENOENT") {
          knownDirs.delete(dirname(dest));
          await ensureDir(dirname(dest));
        }
      }
    }
    for (let w = 0; w < bytes;) w += writeSync(out, buf, w, bytes - w, w);
    opts.signal?.throwIfAborted();
    await fsyncFd(out);
    if (back) {
      const n = readAllSync(out, back);
      if (n !== bytes || !back.subarray(0, n).equals(buf.subarray(0, bytes))) {
        throw new Error(`Cannot copy "${source}": the copy read back differs from the source (disk or file system fault)`);
      }
    }
    if (opts.keepMtime ?? true) futimesSync(out, srcStat.atime, srcStat.mtime);
    closeSync(out);
    out = undefined;
    opts.signal?.throwIfAborted();
    return await linkIntoPlace(tmp!, dest, source, bytes, sha256);
  } finally {
    giveBuffer(buf);
    if (back) giveBuffer(back);
    if (out !== undefined) closeSync(out);
    if (tmp) {
      try {
        unlinkSync(tmp);
      } catch { /* not there */ }
      untrackTemp(tmp);
    }
  }
}

/** How {@linkcode placeStagedFile} places a staged file. */
export interface StagedFileOptions extends CopyOptions {
  /**
   * What this process wrote into the staged file: its size, and the SHA-256 of the bytes it handed
   * to the file system, taken as they were written (a received object, hashed on arrival). The
   * file is then not read back to be hashed: its size is checked, it is flushed and linked.
   */
  written?: { sha256: string; bytes: number };
}

/**
 * Puts a file this run staged (a received object) into place without copying it, when the
 * staging folder is on the destination's file system: the file is hashed (or, with `written`,
 * its size checked against what was written), flushed to disk and linked at `dest` — never
 * replacing a file there (the same content is "identical", a different one a conflict, as with
 * `copyFileVerified`). The staged name stays for its owner to remove. Across file systems, or
 * where hard links are refused, the file is copied instead.
 */
export async function placeStagedFile(source: string, dest: string, opts: StagedFileOptions = {}): Promise<CopyOutcome> {
  const written = opts.written;
  const expect = (sha256: string) => {
    if (opts.expectedSha256 && opts.expectedSha256.toLowerCase() !== sha256) {
      throw new Error(`Cannot copy "${source}": its sha256 ${sha256} differs from the expected ${opts.expectedSha256}`);
    }
  };
  if (exists(dest)) {
    sweepOnce(dirname(dest));
    const sha256 = written ? written.sha256 : (await hashFile(source)).sha256;
    expect(sha256);
    return await compareExisting(source, dest, sha256);
  }
  await ensureDir(dirname(dest));
  let sha256: string;
  let bytes: number;
  if (written) {
    // Opened (synchronously: the file exists, no metadata changes) only to be checked and flushed.
    const fd = openSync(source, "r+");
    try {
      const size = fstatSync(fd).size;
      if (size !== written.bytes) throw new Error(`Cannot copy "${source}": it holds ${size} bytes where ${written.bytes} were written`);
      expect(written.sha256);
      opts.signal?.throwIfAborted();
      await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
    ({ sha256, bytes } = written);
  } else {
    // Opened for writing only so that the flush also works on Windows; nothing is written.
    const fh = await open(source, "r+");
    try {
      ({ sha256, bytes } = await hashHandle(fh, opts.signal));
      expect(sha256);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  opts.signal?.throwIfAborted();
  try {
    await link(source, dest);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return await compareExisting(source, dest, sha256);
    if (code === "EXDEV" || code === "EPERM" || code === "ENOTSUP" || code === "EMLINK") return await copyFileVerified(source, dest, { ...opts, expectedSha256: sha256 });
    throw e;
  }
  return { status: "copied", source, dest, bytes, sha256 };
}

async function compareExisting(source: string, dest: string, knownSha?: string): Promise<CopyOutcome> {
  const [s, d] = await Promise.all([knownSha ? Promise.resolve(undefined) : hashFile(source), hashFile(dest)]);
  const sha256 = knownSha?.toLowerCase() ?? s!.sha256;
  if (d.sha256 === sha256) return { status: "identical", source, dest, bytes: d.bytes, sha256 };
  return { status: "conflict", source, dest, bytes: s?.bytes ?? (await stat(source)).size, sha256, existingSha256: d.sha256 };
}
