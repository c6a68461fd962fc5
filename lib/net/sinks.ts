/**
 * Where the data set of a received DIMSE message goes while its PDVs arrive: a bounded buffer in
 * memory (identifiers, C-FIND answers), or a temporary Part 10 file (C-STORE data sets, written
 * as they arrive, optionally hashed and copied into a pooled buffer on the way). The association
 * (association.ts) picks the sink per message and feeds it; nothing here reads the network.
 */
import { createHash, type Hash } from "node:crypto";
import { closeSync, open as openAsync, openSync, unlinkSync, writeSync, writevSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { buildMeta, encodeMeta } from "../dicom/writer.ts";
import { ioErrorText } from "../fs/errors.ts";

/** A data set received with a message: in memory, or streamed into a file. */
export interface ReceivedFile {
  /** Temporary Part 10 file (meta header built from the command + the data set bytes as received). */
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Size of the file in bytes. */
  size: number;
  /**
   * Lower-case hex SHA-256 of the file, computed while it was written: always with
   * `hashReceived`; with `keepReceived`, whenever the file comes without `bytes` (no copy free,
   * or larger than the limit).
   */
  sha256?: string;
  /**
   * The whole file (meta header and data set) as written, when the association keeps copies
   * (`keepReceived`) and it fit. Valid until `release()`: the buffer then serves a later object.
   */
  bytes?: Uint8Array;
  /** Gives `bytes` back to the association (idempotent). Whoever keeps the file must call it. */
  release?: () => void;
}

/** Where a message's data set bytes go while they arrive. */
export interface Sink {
  /**
   * Takes bytes that may be a view into a reused read buffer: copy or consume them before
   * `flush`. False when the data set outgrew what the sink may hold (the association aborts).
   */
  write(b: Uint8Array): boolean;
  /**
   * Called at the end of each socket read. `atLeast`: the bytes given to `write` stay valid (the
   * reader owns them), so the sink may keep them until this many are pending; 0 (a reused read
   * buffer): they change after this returns and must be consumed now.
   */
  flush(atLeast?: number): void;
  end(): { dataset?: Uint8Array; file?: ReceivedFile; error?: string };
  discard(): void;
}

/**
 * A data set kept in memory, up to `limit` bytes: one buffer grown by doubling, so a peer that
 * sends a data set in many tiny PDVs costs its bytes, not an object per piece.
 */
export class MemorySink implements Sink {
  private buf = new Uint8Array(0);
  private length = 0;
  readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }
  write(b: Uint8Array): boolean {
    const need = this.length + b.length;
    if (need > this.limit) return false;
    if (need > this.buf.length) {
      const grown = new Uint8Array(Math.min(this.limit, Math.max(need, this.buf.length * 2, 4096)));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
    }
    this.buf.set(b, this.length);
    this.length = need;
    return true;
  }
  flush(_atLeast?: number): void {}
  end(): { dataset: Uint8Array } {
    return { dataset: this.buf.subarray(0, this.length) };
  }
  discard(): void {
    this.buf = new Uint8Array(0);
    this.length = 0;
  }
}

let tempCounter = 0;

function tempPath(dir: string): string {
  return join(dir, `.rtexport-rx-${process.pid}-${Date.now().toString(36)}-${(tempCounter++).toString(36)}.part`);
}

/**
 * Temporary files opened ahead of time. With one, a third of the objects of a 500-object C-GET
 * from Orthanc found none ready (the open's completion had not been handled yet) and created
 * theirs synchronously, on the path the peer waits on; with four, 0–5 of 500 did.
 */
const TEMP_FILES_AHEAD = 4;

/**
 * Opens the temporary file for the next received object in the background once an association
 * has received two (creating a file costs 0.2–0.5 ms here; done while the peer is still
 * sending, it is off the path between an object's last byte and our C-STORE-RSP). An
 * association that carries a single object (a storescu per file) opens nothing ahead.
 */
export class TempFiles {
  readonly dir: string;
  private readonly ready: { fd: number; path: string }[] = [];
  private opening = 0;
  private taken = 0;
  private stopped = false;
  private idle: (() => void)[] = [];

  constructor(dir: string) {
    this.dir = dir;
  }

  /** A new, empty file opened for writing (synchronously when none is ready; that throws on failure). */
  take(): { fd: number; path: string } {
    let f = this.ready.shift();
    if (!f) {
      const path = tempPath(this.dir);
      f = { fd: openSync(path, "wx"), path };
    }
    if (++this.taken >= 2) this.refill();
    return f;
  }

  /**
   * Opens the next file ahead, one at a time: creates in one folder serialize on its lock in the
   * kernel, and several in flight spun on it (perf, 4 at once: a sixth of the process's CPU in
   * rwsem_spin_on_owner on this 2-CPU host).
   */
  private refill(): void {
    if (this.stopped || this.opening > 0 || this.ready.length >= TEMP_FILES_AHEAD) return;
    const path = tempPath(this.dir);
    this.opening++;
    openAsync(path, "wx", (err, fd) => {
      this.opening--;
      if (err) this.stopped = true; // the synchronous open in take() reports the problem
      else if (this.stopped) discardTemp(fd, path);
      else this.ready.push({ fd, path });
      if (this.opening === 0) for (const f of this.idle.splice(0)) f();
      this.refill();
    });
  }

  /** Closes and removes the files opened ahead; resolves when no open is in flight any more. */
  dispose(): Promise<void> {
    this.stopped = true;
    for (const f of this.ready.splice(0)) discardTemp(f.fd, f.path);
    if (this.opening === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 2000); // an open never takes that long; never hang a close on it
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function discardTemp(fd: number, path: string): void {
  try {
    closeSync(fd);
    unlinkSync(path);
  } catch { /* already gone (staging removed) */ }
}

/** The first buffer a kept copy gets (grown by doubling up to the association's limit). */
const COPY_INITIAL = 1024 * 1024;

/**
 * Buffers that hold in-memory copies of received files (`Association.keepReceived`), so the
 * consumer hashes and parses an object without reading its file back. Two per association: one
 * being filled, one waiting for the consumer. When neither is free (a consumer that holds on to
 * them, or a peer that sends before our C-STORE-RSP) an object simply gets no copy.
 */
export class CopyPool {
  readonly limit: number;
  private readonly free: Uint8Array[] = [];
  private live = 0;
  private closed = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  take(): Uint8Array | undefined {
    if (this.closed) return undefined;
    const b = this.free.pop();
    if (b) return b;
    if (this.live >= 2) return undefined;
    this.live++;
    return new Uint8Array(Math.min(COPY_INITIAL, this.limit));
  }

  /** A larger buffer holding the first `used` bytes of `b`, or undefined past the limit (`b` is given back). */
  grow(b: Uint8Array, used: number, need: number): Uint8Array | undefined {
    if (need > this.limit) {
      this.give(b);
      return undefined;
    }
    let size = b.length;
    while (size < need) size *= 2;
    const n = new Uint8Array(Math.min(size, this.limit));
    n.set(b.subarray(0, used));
    return n;
  }

  give(b: Uint8Array): void {
    if (!this.closed) this.free.push(b);
  }

  /** The association ended: buffers given back from now on are dropped, not kept. */
  close(): void {
    this.closed = true;
    this.free.length = 0;
  }
}

/** Writes all of `parts` at the file's current position (writev; the rest with write if it was short). */
function writeAllv(fd: number, parts: Uint8Array[], total: number): void {
  let done = parts.length === 1 ? writeSync(fd, parts[0]) : writevSync(fd, parts);
  if (done === total) return;
  for (const p of parts) {
    if (done >= p.length) {
      done -= p.length;
      continue;
    }
    let o = done;
    while (o < p.length) o += writeSync(fd, p, o, p.length - o);
    done = 0;
  }
}

/**
 * Writes a received data set to a temporary file as its PDVs arrive, behind a meta header: the
 * pieces of one socket read go out with one writev, optionally hashed on the way.
 */
export class FileSink implements Sink {
  private fd: number | undefined;
  private size = 0;
  private error: string | undefined;
  readonly path: string;
  private readonly info: Omit<ReceivedFile, "path" | "size">;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private hash: Hash | undefined;
  private readonly copies: CopyPool | undefined;
  /** The in-memory copy being filled (`copies`), and how much of it is used. */
  private copy: Uint8Array | undefined;
  private copied = 0;

  constructor(files: TempFiles, info: Omit<ReceivedFile, "path" | "size">, sourceAet: string, hash: boolean, copies?: CopyPool) {
    this.info = info;
    this.copies = copies;
    this.copy = copies?.take();
    // Kept copies are for hashing without reading the file back: an object that gets none is
    // hashed on the way instead (see `dropCopy`).
    this.hash = hash || (copies && !this.copy) ? createHash("sha256") : undefined;
    let f: { fd: number; path: string };
    try {
      f = files.take();
    } catch (e) {
      this.path = join(files.dir, ".rtexport-rx-*.part");
      this.error = `Cannot write "${this.path}": ${ioErrorText(e)}`;
      return;
    }
    this.path = f.path;
    this.fd = f.fd;
    try {
      const meta = encodeMeta(buildMeta(info.sopClassUid, info.sopInstanceUid, info.transferSyntaxUid, sourceAet));
      const head = new Uint8Array(132 + meta.length);
      head.set([0x44, 0x49, 0x43, 0x4d], 128);
      head.set(meta, 132);
      this.write(head);
    } catch (e) {
      this.fail(e);
    }
  }

  private fail(e: unknown): void {
    this.error = `Cannot write "${this.path}": ${ioErrorText(e)}`;
    this.discard();
  }

  write(b: Uint8Array): boolean {
    if (this.fd === undefined) return true; // failed: the rest of the data set is read and dropped
    this.pending.push(b);
    this.pendingBytes += b.length;
    if (this.copy) {
      const need = this.copied + b.length;
      if (need > this.copies!.limit) this.dropCopy();
      else if (need > this.copy.length) this.copy = this.copies!.grow(this.copy, this.copied, need);
      if (this.copy) {
        this.copy.set(b, this.copied);
        this.copied += b.length;
      }
    }
    this.hash?.update(b);
    return true;
  }

  /**
   * The object outgrew the copies' limit: what the copy holds is hashed and the buffer given
   * back, and the rest is hashed as it arrives. So a large object (an RT Dose past 8 MB) comes
   * with its hash, never read back from its file (synchronously, on the event loop).
   */
  private dropCopy(): void {
    this.hash ??= createHash("sha256").update(this.copy!.subarray(0, this.copied));
    this.copies!.give(this.copy!);
    this.copy = undefined;
  }

  flush(atLeast = 0): void {
    if (this.fd === undefined || this.pendingBytes === 0 || this.pendingBytes < atLeast) return;
    try {
      writeAllv(this.fd, this.pending, this.pendingBytes);
      this.size += this.pendingBytes;
    } catch (e) {
      this.fail(e);
    }
    this.pending = [];
    this.pendingBytes = 0;
  }

  end(): { file?: ReceivedFile; error?: string } {
    this.flush();
    if (this.error || this.fd === undefined) {
      this.discard();
      return { error: this.error ?? "data set discarded" };
    }
    try {
      closeSync(this.fd);
      this.fd = undefined;
    } catch (e) {
      this.fail(e);
      return { error: this.error };
    }
    const file: ReceivedFile = { ...this.info, path: this.path, size: this.size };
    if (this.hash) file.sha256 = this.hash.digest("hex");
    if (this.copy) {
      // The closure holds the buffer until it is given back, and the pool (not this sink) after.
      let copy: Uint8Array | undefined = this.copy;
      const pool = this.copies!;
      this.copy = undefined;
      file.bytes = copy.subarray(0, this.copied);
      file.release = () => {
        if (!copy) return;
        pool.give(copy);
        copy = undefined;
        file.bytes = undefined;
      };
    }
    return { file };
  }

  discard(): void {
    this.pending = [];
    this.pendingBytes = 0;
    if (this.copy) this.copies!.give(this.copy);
    this.copy = undefined;
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch { /* already closed */ }
      this.fd = undefined;
    }
    try {
      if (this.path) unlinkSync(this.path);
    } catch { /* not created */ }
  }
}

/** Names of the temporary files received objects are written to (the group is the writer's pid). */
export const TEMP_FILE_PATTERN = /^\.rtexport-rx-(\d+)-[0-9a-z]+-[0-9a-z]+\.part$/;
