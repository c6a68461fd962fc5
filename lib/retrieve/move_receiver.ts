/**
 * The C-MOVE receiver: one in-process storage SCP that takes the sub-operations of every C-MOVE
 * this process has in flight, from any number of associations (export-plan's workers), and hands
 * each object to the request it answers, so that no worker ever gets another's object.
 *
 * An object goes to a C-MOVE that is outstanding (asked, not yet answered finally) and whose
 * identifier it matches: its Study, Series and SOP Instance UIDs among the values the request
 * named (PatientID is left to the arrival store, which drops and reports another patient's
 * object). Among several such requests, the one the peer names by the Move Originator Message ID
 * it puts on the C-STORE (PS3.7 9.1.1: DCMTK's dcmqrscp and Orthanc do; message IDs are given out
 * here, unique across the associations, see `expect`) wins; else the oldest. An object that
 * matches no outstanding request (a late one, or a C-STORE nobody here asked for) is refused
 * (0x0124) and reported: never kept, never written under anyone's folder.
 */
import { mkdirSync, rmSync } from "node:fs";
import type { DataSet } from "../dicom/dataset.ts";
import type { DicomFile } from "../dicom/reader.ts";
import { type AllowEntry, createScp, type Scp, type Timeouts, type TlsOptions } from "../net/mod.ts";
import type { ReceivedFile } from "../net/association.ts";
import type { DimseCommand } from "../net/dimse.ts";
import type { StoreAnswer } from "../net/scu.ts";
import { ArrivedObject, type ArrivalStore } from "./arrivals.ts";

/** PS3.7 C.5: Refused: Not Authorized, the answer to an object no outstanding C-MOVE asked for. */
export const STATUS_NOT_REQUESTED = 0x0124;

/** Where and how the receiving SCP listens (the first session that opens it decides). */
export interface MoveReceiverSettings {
  aeTitle: string;
  port: number;
  host: string;
  tls?: TlsOptions;
  /** Who may send (lib/net/allow.ts entries). */
  allow: (string | AllowEntry)[];
  /** Keep an in-memory copy of each object up to this many bytes (`ReceivedFile.bytes`). */
  keepReceived?: number;
  maxPdu?: number;
  timeouts?: Timeouts;
}

/** An object the receiver refused: by SOP Instance UID and sender only (no PHI). */
export interface RefusedObject {
  sopInstanceUid: string;
  /** The AE title that sent it. */
  callingAet: string;
  reason: string;
}

/** One outstanding C-MOVE: what it asked for and where its objects go. */
export interface ExpectedMove {
  /** The Message ID to send the C-MOVE-RQ with. */
  readonly messageId: number;
  /** The request got its final response (or failed): later objects are not its. */
  end(): void;
}

interface Outstanding extends ExpectedMove {
  store: ArrivalStore;
  /** Our calling AE title on the request's association: the Move Originator AE Title the peer echoes. */
  callingAet: string;
  studies?: Set<string>;
  series?: Set<string>;
  sops?: Set<string>;
}

/** The values of a unique key in an identifier (a list of UIDs is backslash-separated), or undefined when it names none. */
function keyValues(id: DataSet, tag: number): Set<string> | undefined {
  const values = id.strings(tag).flatMap((v) => v.split("\\")).map((s) => s.trim()).filter((s) => s !== "");
  return values.length ? new Set(values) : undefined;
}

/**
 * The C-MOVE receiver of one process (or one retrieval): opened by the first session that needs
 * it, closed when the last lets it go; `expect` registers each C-MOVE before it is sent.
 *
 * @example
 * ```ts
 * const receiver = new MoveReceiver("staging/incoming", { onRefused: (r) => console.error(r.sopInstanceUid, r.reason) });
 * await receiver.acquire({ aeTitle: "RTEXPORT", port: 11113, host: "127.0.0.1", allow: ["ORTHANC"] });
 * // const m = receiver.expect(store, identifier, "RTEXPORT"); move(assoc, model, identifier, "RTEXPORT", { messageId: m.messageId }) …; m.end();
 * await receiver.release();
 * receiver.close();
 * ```
 */
export class MoveReceiver {
  /** Where the SCP writes what arrives (moved from there into the store of the request it answers). */
  readonly dir: string;
  /** Objects refused so far. */
  refusedCount = 0;
  private readonly onRefused?: (r: RefusedObject) => void;
  private readonly keepDir: boolean;
  private scp: Scp | undefined;
  private opening: Promise<Scp> | undefined;
  private users = 0;
  /** Outstanding requests by Message ID, oldest first. */
  private readonly outstanding = new Map<number, Outstanding>();
  private lastId = 0;

  /**
   * @param dir the SCP's folder for incoming files; on the file system of the stores' folders
   *   (objects are renamed into them). Removed by `close()` unless `keepDir`.
   */
  constructor(dir: string, opts: { onRefused?: (r: RefusedObject) => void; keepDir?: boolean } = {}) {
    this.dir = dir;
    this.onRefused = opts.onRefused;
    this.keepDir = opts.keepDir === true;
  }

  get port(): number | undefined {
    return this.scp?.port;
  }

  get host(): string | undefined {
    return this.scp?.host;
  }

  /** Opens the SCP with `settings` unless it is open already (then they are not looked at); one `release()` per call. */
  async acquire(settings: MoveReceiverSettings): Promise<void> {
    this.users++;
    try {
      if (this.scp) return;
      this.opening ??= this.open(settings);
      await this.opening;
    } catch (e) {
      this.users--;
      throw e;
    } finally {
      this.opening = undefined;
    }
  }

  private async open(s: MoveReceiverSettings): Promise<Scp> {
    mkdirSync(this.dir, { recursive: true });
    this.scp = await createScp({
      aeTitle: s.aeTitle, port: s.port, host: s.host, tls: s.tls, allow: s.allow,
      storeDir: this.dir, keepReceived: s.keepReceived, maxPdu: s.maxPdu, timeouts: s.timeouts,
      handlers: { store: ({ file, command, callingAet }) => this.route(file, command, callingAet) },
      onEvent: (e) => {
        // A failure that is not a refusal: the object could not be written here (disk full).
        if (e.type === "store-failed" && !e.warning && e.status !== STATUS_NOT_REQUESTED) this.writeFailed(e.sopInstanceUid, e.message);
      },
    });
    return this.scp;
  }

  /** Lets the SCP go; the last user closes it (associations in progress are aborted). */
  async release(): Promise<void> {
    if (this.users === 0) return;
    if (--this.users > 0) return;
    // Still being opened for another session that gave up meanwhile (an abort): closed once open.
    await this.opening?.catch(() => {});
    if (this.users > 0) return;
    const scp = this.scp;
    this.scp = undefined;
    await scp?.close();
  }

  /** Removes the receiver's folder (once every session that used it is closed). */
  close(): void {
    if (!this.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Registers a C-MOVE about to be sent with `identifier` from an association whose calling AE
   * title is `callingAet`: objects matching it go into `store` until `end()`.
   */
  expect(store: ArrivalStore, identifier: DataSet, callingAet: string): ExpectedMove {
    let id = this.lastId;
    do id = (id % 65535) + 1; while (this.outstanding.has(id));
    this.lastId = id;
    const o: Outstanding = {
      messageId: id, store, callingAet: callingAet.trim(),
      studies: keyValues(identifier, 0x0020000d), series: keyValues(identifier, 0x0020000e), sops: keyValues(identifier, 0x00080018),
      end: () => {
        if (this.outstanding.get(id) === o) this.outstanding.delete(id);
      },
    };
    this.outstanding.set(id, o);
    return o;
  }

  /** The store of the request an arriving object answers, or a refusal. */
  private route(file: ReceivedFile, command: DimseCommand, sender: string): StoreAnswer {
    const sop = command.affectedSopInstanceUid?.trim() || file.sopInstanceUid;
    if (this.outstanding.size === 0) return this.refuse(sop, sender, "no C-MOVE of this run is waiting for objects");
    const originator = command.moveOriginatorAet?.trim();
    const byId = command.moveOriginatorMessageId !== undefined ? this.outstanding.get(command.moveOriginatorMessageId) : undefined;
    const named = byId && (!originator || originator === byId.callingAet) ? byId : undefined;
    // The header is read only when a request asks by study or series (a SOP Instance UID list
    // needs none), and then once: the store keeps it.
    let header: DicomFile | undefined;
    let unreadable: string | undefined;
    const keys = (): DataSet | undefined => {
      if (!header && unreadable === undefined) {
        try {
          header = new ArrivedObject(file.path, file).header();
        } catch (e) {
          unreadable = (e as Error).message;
        }
      }
      return header?.dataset;
    };
    const matches = (r: Outstanding): boolean => {
      if (r.sops && !r.sops.has(sop)) return false;
      if (!r.series && !r.studies) return true;
      const ds = keys();
      if (!ds) return false;
      if (r.series && !r.series.has((ds.string(0x0020000e) ?? "").trim())) return false;
      return !r.studies || r.studies.has((ds.string(0x0020000d) ?? "").trim());
    };
    let target = named && matches(named) ? named : undefined;
    if (!target) {
      for (const r of this.outstanding.values()) {
        if (r === named || !matches(r)) continue;
        target = r;
        break;
      }
    }
    // A damaged object the peer names as a request's: that request's store reports it.
    if (!target && unreadable !== undefined && named) target = named;
    if (!target) {
      return this.refuse(sop, sender, unreadable !== undefined ? `it cannot be read (${unreadable}) and no C-MOVE of this run names it` : "no C-MOVE of this run asked for it");
    }
    return target.store.accept(file, header);
  }

  private refuse(sopInstanceUid: string, callingAet: string, reason: string): StoreAnswer {
    this.refusedCount++;
    this.onRefused?.({ sopInstanceUid, callingAet, reason });
    return { status: STATUS_NOT_REQUESTED, errorComment: "Not requested by any C-MOVE in progress", detail: reason };
  }

  /**
   * An object that could not be written: told to the request that lists its UID, else to every
   * outstanding one (a full disk fails them all alike; their retries must know it was this side).
   */
  private writeFailed(sopInstanceUid: string, error: string): void {
    const listing = [...this.outstanding.values()].filter((r) => r.sops?.has(sopInstanceUid));
    const stores = new Set((listing.length ? listing : [...this.outstanding.values()]).map((r) => r.store));
    for (const s of stores) s.failedToWrite(sopInstanceUid, error);
  }
}

/**
 * A refused object in words, for a warning (its SOP Instance UID and sender, no PHI).
 *
 * @example
 * ```ts
 * refusedText({ sopInstanceUid: "1.2.3", callingAet: "ORTHANC", reason: "no C-MOVE of this run asked for it" });
 * // 'Refused object 1.2.3 from "ORTHANC" at the C-MOVE receiver: no C-MOVE of this run asked for it'
 * ```
 */
export function refusedText(r: RefusedObject): string {
  return `Refused object ${r.sopInstanceUid} from "${r.callingAet}" at the C-MOVE receiver: ${r.reason}`;
}
