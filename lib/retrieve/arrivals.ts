/**
 * Objects received during a retrieve (by C-MOVE into the in-process SCP, or by C-GET on the
 * query association), kept in a staging folder until the planner decides which ones belong to
 * the selected plans.
 *
 * The peer waits for our C-STORE-RSP before it sends the next object, so `accept` does as
 * little as possible: the network layer wrote the object into a temporary file in the staging
 * folder, and that file stays where it is: no rename, no unlink. Its header is read, and with
 * `hash` its SHA-256 computed, right after the C-STORE-RSP went out, while the peer prepares the
 * next object. (Measured, bench/README.md `## retrieve`: hashing there is 8–10 % faster than
 * hashing while the object is written, which is on the path the peer waits on; hashing on a
 * worker thread, or with WebCrypto, was slower on a 2-CPU host.)
 */
import { mkdirSync, renameSync, rmSync, unlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { DataSet } from "../dicom/dataset.ts";
import type { ReceivedFile } from "../net/association.ts";
import { createHash } from "node:crypto";
import { type DicomFile, parseDicomHeader, readDicomFile } from "../dicom/reader.ts";
import type { StoreAnswer } from "../net/scu.ts";
import { sha256File } from "../fs/hash.ts";

/** What the network layer hands over for each received object (a temporary Part 10 file). */
export type IncomingFile = ReceivedFile;

/** A received object in staging; header fields are read on first use. */
export class ArrivedObject {
  /** Staging path (a complete Part 10 file); its place in the output tree once `placed`. */
  path: string;
  /** Set when the file was put into the output tree: the store then never deletes it. */
  placed = false;
  readonly bytes: number;
  readonly sopInstanceUid: string;
  /** SHA-256 of the file as received (unset until it is hashed; `placeObject` hashes it then). */
  sha256: string | undefined;
  private readonly incoming: IncomingFile;
  private file: DicomFile | undefined;

  /** @param header the object's header when it was read already (a shared C-MOVE receiver routes by it). */
  constructor(path: string, incoming: IncomingFile, header?: DicomFile) {
    this.path = path;
    this.incoming = incoming;
    this.bytes = incoming.size;
    this.sopInstanceUid = incoming.sopInstanceUid;
    this.sha256 = incoming.sha256;
    if (header) {
      header.path = path;
      this.file = header;
    }
  }

  /** Parses the header (throws a DicomParseError for a damaged object). */
  header(): DicomFile {
    if (!this.file && this.incoming.bytes) {
      // From the copy the network layer kept: the header of an image is in its first kilobytes.
      // The prefix is copied (the copy's buffer serves a later object); a longer header, or a
      // damaged one, is read from the file below.
      const bytes = this.incoming.bytes;
      for (const n of HEADER_PREFIXES) {
        try {
          this.file = parseDicomHeader(bytes.slice(0, Math.min(bytes.length, n)), bytes.length, this.path);
          break;
        } catch { /* a longer prefix, then the file */ }
      }
    }
    this.file ??= readDicomFile(this.path);
    return this.file;
  }

  /**
   * SHA-256 of the file as received: from the in-memory copy when there is one; an object that
   * got none was hashed as it was written (`IncomingFile.sha256`); read back only when neither.
   */
  hashNow(): string {
    const bytes = this.incoming.bytes;
    this.sha256 ??= bytes ? createHash("sha256").update(bytes).digest("hex") : sha256File(this.path);
    return this.sha256;
  }

  /** Gives the in-memory copy back to the network layer (it serves a later object). */
  release(): void {
    this.incoming.release?.();
  }
  get dataset(): DataSet {
    return this.header().dataset;
  }
  get sopClassUid(): string {
    return this.incoming.sopClassUid || (this.dataset.string(0x00080016) ?? "");
  }
  get transferSyntaxUid(): string {
    return this.incoming.transferSyntaxUid || this.header().transferSyntaxUid;
  }
  get studyUid(): string {
    return this.dataset.string(0x0020000d) ?? "";
  }
  get seriesUid(): string {
    return this.dataset.string(0x0020000e) ?? "";
  }
  get modality(): string {
    return this.dataset.string(0x00080060) ?? "";
  }
}

/**
 * Prefixes of a kept copy tried for the header, shortest first: the values parsed stay views into
 * it for as long as the object is kept, so a CT slice (a header of 1–3 KB) keeps 4 KB, as a
 * header read from its file does.
 */
const HEADER_PREFIXES = [4096, 65536];

const STATUS_SUCCESS = 0x0000;
/** Names of files moved into a staging folder: counted per process, as stores may share a folder. */
let movedIn = 0;
/** PS3.4 B.2.2: Refused — out of resources. */
const STATUS_OUT_OF_RESOURCES = 0xa700;
export class ArrivalStore {
  readonly dir: string;
  private readonly objects = new Map<string, ArrivedObject>();
  /** Whether arrived objects are hashed (after their C-STORE-RSP, see `accept`). */
  readonly hash: boolean;
  /**
   * Called for each arrived object whose header could be read, after its C-STORE-RSP went out
   * (in the wait for the peer's next object). An object it moves must get its new `path`.
   */
  onArrival: ((o: ArrivedObject) => void) | undefined;
  /** Objects that could not be read (reported, not kept). */
  readonly rejected: { sopInstanceUid: string; error: string }[] = [];
  /** Objects that arrived but could not be written (disk full, …), with the cause; at most one entry per UID. */
  readonly writeFailures: { sopInstanceUid: string; error: string }[] = [];
  /**
   * The PatientID (0010,0020) every kept object must carry, when set (the retrieval planners set
   * it): an object of another patient is dropped, never kept, and listed in `otherPatient`.
   */
  patientId: string | undefined;
  /** Objects dropped because they belong to another patient than `patientId` (by SOP Instance UID only: no PHI). */
  readonly otherPatient: { sopInstanceUid: string }[] = [];

  /** Records an object the network layer could not write (it answered the peer 0xA700). */
  failedToWrite(sopInstanceUid: string, error: string): void {
    if (!this.writeFailures.some((f) => f.sopInstanceUid === sopInstanceUid)) this.writeFailures.push({ sopInstanceUid, error });
  }

  /**
   * @param dir the staging folder; the network layer must write received objects into it
   *   (`storeDir`), because they stay where they were written.
   * @param opts.hash hash each object after its C-STORE-RSP went out (`ArrivedObject.sha256`).
   */
  constructor(dir: string, opts: { hash?: boolean } = {}) {
    this.dir = resolve(dir);
    this.hash = opts.hash === true;
    mkdirSync(dir, { recursive: true });
  }

  /**
   * Takes a received file (it stays where it was written); the answer goes into the C-STORE-RSP.
   * `header`: the file's header, when the caller read it already.
   */
  accept(file: IncomingFile, header?: DicomFile): StoreAnswer {
    let path = file.path;
    if (dirname(resolve(path)) !== this.dir) {
      // Written elsewhere (a network layer without storeDir): moved into staging.
      path = join(this.dir, `${(movedIn++).toString(36).padStart(6, "0")}.dcm`);
      try {
        renameSync(file.path, path);
      } catch (e) {
        const error = (e as Error).message;
        this.rejected.push({ sopInstanceUid: file.sopInstanceUid, error });
        return { status: STATUS_OUT_OF_RESOURCES, errorComment: error.slice(0, 64) };
      }
    }
    const o = new ArrivedObject(path, file, header);
    const previous = this.objects.get(file.sopInstanceUid);
    if (previous) {
      // A second copy replaces the first, unless it is another patient's object with the same
      // SOP Instance UID (seen in real exports): then the first stays and the second is dropped.
      if (this.patientId !== undefined && this.foreign(o)) {
        this.noteOtherPatient(o);
        if (path !== file.path) unlinkQuiet(path);
        return { status: STATUS_SUCCESS }; // not kept: the network layer releases and removes it
      }
      if (this.patientId !== undefined && this.foreign(previous)) this.noteOtherPatient(previous);
      this.drop(previous);
    }
    this.objects.set(file.sopInstanceUid, o);
    // The header is read once the C-STORE-RSP is on its way, while the peer prepares the next
    // object, instead of all at once after the last one (~40 ms for 500 CT slices here). A
    // damaged object is reported when the planner asks for it (get()).
    setImmediate(() => {
      try {
        if (this.objects.get(o.sopInstanceUid) !== o) return;
        o.header();
        if (this.foreign(o)) {
          this.noteOtherPatient(o);
          this.drop(o);
          return;
        }
        if (this.hash) o.hashNow();
      } catch {
        return; // get() reports it
      } finally {
        o.release();
      }
      this.onArrival?.(o);
    });
    return { status: STATUS_SUCCESS, kept: true };
  }

  /** Whether the object arrived, can be read and belongs to `patientId` (see `get`). */
  has(sopInstanceUid: string): boolean {
    return this.get(sopInstanceUid) !== undefined;
  }

  /**
   * The object, when it arrived, its header can be read and it belongs to `patientId` (damaged
   * ones are dropped and recorded in `rejected`, another patient's in `otherPatient`).
   */
  get(sopInstanceUid: string): ArrivedObject | undefined {
    const o = this.objects.get(sopInstanceUid);
    if (!o) return undefined;
    try {
      o.header();
    } catch (e) {
      this.rejected.push({ sopInstanceUid, error: (e as Error).message });
      this.drop(o);
      return undefined;
    }
    if (this.foreign(o)) {
      this.noteOtherPatient(o);
      this.drop(o);
      return undefined;
    }
    return o;
  }

  /** True when `patientId` is set and the object (whose header can be read) carries another PatientID. */
  private foreign(o: ArrivedObject): boolean {
    if (this.patientId === undefined) return false;
    try {
      return (o.dataset.string(0x00100020) ?? "").trim() !== this.patientId.trim();
    } catch {
      return false; // damaged: get() reports it
    }
  }

  private noteOtherPatient(o: ArrivedObject): void {
    this.otherPatient.push({ sopInstanceUid: o.sopInstanceUid });
  }

  all(): ArrivedObject[] {
    return [...this.objects.keys()].map((uid) => this.get(uid)).filter((o): o is ArrivedObject => o !== undefined);
  }

  inSeries(seriesUid: string): ArrivedObject[] {
    return this.all().filter((o) => o.seriesUid === seriesUid);
  }

  /** Drops an object that turned out not to belong to the selection. */
  discard(sopInstanceUid: string): void {
    const o = this.objects.get(sopInstanceUid);
    if (o) this.drop(o);
  }

  private drop(o: ArrivedObject): void {
    this.objects.delete(o.sopInstanceUid);
    if (!o.placed) unlinkQuiet(o.path); // a placed file belongs to the output tree
  }

  /** Removes the staging folder and whatever is left in it. */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch { /* already gone */ }
}
