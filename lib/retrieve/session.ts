/**
 * The network side of `retrieve`: one association to the Q/R peer for C-FIND and C-MOVE (with
 * an in-process storage SCP receiving the sub-operations) or C-GET (objects come back on the
 * same association, negotiated with SCP role selection).
 *
 * The C-MOVE receiver is opened only to the peer: it listens on the address our connection to
 * the peer left from (127.0.0.1 for a peer on loopback) unless told otherwise, accepts only the
 * peer's AE title from the peer's address, and with TLS to the peer it is a TLS server too (no
 * plaintext fallback: without a certificate for it, the session refuses to start).
 */
import { SOP_CLASSES } from "../dicom/_sop_classes.ts";
import type { DataSet } from "../dicom/dataset.ts";
import { DECODABLE_SYNTAXES } from "../codec/syntaxes.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from "../dicom/uids.ts";
import { isIP } from "node:net";
import {
  type AllowEntry, type Association, connect, type RoleSelection, DicomNetError, find, get, move, QR_MODELS,
  type RetrieveProgress, type Timeouts, type TlsOptions,
} from "../net/mod.ts";
import { identifier } from "../qr/identifier.ts";
import type { ArrivalStore } from "./arrivals.ts";
import { MoveReceiver, type RefusedObject } from "./move_receiver.ts";
import type { RetrieveOutcome, RetrieveTransport } from "./types.ts";

export interface RetrieveSessionOptions {
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  mode: "move" | "get";
  /** C-MOVE destination AE title (ours; the peer must know it with our host and port). Default: callingAet. */
  moveAet?: string;
  /**
   * C-MOVE to this AE title instead (a third AE the peer knows: a file service, a PACS): no
   * receiver is opened, nothing arrives here, and the transport's `destination` says so.
   */
  moveDest?: string;
  /** Port of the in-process receiving SCP for C-MOVE (0: any free port). */
  movePort?: number;
  /** Listen address of the receiving SCP (default: the local address of our connection to the peer). */
  moveHost?: string;
  /**
   * Who may send C-MOVE sub-operations to the receiver (allow entries, lib/net/allow.ts); default:
   * the peer's AE title (`calledAet`) from the peer's address.
   */
  moveFrom?: (string | AllowEntry)[];
  /**
   * The C-MOVE receiver to share with other sessions (export-plan's workers: one port, each
   * object routed to the request it answers, see move_receiver.ts). Default: one of the
   * session's own, opened and closed with it.
   */
  receiver?: MoveReceiver;
  /** Told of each object the session's own receiver refused (no request of it asked for it). */
  onRefused?: (r: RefusedObject) => void;
  /** C-FIND matches kept per query (default 50,000); a peer that sends more fails the query. */
  maxFindResults?: number;
  /** Bytes of C-FIND answers kept per query (default 128 MiB); more fail the query. */
  maxFindBytes?: number;
  timeouts?: Timeouts;
  maxPdu?: number;
  /** TLS to the peer; with `cert`/`key`, the receiving SCP also accepts TLS with them. */
  tls?: TlsOptions;
  /**
   * Associations a series may be retrieved over at once (default 1). With more than one, a
   * series of at least {@link PARALLEL_MIN_PER_ASSOCIATION} instances per association is listed
   * by a C-FIND at IMAGE level and its instances are asked for in even parts, one per
   * association, by IMAGE-level C-GET/C-MOVEs with lists of at most {@link UIDS_PER_REQUEST}
   * SOP Instance UIDs (PS3.4 C.4.2.2.1). When anything listed does not arrive (a peer that
   * refuses such lists), the whole series comes in one request instead.
   */
  parallel?: number;
}

/** Below this many instances per association a series is retrieved by one request. */
export const PARALLEL_MIN_PER_ASSOCIATION = 8;
/** SOP Instance UIDs per request: ~17 KB of UIDs, well under the 64 KB a value may have in an identifier. */
export const UIDS_PER_REQUEST = 256;

/** `items` in `parts` contiguous parts whose sizes differ by at most one (none empty when parts ≤ items). */
export function splitEvenly<T>(items: readonly T[], parts: number): T[][] {
  const k = Math.max(1, Math.min(parts, items.length));
  const out: T[][] = [];
  for (let i = 0; i < k; i++) out.push(items.slice(Math.floor((i * items.length) / k), Math.floor(((i + 1) * items.length) / k)));
  return out;
}

/** `items` in consecutive chunks of at most `size`. */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export interface RetrieveSession {
  transport: RetrieveTransport;
  /** Port the receiving SCP listens on (C-MOVE). */
  readonly receiverPort?: number;
  /** Address the receiving SCP listens on (C-MOVE). */
  readonly receiverHost?: string;
  /** Requests the session made beyond the planner's own: the IMAGE-level listing and the parts of split series. */
  readonly extraRequests: { find: number; retrieve: number };
  close(): Promise<void>;
  /** Stops at once (A-ABORT on every association, the receiver closed): requests in flight fail. */
  abort(): void;
}

const TS = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN];

/**
 * Storage classes proposed for C-GET (at most 128 presentation contexts fit in an association):
 * radiotherapy, the cross-sectional and projection images plans are made on, registration,
 * segmentation and secondary capture.
 */
export const GET_STORAGE_CLASSES: readonly string[] = SOP_CLASSES
  .filter((s) => /RT |RT$|Radiation|Tomotherap|Robotic|C-Arm|CT |MR |PET|Positron|Registration|Secondary Capture|Segmentation|Computed Radiography|Digital X-Ray|Encapsulated PDF|Raw Data|Surface|Fiducials|Nuclear Medicine|Ultrasound|X-Ray Angio/.test(s.name))
  .map((s) => s.uid)
  .slice(0, 120);

/**
 * Image classes whose objects are often stored compressed, most likely first. For C-GET each gets
 * one presentation context per lossless syntax lib/codec decodes, besides its native one: a peer
 * sends an object on a context accepted in the object's own syntax, and picks one syntax per
 * context, so one context listing them all would be accepted in one of them and the others would
 * be transcoded by the peer, or fail (measured with Orthanc: JPEG-LS and JPEG 2000 CT slices
 * failed on a native-only context and on a context listing all five). Contexts are added while the
 * association's 128 allow.
 */
const COMPRESSED_GET_CLASSES: readonly string[] = [
  "1.2.840.10008.5.1.4.1.1.2", // CT
  "1.2.840.10008.5.1.4.1.1.4", // MR
  "1.2.840.10008.5.1.4.1.1.128", // PET
  "1.2.840.10008.5.1.4.1.1.481.1", // RT Image
  "1.2.840.10008.5.1.4.1.1.481.2", // RT Dose
  "1.2.840.10008.5.1.4.1.1.7", // Secondary Capture
  "1.2.840.10008.5.1.4.1.1.1", // CR
  "1.2.840.10008.5.1.4.1.1.1.1", // DX for presentation
  "1.2.840.10008.5.1.4.1.1.20", // NM
  "1.2.840.10008.5.1.4.1.1.2.1", // Enhanced CT
  "1.2.840.10008.5.1.4.1.1.4.1", // Enhanced MR
  "1.2.840.10008.5.1.4.1.1.6.1", // US
];

/** Presentation contexts an association may carry (odd context IDs 1–255). */
const MAX_CONTEXTS = 128;

/**
 * Received objects up to this size are also kept in memory until `ArrivalStore` has read their
 * header and hashed them, instead of reading each file back (two such buffers per association).
 * Measured (bench/README.md, retrieve, third session): 500 CT slices of 512 KB, ~7 % faster.
 * Larger objects (a big RT Dose, an enhanced multi-frame) are hashed as they are written (lib/net
 * sinks.ts) and only their header is read from the file.
 */
const KEEP_RECEIVED = 8 * 1024 * 1024;

/** Default of `maxFindResults`. */
export const DEFAULT_MAX_FIND_RESULTS = 50_000;
/**
 * Bytes of C-FIND answers kept per query: the count alone does not bound memory when each
 * answer carries up to a mebibyte (lib/net's identifier limit).
 */
export const DEFAULT_MAX_FIND_BYTES = 128 * 1024 * 1024;

/** Size of a data set's values (what keeping it costs, near enough). */
function valueBytes(ds: DataSet): number {
  let n = 0;
  for (const el of ds.elements.values()) n += 16 + el.length + (el.items ? el.items.reduce((s, i) => s + valueBytes(i), 0) : 0);
  return n;
}

/** An IPv4-mapped IPv6 address as IPv4; others unchanged. */
function plainAddress(a: string | undefined): string {
  return (a ?? "").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
}

/**
 * A retrieve response with the sub-operation counts a final response left out taken from the
 * last pending one (PS3.4 C.4.2.1.6: the counts of a final response are optional).
 */
function finalCounts(previous: RetrieveProgress | undefined, p: RetrieveProgress): RetrieveProgress {
  if (!previous) return p;
  return {
    ...p,
    completed: p.completed ?? previous.completed,
    failed: p.failed ?? previous.failed,
    warning: p.warning ?? previous.warning,
  };
}

/** The presentation contexts (and SCP roles, for C-GET) a session proposes. */
function sessionContexts(mode: "get" | "move"): { contexts: { abstractSyntax: string; transferSyntaxes: string[] }[]; roles: RoleSelection[] } {
  const model = QR_MODELS.studyRoot;
  const contexts: { abstractSyntax: string; transferSyntaxes: string[] }[] = [
    { abstractSyntax: model.find, transferSyntaxes: TS },
    { abstractSyntax: mode === "move" ? model.move : model.get, transferSyntaxes: TS },
  ];
  const roles: RoleSelection[] = [];
  if (mode === "get") {
    for (const uid of GET_STORAGE_CLASSES) {
      contexts.push({ abstractSyntax: uid, transferSyntaxes: TS });
      roles.push({ sopClassUid: uid, scu: false, scp: true });
    }
    for (const uid of COMPRESSED_GET_CLASSES) {
      if (!GET_STORAGE_CLASSES.includes(uid) || contexts.length + DECODABLE_SYNTAXES.length > MAX_CONTEXTS) continue;
      for (const ts of DECODABLE_SYNTAXES) contexts.push({ abstractSyntax: uid, transferSyntaxes: [ts] });
    }
  }
  return { contexts, roles };
}

/** The outcome of a retrieve from its final response (counts completed from the pending ones). */
function outcomeOf(last: RetrieveProgress | undefined, peerLabel: string): RetrieveOutcome {
  if (!last) throw new DicomNetError("PROTOCOL", `No final response from ${peerLabel}`);
  const r: RetrieveOutcome = { status: last.status, completed: last.completed ?? 0, failed: last.failed ?? 0, warning: last.warning ?? 0 };
  if (last.errorComment) r.errorComment = last.errorComment;
  if (last.failedInstances?.length) r.failedInstances = last.failedInstances;
  return r;
}

/**
 * Opens the Q/R association (and, for C-MOVE, the receiving SCP). Objects go into `arrivals`;
 * with `moveDest` nothing arrives here and it may be undefined.
 */
export async function openRetrieveSession(opts: RetrieveSessionOptions, arrivals: ArrivalStore | undefined): Promise<RetrieveSession> {
  if (!arrivals && !opts.moveDest) throw new Error("Cannot open a retrieve session: objects that arrive need an ArrivalStore");
  if (opts.mode === "get" && opts.moveDest) throw new Error("Cannot retrieve by C-GET to another AE: a C-MOVE destination goes with C-MOVE");
  const session = new QrSession(opts, arrivals as ArrivalStore);
  if (session.receiving && opts.tls && !(opts.tls.cert && opts.tls.key)) {
    throw new Error("C-MOVE over TLS needs a certificate and key for the receiving SCP (the peer connects to it with TLS): give them, or retrieve with C-GET");
  }
  if (session.receiving) await session.openReceiver();
  return session;
}

/** One peer's Q/R session: the main association, extra ones for split series, the C-MOVE receiver. */
class QrSession implements RetrieveSession {
  private readonly model = QR_MODELS.studyRoot;
  private readonly moveAet: string;
  private readonly maxFind: number;
  private readonly maxFindBytes: number;
  private readonly peerLabel: string;
  private readonly parallel: number;
  private readonly proposal: ReturnType<typeof sessionContexts>;
  /** C-MOVE to this process (not to a third AE): a receiver is opened. */
  readonly receiving: boolean;
  readonly extraRequests = { find: 0, retrieve: 0 };
  private receiver: MoveReceiver | undefined;
  /** This session holds the receiver (one `release()` owed). */
  private holdsReceiver = false;
  private assoc: Association | undefined;
  /** Further associations for parallel retrieval, opened when first needed and kept. */
  private extra: Association[] = [];
  readonly transport: RetrieveTransport;
  private readonly opts: RetrieveSessionOptions;
  private readonly store: ArrivalStore;

  constructor(opts: RetrieveSessionOptions, store: ArrivalStore) {
    this.opts = opts;
    this.store = store;
    this.moveAet = opts.moveAet ?? opts.callingAet;
    this.maxFind = opts.maxFindResults ?? DEFAULT_MAX_FIND_RESULTS;
    this.maxFindBytes = opts.maxFindBytes ?? DEFAULT_MAX_FIND_BYTES;
    this.peerLabel = `${opts.calledAet}@${opts.host}:${opts.port}`;
    this.parallel = Math.max(1, Math.floor(opts.parallel ?? 1));
    this.receiving = opts.mode === "move" && !opts.moveDest;
    this.proposal = sessionContexts(opts.mode);
    this.transport = {
      find: async (identifier: DataSet): Promise<DataSet[]> => {
        const a = await this.open();
        const out: DataSet[] = [];
        for await (const m of this.findAll(a, identifier)) out.push(m);
        return out;
      },
      destination: opts.moveDest,
      retrieve: async (id: DataSet, known?: { instances?: number }): Promise<RetrieveOutcome> => {
        // Split requests are checked against what arrived here: not with a destination elsewhere.
        if (this.parallel > 1 && !opts.moveDest && id.string(0x00080052)?.trim() === "SERIES") {
          const split = await this.retrieveSplit(id, known);
          if (split) return split;
        }
        return await this.retrieveOn(await this.open(), id);
      },
    };
  }

  get receiverPort(): number | undefined {
    return this.receiver?.port;
  }

  get receiverHost(): string | undefined {
    return this.receiver?.host;
  }

  private async associate(): Promise<Association> {
    const o = this.opts;
    const a = await connect({
      host: o.host, port: o.port, callingAet: o.callingAet, calledAet: o.calledAet,
      contexts: this.proposal.contexts, roles: this.proposal.roles, maxPdu: o.maxPdu, timeouts: o.timeouts, tls: o.tls,
    });
    if (o.mode === "get") {
      a.storeDir = this.store.dir; // received files stay there (ArrivalStore.accept hashes them)
      a.keepReceived = KEEP_RECEIVED;
    }
    return a;
  }

  private async open(): Promise<Association> {
    if (this.assoc?.established) return this.assoc;
    this.assoc = await this.associate();
    return this.assoc;
  }

  /**
   * The C-MOVE receiver, opened to the peer alone: the address we reach it from, its AE title and
   * address. A shared one is opened by the first session that needs it (its settings are the same
   * for every session of a run) and routes each object to the request it answers.
   */
  async openReceiver(): Promise<void> {
    const o = this.opts;
    const first = await this.open();
    const remote = plainAddress(first.socket.remoteAddress);
    const local = plainAddress(first.socket.localAddress);
    const serverTls: TlsOptions | undefined = o.tls
      ? { cert: o.tls.cert, key: o.tls.key, ...(o.tls.ca ? { ca: o.tls.ca, requestCert: true } : {}) }
      : undefined;
    // The session's own receiver writes into the store's folder (nothing to move) and leaves it to the store.
    const receiver = o.receiver ?? new MoveReceiver(this.store.dir, { onRefused: o.onRefused, keepDir: true });
    try {
      await receiver.acquire({
        aeTitle: this.moveAet,
        port: o.movePort ?? 0,
        host: o.moveHost ?? (local || "127.0.0.1"),
        tls: serverTls,
        allow: o.moveFrom ?? [{ aeTitle: o.calledAet, ...(isIP(remote) ? { network: { address: remote, bits: isIP(remote) === 4 ? 32 : 128 } } : {}) }],
        keepReceived: KEEP_RECEIVED,
        maxPdu: o.maxPdu,
        timeouts: o.timeouts,
      });
    } catch (e) {
      await first.release();
      throw e;
    }
    this.receiver = receiver;
    this.holdsReceiver = true;
  }

  /** Lets the receiver go (once). */
  private async releaseReceiver(): Promise<void> {
    if (!this.holdsReceiver) return;
    this.holdsReceiver = false;
    await this.receiver?.release();
  }

  /** Matches of one C-FIND, at most `maxFind` of them (more: the query is cancelled and fails). */
  private async *findAll(a: Association, id: DataSet): AsyncGenerator<DataSet> {
    let n = 0;
    let bytes = 0;
    for await (const m of find(a, this.model.find, id)) {
      if (++n > this.maxFind) {
        throw new DicomNetError("PROTOCOL", `C-FIND at ${this.peerLabel} returned more than ${this.maxFind} matches; the query was cancelled (raise the limit with --max-find-results)`);
      }
      if ((bytes += valueBytes(m)) > this.maxFindBytes) {
        throw new DicomNetError("PROTOCOL", `C-FIND at ${this.peerLabel} returned more than ${this.maxFindBytes >> 20} MiB of answers; the query was cancelled`);
      }
      yield m;
    }
  }

  private async openExtra(n: number): Promise<Association[]> {
    const extra = this.extra;
    for (let i = extra.length - 1; i >= 0; i--) if (!extra[i].established) extra.splice(i, 1);
    while (extra.length < n) {
      try {
        extra.push(await this.associate());
      } catch {
        break; // the peer takes fewer associations: the ones open do the work
      }
    }
    return extra.slice(0, n);
  }

  private async retrieveOn(a: Association, id: DataSet): Promise<RetrieveOutcome> {
    let last: RetrieveProgress | undefined;
    if (this.opts.mode === "move") {
      // Objects that arrive here are this request's only while it is outstanding, and only those it asked for.
      const expected = this.receiving && this.receiver ? this.receiver.expect(this.store, id, this.opts.callingAet) : undefined;
      try {
        const ask = move(a, this.model.move, id, this.opts.moveDest ?? this.moveAet, expected ? { messageId: expected.messageId } : {});
        for await (const p of ask) last = finalCounts(last, p);
      } finally {
        expected?.end();
      }
    } else {
      const store = this.store;
      const failed = (error: string, m: { command: { affectedSopInstanceUid?: string } }) => store.failedToWrite(m.command.affectedSopInstanceUid ?? "", error);
      for await (const p of get(a, this.model.get, id, (file) => store.accept(file), failed)) last = finalCounts(last, p);
    }
    return outcomeOf(last, this.peerLabel);
  }

  /** A SERIES-level request split over several associations; undefined when it is not worth it, or did not work. */
  private async retrieveSplit(id: DataSet, known?: { instances?: number }): Promise<RetrieveOutcome | undefined> {
    const studyUid = id.string(0x0020000d);
    const seriesUid = id.string(0x0020000e);
    if (!studyUid || !seriesUid) return undefined;
    // The listing and the parts name the patient as the request did (issue 12).
    const patientId = id.string(0x00100020);
    const patient: Record<string, string> = patientId !== undefined ? { PatientID: patientId } : {};
    const main = await this.open();
    // The instances, listed; a peer that refuses the listing, or lists fewer instances than it
    // counts for the series (a capped C-FIND), gets the whole series in one request.
    const listed = new Set<string>();
    let counted = known?.instances;
    try {
      if (counted === undefined) {
        this.extraRequests.find++;
        for await (const m of this.findAll(main, identifier({ QueryRetrieveLevel: "SERIES", ...patient, StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, NumberOfSeriesRelatedInstances: "" }))) {
          if (m.string(0x0020000e) === seriesUid) counted = m.number(0x00201209);
        }
      }
      this.extraRequests.find++;
      for await (const m of this.findAll(main, identifier({ QueryRetrieveLevel: "IMAGE", ...patient, StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: "" }))) {
        const uid = m.string(0x00080018);
        if (uid) listed.add(uid);
      }
    } catch {
      return undefined;
    }
    if (counted !== undefined && counted > listed.size) return undefined;
    const uids = [...listed];
    const n = Math.min(this.parallel, Math.floor(uids.length / PARALLEL_MIN_PER_ASSOCIATION));
    if (n < 2) return undefined;
    const assocs = [main, ...await this.openExtra(n - 1)];
    const outcomes: RetrieveOutcome[] = [];
    // Each association asks for its part in requests of at most UIDS_PER_REQUEST UIDs.
    const askFor = async (a: Association, part: string[]) => {
      for (const chunk of chunked(part, UIDS_PER_REQUEST)) {
        outcomes.push(
          await this.retrieveOn(a, identifier({ QueryRetrieveLevel: "IMAGE", ...patient, StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: chunk.join("\\") }))
            .catch((e: Error) => ({ status: 0xc000, completed: 0, failed: 0, warning: 0, errorComment: e.message })),
        );
      }
    };
    await Promise.all(splitEvenly(uids, assocs.length).map((part, i) => askFor(assocs[i], part)));
    // Anything listed that did not arrive (a peer that refuses UID lists, matches them
    // literally or only by their first value, or a part whose association failed): the whole
    // series once more in one request, as without --parallel; what arrived twice is kept once.
    // The planner counts one request for the series: that one, or one of the parts.
    const fallBack = uids.some((uid) => !this.store.has(uid));
    this.extraRequests.retrieve += fallBack ? outcomes.length : outcomes.length - 1;
    if (fallBack) return undefined;
    const warning = outcomes.reduce((s, o) => s + o.warning, 0);
    return { status: warning > 0 ? 0xb000 : 0, completed: uids.length, failed: 0, warning };
  }

  async close(): Promise<void> {
    await Promise.all(this.extra.splice(0).filter((a) => a.established).map((a) => a.release()));
    if (this.assoc?.established) await this.assoc.release();
    await this.releaseReceiver();
  }

  abort(): void {
    for (const a of [this.assoc, ...this.extra.splice(0)]) a?.abort();
    this.assoc = undefined;
    this.releaseReceiver().catch(() => {});
  }
}
