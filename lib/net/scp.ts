/**
 * The SCP framework: listens, negotiates associations (AE title checks, presentation contexts,
 * role selection), and dispatches DIMSE requests to handlers. C-STORE data sets stream into a
 * temporary file while they arrive; C-MOVE and C-GET sub-operations are run here from the list
 * of instances a handler returns.
 */
import { unlinkSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import type * as tlsTypes from "node:tls";
import { Buffer } from "node:buffer";
import { DataSet } from "../dicom/dataset.ts";
import { parseDataSet } from "../dicom/reader.ts";
import { encodeDataSet } from "../dicom/writer.ts";
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
  STORAGE_SOP_CLASSES, VERIFICATION_SOP_CLASS,
} from "../dicom/uids.ts";
import { Association, connect, type NegotiatedContext, type ReceivedFile, type Timeouts, type TlsOptions } from "./association.ts";
import {
  C_CANCEL_RQ, C_ECHO_RQ, C_ECHO_RSP, C_FIND_RQ, C_FIND_RSP, C_GET_RQ, C_GET_RSP, C_MOVE_RQ, C_MOVE_RSP, C_STORE_RQ,
  type DimseCommand, N_ACTION_RQ, N_ACTION_RSP, N_EVENT_REPORT_RQ, N_EVENT_REPORT_RSP, STATUS_CANCEL, STATUS_CANNOT_UNDERSTAND, STATUS_MOVE_DESTINATION_UNKNOWN, STATUS_OUT_OF_RESOURCES,
  STATUS_PENDING, STATUS_PROCESSING_FAILURE, STATUS_QR_OUT_OF_RESOURCES, STATUS_SOP_CLASS_NOT_SUPPORTED, STATUS_SUBOPS_WARNING,
  STATUS_SUCCESS, statusCategory, statusText,
} from "./dimse.ts";
import { DimseStatusError, tlsFailureText } from "./errors.ts";
import { allowedBy, type AllowEntry, isValidAeTitle, parseAllowEntry, printable } from "./allow.ts";
import { DEFAULT_SCP_LIMITS, type ScpLimits, withDefaults } from "./limits.ts";
import {
  APPLICATION_CONTEXT_NAME, type AssociateRq, PC_ABSTRACT_SYNTAX_NOT_SUPPORTED, PC_ACCEPTANCE,
  PC_TRANSFER_SYNTAXES_NOT_SUPPORTED, PC_USER_REJECTION, PDU_ASSOCIATE_RQ, type RoleSelection,
} from "./pdu.ts";
import { answerStore, QR_MODELS, type StoreAnswer, type StoreSource, storageContextsWithin, store } from "./scu.ts";
import { answerReport, type CommitItem, type CommitmentResult, serveCommitmentRequest, STORAGE_COMMITMENT_PUSH } from "./commitment.ts";

/** Who is asking, for handlers. */
export interface RequestInfo {
  callingAet: string;
  calledAet: string;
  remoteAddress: string;
  association: Association;
}

export interface StoreRequest extends RequestInfo {
  /** The received object in a temporary Part 10 file; move it (rename) to keep it, else it is deleted. */
  file: ReceivedFile;
  command: DimseCommand;
}

export interface QueryRequest extends RequestInfo {
  /** The information model SOP class UID (Patient Root / Study Root, FIND/MOVE/GET). */
  model: string;
  /** QueryRetrieveLevel (0008,0052): PATIENT, STUDY, SERIES or IMAGE. */
  level: string;
  identifier: DataSet;
  /** True once the requestor sent C-CANCEL. */
  cancelled(): boolean;
}

export interface MoveRequest extends QueryRequest {
  /** Move Destination AE title. */
  destination: string;
}

/** Where a C-MOVE sends its sub-operations. */
export interface MoveDestination {
  host: string;
  port: number;
  aeTitle: string;
  tls?: TlsOptions;
}

/** What a C-MOVE/C-GET handler returns: the objects to send (and for C-MOVE, where). */
export interface RetrievePlan {
  instances: StoreSource[];
  /** C-MOVE only; omit (or throw DimseStatusError 0xA801) when the destination AE is unknown. */
  destination?: MoveDestination;
}

export interface ScpHandlers {
  /** C-ECHO; default answers success. */
  echo?: (rq: RequestInfo) => number | Promise<number>;
  /** C-STORE; returns the status (0 success). Throw DimseStatusError for a specific failure status. */
  store?: (rq: StoreRequest) => StoreAnswer | Promise<StoreAnswer>;
  /** C-FIND; yields the matches. */
  find?: (rq: QueryRequest) => AsyncIterable<DataSet> | Iterable<DataSet>;
  move?: (rq: MoveRequest) => RetrievePlan | Promise<RetrievePlan>;
  get?: (rq: QueryRequest) => RetrievePlan | Promise<RetrievePlan>;
  /**
   * Storage Commitment SCP (N-ACTION): which of the objects this node takes responsibility for.
   * The report goes back on the same association.
   */
  commit?: (rq: RequestInfo & { transactionUid: string; items: CommitItem[] }) => CommitmentResult | Promise<CommitmentResult>;
  /** Storage Commitment SCU: a report (N-EVENT-REPORT) the peer sent on an association it opened. */
  commitReport?: (rq: RequestInfo & { result: CommitmentResult }) => void | Promise<void>;
}

/** What the `accept` hook sees. */
export interface AssociationRequest {
  callingAet: string;
  calledAet: string;
  remoteAddress: string;
  /** CN of the verified TLS client certificate's subject, when the caller presented one. */
  subjectCn?: string;
  request: AssociateRq;
}

/**
 * Things an SCP reports (the library never prints; a command may log these). AE titles and other
 * strings that came from the peer are made printable (control characters escaped) so a log line
 * cannot be forged with them.
 */
export type ScpEvent =
  | { type: "association"; callingAet: string; calledAet: string; remoteAddress: string; accepted: number; services: "all" | "storage" }
  | { type: "rejected"; callingAet: string; calledAet: string; remoteAddress: string; reason: string }
  | { type: "closed"; callingAet: string; remoteAddress: string; reason: string }
  | { type: "error"; callingAet?: string; remoteAddress: string; message: string }
  /** A C-STORE answered with a failure status (`message` says why), or a warning (`warning: true`). */
  | { type: "store-failed"; callingAet: string; remoteAddress: string; sopInstanceUid: string; status: number; message: string; warning?: boolean };

/**
 * Settings of an SCP made with {@linkcode createScp}: AE title, address, TLS, accepted callers and
 * SOP classes, where received objects go, and the handlers for each DIMSE service.
 */
export interface ScpOptions {
  aeTitle: string;
  /** 0 (default) picks a free port; see `Scp.port`. */
  port?: number;
  /** Address to listen on (default 127.0.0.1: reachable from other hosts only when asked for). */
  host?: string;
  /** TLS: `cert` and `key` required; `ca` + `requestCert` to require client certificates. */
  tls?: TlsOptions;
  /**
   * Who may associate: entries (`AE`, `AE@10.0.0.0/24`, `AE#client-cn`, see allow.ts) whose callers
   * get every service. Others are rejected (calling AE title not recognized) unless `openTo`
   * lets them in for storage. With neither this nor `allowedCallingAets`, anyone may associate.
   */
  allow?: (string | AllowEntry)[];
  /** Calling AE titles allowed from anywhere (the same as `allow` entries without address). */
  allowedCallingAets?: string[];
  /** With `allow`: callers not on it may still associate for Verification and Storage (their Q/R contexts are rejected). */
  openTo?: { store?: boolean };
  /** Caps on what peers may make this SCP hold (limits.ts); `maxPdu` below wins over `limits.maxPdu`. */
  limits?: Partial<ScpLimits>;
  /** Reject requests whose called AE title is not `aeTitle` (default true). */
  checkCalledAet?: boolean;
  /** Extra check; return a rejection to refuse (result, source, reason per PS3.8 Table 9-21). */
  accept?: (rq: AssociationRequest) => { reject?: { result: number; source: number; reason: number } } | void;
  /**
   * Also accept SOP classes that are not standard storage classes (vendors' private ones, e.g.
   * Varian's 1.2.246.352.*) for storage, as Orthanc's UnknownSopClassAccepted does. Default false.
   */
  acceptUnknownSopClasses?: boolean;
  /**
   * SOP classes accepted for storage although they are not standard storage classes: the per-class
   * form of `acceptUnknownSopClasses` (Philips' private CX 1.3.46.670589.2.4.1.1, the retired RT Beams
   * Delivery Instruction trial 1.2.840.10008.5.1.4.34.1, …).
   */
  acceptSopClasses?: Iterable<string>;
  /** Transfer syntaxes accepted for storage, in preference order; default: whatever the requestor proposes first. */
  storageTransferSyntaxes?: string[];
  /** Directory for incoming objects' temporary files (default the OS temp dir); same file system as their final home, so the rename is atomic. */
  storeDir?: string;
  /** Hash each received object while writing it (`ReceivedFile.sha256`), so nobody reads it again to hash it. */
  hashReceived?: boolean;
  /** Keep an in-memory copy of each received object up to this many bytes (`ReceivedFile.bytes`; the handler must `release()` it). */
  keepReceived?: number;
  maxPdu?: number;
  timeouts?: Timeouts;
  handlers: ScpHandlers;
  onEvent?: (e: ScpEvent) => void;
}

export interface Scp {
  readonly port: number;
  readonly host: string;
  readonly aeTitle: string;
  /** Stops listening and aborts the associations in progress. */
  close(): Promise<void>;
}

const NATIVE_PREFERENCE = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN];
const STORAGE = new Set(STORAGE_SOP_CLASSES);

function isStorageClass(uid: string): boolean {
  // Also classes newer than our dictionary: storage classes all live under 1.2.840.10008.5.1.4.1.1.
  return STORAGE.has(uid) || uid.startsWith("1.2.840.10008.5.1.4.1.1.");
}

/**
 * Standard services that are not storage, by UID or UID prefix (PS3.6 Table A-1): verification,
 * commitment and other 1.2.840.10008.1.*, detached management and MPPS (3.*), print (5.1.1.*),
 * Q/R models (5.1.4.1.2.*, composite instance retrieve 5.1.4.20.*), worklists and instance
 * availability (5.1.4.31-33), UPS and RT machine verification (5.1.4.34.4-6, .8, .9), hanging
 * protocol, color palette and implant template Q/R (5.1.4.37-45 non-storage members).
 * Standard UIDs outside this list and outside the storage dictionary (the retired RT Beams
 * Delivery Instruction trial 1.2.840.10008.5.1.4.34.1) count as unknown storage classes.
 */
const NON_STORAGE_PREFIXES = [
  "1.2.840.10008.1.", "1.2.840.10008.2.", "1.2.840.10008.3.", "1.2.840.10008.4.", "1.2.840.10008.5.1.1.",
  "1.2.840.10008.5.1.4.1.2.", "1.2.840.10008.5.1.4.20.", "1.2.840.10008.5.1.4.31", "1.2.840.10008.5.1.4.32",
  "1.2.840.10008.5.1.4.33", "1.2.840.10008.5.1.4.34.4", "1.2.840.10008.5.1.4.34.5", "1.2.840.10008.5.1.4.34.6",
  "1.2.840.10008.5.1.4.34.8", "1.2.840.10008.5.1.4.34.9", "1.2.840.10008.5.1.4.37.", "1.2.840.10008.5.1.4.38.2",
  "1.2.840.10008.5.1.4.38.3", "1.2.840.10008.5.1.4.38.4", "1.2.840.10008.5.1.4.39.2", "1.2.840.10008.5.1.4.39.3",
  "1.2.840.10008.5.1.4.39.4", "1.2.840.10008.5.1.4.41", "1.2.840.10008.5.1.4.42", "1.2.840.10008.5.1.4.43.2",
  "1.2.840.10008.5.1.4.43.3", "1.2.840.10008.5.1.4.43.4", "1.2.840.10008.5.1.4.44.2", "1.2.840.10008.5.1.4.44.3",
  "1.2.840.10008.5.1.4.44.4", "1.2.840.10008.5.1.4.45.2", "1.2.840.10008.5.1.4.45.3", "1.2.840.10008.5.1.4.45.4",
];

/** Standard service classes that are not storage (Q/R, worklist, MPPS, commitment, print, …). */
function isKnownNonStorage(uid: string): boolean {
  return NON_STORAGE_PREFIXES.some((p) => (p.endsWith(".") ? uid.startsWith(p) : uid === p || uid.startsWith(p + ".")));
}

/**
 * Negotiates presentation contexts for an SCP with the given handlers. Storage takes the standard
 * storage classes, those in `acceptClasses`, and with `acceptUnknown` any SOP class that is not a
 * standard non-storage service.
 */
export function negotiateContexts(
  rq: AssociateRq, handlers: ScpHandlers, storageTs?: string[], acceptUnknown = false, acceptClasses: ReadonlySet<string> = new Set(),
): NegotiatedContext[] {
  const qr = new Set<string>();
  if (handlers.find) qr.add(QR_MODELS.patientRoot.find).add(QR_MODELS.studyRoot.find);
  if (handlers.move) qr.add(QR_MODELS.patientRoot.move).add(QR_MODELS.studyRoot.move);
  if (handlers.get) qr.add(QR_MODELS.patientRoot.get).add(QR_MODELS.studyRoot.get);
  if (handlers.commit || handlers.commitReport) qr.add(STORAGE_COMMITMENT_PUSH);
  const storageOk = !!(handlers.store || handlers.get);
  return rq.contexts.map((pc) => {
    const base = { id: pc.id, abstractSyntax: pc.abstractSyntax };
    let ts: string | undefined;
    if (pc.abstractSyntax === VERIFICATION_SOP_CLASS || qr.has(pc.abstractSyntax)) {
      ts = NATIVE_PREFERENCE.slice(0, 3).find((t) => pc.transferSyntaxes.includes(t));
    } else if (storageOk && (isStorageClass(pc.abstractSyntax) || acceptClasses.has(pc.abstractSyntax) ||
        (acceptUnknown && !isKnownNonStorage(pc.abstractSyntax)))) {
      ts = storageTs ? storageTs.find((t) => pc.transferSyntaxes.includes(t)) : pc.transferSyntaxes[0];
    } else {
      return { ...base, transferSyntax: "", accepted: false, result: PC_ABSTRACT_SYNTAX_NOT_SUPPORTED };
    }
    if (!ts) return { ...base, transferSyntax: "", accepted: false, result: PC_TRANSFER_SYNTAXES_NOT_SUPPORTED };
    return { ...base, transferSyntax: ts, accepted: true, result: PC_ACCEPTANCE };
  });
}

/** Connections open at once (per host too), and associations established, in total, per host and per calling AE title. */
class Occupancy {
  associations = 0;
  readonly connectionsByHost = new Map<string, number>();
  readonly byHost = new Map<string, number>();
  readonly byAe = new Map<string, number>();
  static add(map: Map<string, number>, key: string, d: number): void {
    const n = (map.get(key) ?? 0) + d;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
  }
}

/** The address part of a socket's remote address (IPv4-mapped IPv6 as IPv4). */
function hostOf(socket: net.Socket): string {
  return (socket.remoteAddress ?? "").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
}

/**
 * Starts an SCP (the framework `serve` is built on: accept rules, handlers for C-ECHO, C-STORE,
 * C-FIND, C-MOVE and C-GET); resolves once it listens.
 *
 * @example
 * ```ts
 * const scp = await createScp({ aeTitle: "MYSCP", port: 0, handlers: { echo: () => 0 } });
 * console.log(scp.port); // a free port; services without a handler are not accepted
 * await scp.close();
 * ```
 */
export async function createScp(opts: ScpOptions): Promise<Scp> {
  const sockets = new Set<net.Socket>();
  const limits = withDefaults(DEFAULT_SCP_LIMITS, opts.limits);
  if (opts.maxPdu !== undefined) limits.maxPdu = opts.maxPdu;
  const allow = opts.allow || opts.allowedCallingAets
    ? [
      ...(opts.allow ?? []).map((e) => (typeof e === "string" ? parseAllowEntry(e) : e)),
      ...(opts.allowedCallingAets ?? []).map((aeTitle) => ({ aeTitle })),
    ]
    : undefined;
  const occupancy = new Occupancy();
  const emit = (e: ScpEvent) => {
    try {
      opts.onEvent?.(e);
    } catch { /* a logging hook must not break the server */ }
  };
  const onSocket = (socket: net.Socket, secure: boolean) => {
    const host = hostOf(socket);
    const remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    // Beyond twice the caps nothing is read at all: a flood of connections (that may never send
    // an A-ASSOCIATE-RQ) costs a socket each, briefly, and cannot crowd out other hosts.
    const fromHost = occupancy.connectionsByHost.get(host) ?? 0;
    if (sockets.size >= limits.maxAssociations * 2 || fromHost >= limits.maxAssociationsPerPeer * 2) {
      const why = sockets.size >= limits.maxAssociations * 2
        ? `more than ${limits.maxAssociations * 2} connections open`
        : `more than ${limits.maxAssociationsPerPeer * 2} connections open from ${host}`;
      emit({ type: "rejected", callingAet: "?", calledAet: "?", remoteAddress, reason: `${why}; closed at once` });
      socket.destroy();
      return;
    }
    sockets.add(socket);
    Occupancy.add(occupancy.connectionsByHost, host, 1);
    socket.on("close", () => {
      sockets.delete(socket);
      Occupancy.add(occupancy.connectionsByHost, host, -1);
    });
    const ctx: AssociationContext = { opts, limits, allow, occupancy, emit, secure, remoteAddress, host };
    serveAssociation(socket, ctx).catch((e) => {
      emit({ type: "error", remoteAddress, message: (e as Error).message });
      socket.destroy();
    });
  };
  let server: net.Server;
  if (opts.tls) {
    const tls = await import("node:tls"); // loaded only when needed (~60 ms)
    const t = opts.tls;
    const o: tlsTypes.TlsOptions = { requestCert: t.requestCert ?? false, rejectUnauthorized: t.requestCert ?? false };
    if (t.cert) o.cert = pem(t.cert);
    if (t.key) o.key = pem(t.key);
    if (t.ca) o.ca = pem(t.ca);
    server = tls.createServer(o, (s) => onSocket(s, true));
    server.on("tlsClientError", (e: Error & { code?: string }, s: tlsTypes.TLSSocket) => {
      emit({ type: "error", remoteAddress: `${s.remoteAddress}:${s.remotePort}`, message: `TLS failure with the caller: ${tlsClientText(e)}` });
    });
  } else {
    server = net.createServer((s) => onSocket(s, false));
  }
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    // One sentence naming the address (what Node says, "listen EADDRINUSE: …", names no remedy).
    const failed = (e: Error & { code?: string }) => {
      const where = `${host}:${opts.port ?? 0}`;
      const why = e.code === "EADDRINUSE"
        ? "the port is in use by another program (another rtexport, a storescp?); choose another port"
        : e.code === "EACCES"
        ? "permission denied (ports below 1024 need administrator rights); choose a port above 1023"
        : e.code === "EADDRNOTAVAIL"
        ? "this machine has no such address"
        : e.message;
      reject(Object.assign(new Error(`Cannot listen for DICOM associations on ${where}: ${why}`), { code: e.code }));
    };
    server.once("error", failed);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", failed);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    host,
    aeTitle: opts.aeTitle,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** A server-side TLS failure in words (the caller's side of `tlsFailureText`). */
function tlsClientText(e: Error & { code?: string }): string {
  const m = (e.message ?? "").toLowerCase();
  if (/peer did not return a certificate|certificate required|no certificate/.test(m)) return "it presented no client certificate";
  if (/certificate verify failed|unknown ca|self.signed|unable to get/.test(m)) return "its client certificate is not signed by a trusted CA";
  if (/http request|wrong version|unknown protocol|packet length/.test(m)) return "it does not speak TLS";
  if (/expired/.test(m)) return "its client certificate has expired";
  if (/socket hang up|econnreset|disconnected/.test(m) || e.code === "ECONNRESET") return "it closed the connection during the TLS handshake";
  return tlsFailureText(e.code ?? "", e.message ?? "");
}

function pem(v: string | Uint8Array): string | Buffer {
  return typeof v === "string" ? v : Buffer.from(v);
}

interface AssociationContext {
  opts: ScpOptions;
  limits: ScpLimits;
  allow: AllowEntry[] | undefined;
  occupancy: Occupancy;
  emit: (e: ScpEvent) => void;
  secure: boolean;
  remoteAddress: string;
  host: string;
}

/** The CN of a TLS socket's verified client certificate. */
function subjectCnOf(socket: net.Socket): string | undefined {
  const t = socket as tlsTypes.TLSSocket;
  if (typeof t.getPeerCertificate !== "function" || !t.authorized) return undefined;
  const cn = t.getPeerCertificate()?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

async function serveAssociation(socket: net.Socket, ctx: AssociationContext): Promise<void> {
  const { opts, limits, emit, remoteAddress } = ctx;
  const assoc = new Association(socket, { requestor: false, peer: remoteAddress, tls: ctx.secure, timeouts: opts.timeouts, limits });
  assoc.storeDir = opts.storeDir ?? os.tmpdir();
  assoc.hashReceived = opts.hashReceived === true;
  assoc.keepReceived = opts.keepReceived ?? 0;
  let rq;
  try {
    rq = await assoc.waitPdu(assoc.timeouts.association, "association request");
  } catch (e) {
    emit({ type: "error", remoteAddress, message: (e as Error).message });
    socket.destroy();
    return;
  }
  if (rq.type !== PDU_ASSOCIATE_RQ) {
    assoc.abort();
    return;
  }
  assoc.request = rq;
  assoc.setAets(rq.callingAet, rq.calledAet);
  const callingAet = printable(rq.callingAet);
  const calledAet = printable(rq.calledAet);
  const reject = (result: number, source: number, reason: number, why: string) => {
    emit({ type: "rejected", callingAet, calledAet, remoteAddress, reason: why });
    assoc.rejectAssociation(result, source, reason);
  };
  if (rq.protocolVersion !== 1 && (rq.protocolVersion & 1) === 0) return reject(1, 2, 2, "protocol version not supported");
  if (rq.applicationContext !== APPLICATION_CONTEXT_NAME) {
    return reject(1, 1, 2, `application context "${printable(rq.applicationContext)}" is not the DICOM application context`);
  }
  if (!isValidAeTitle(rq.callingAet)) return reject(1, 1, 3, `calling AE title "${callingAet}" holds characters an AE title may not have`);
  if (!isValidAeTitle(rq.calledAet)) return reject(1, 1, 7, `called AE title "${calledAet}" holds characters an AE title may not have`);
  if (opts.checkCalledAet !== false && rq.calledAet !== opts.aeTitle) {
    return reject(1, 1, 7, `called AE title "${calledAet}" is not "${opts.aeTitle}"`);
  }
  const subjectCn = subjectCnOf(socket);
  let services: "all" | "storage" = "all";
  if (ctx.allow) {
    if (!allowedBy(ctx.allow, { callingAet: rq.callingAet, address: ctx.host, subjectCn })) {
      if (!opts.openTo?.store) {
        const listed = ctx.allow.some((e) => e.aeTitle === rq.callingAet);
        return reject(1, 1, 3, listed
          ? `calling AE title "${callingAet}" is not allowed from ${ctx.host}${ctx.secure ? ` with certificate CN "${printable(subjectCn ?? "")}"` : ""}`
          : `calling AE title "${callingAet}" is not allowed`);
      }
      services = "storage";
    }
  }
  // Limits, once the caller is known: associations in total, from its host, and as its AE title.
  const { occupancy } = ctx;
  if (occupancy.associations >= limits.maxAssociations) return reject(2, 3, 2, `${limits.maxAssociations} associations are open already`);
  if ((occupancy.byHost.get(ctx.host) ?? 0) >= limits.maxAssociationsPerPeer) {
    return reject(2, 3, 2, `${limits.maxAssociationsPerPeer} associations from ${ctx.host} are open already`);
  }
  if ((occupancy.byAe.get(rq.callingAet) ?? 0) >= limits.maxAssociationsPerPeer) {
    return reject(2, 3, 2, `${limits.maxAssociationsPerPeer} associations as "${callingAet}" are open already`);
  }
  const custom = opts.accept?.({ callingAet: rq.callingAet, calledAet: rq.calledAet, remoteAddress, subjectCn, request: rq });
  if (custom?.reject) return reject(custom.reject.result, custom.reject.source, custom.reject.reason, "refused by the accept hook");
  const handlers: ScpHandlers = services === "all" ? opts.handlers : { echo: opts.handlers.echo, store: opts.handlers.store };
  const contexts = negotiateContexts(rq, handlers, opts.storageTransferSyntaxes, opts.acceptUnknownSopClasses, new Set(opts.acceptSopClasses ?? [])).map((c) =>
    // Q/R for a caller let in for storage only: refused by the user, not "unknown to us".
    services === "storage" && !c.accepted && isQrModel(c.abstractSyntax) ? { ...c, result: PC_USER_REJECTION } : c
  );
  const roles: RoleSelection[] = rq.user.roles.map((r) => ({ sopClassUid: r.sopClassUid, scu: r.scu, scp: r.scp }));
  if (socket.destroyed) return; // gone while we decided: nothing to count
  assoc.acceptAssociation(rq, contexts, roles, limits.maxPdu);
  occupancy.associations++;
  Occupancy.add(occupancy.byAe, rq.callingAet, 1);
  Occupancy.add(occupancy.byHost, ctx.host, 1);
  socket.once("close", () => {
    occupancy.associations--;
    Occupancy.add(occupancy.byAe, rq.callingAet, -1);
    Occupancy.add(occupancy.byHost, ctx.host, -1);
  });
  emit({ type: "association", callingAet, calledAet, remoteAddress, accepted: contexts.filter((c) => c.accepted).length, services });

  const info: RequestInfo = { callingAet: rq.callingAet, calledAet: rq.calledAet, remoteAddress, association: assoc };
  for (;;) {
    let m;
    try {
      m = await assoc.receive();
    } catch (e) {
      emit({ type: "closed", callingAet, remoteAddress, reason: (e as Error).message });
      return;
    }
    try {
      await dispatch(assoc, m, info, handlers, ctx);
    } catch (e) {
      emit({ type: "error", callingAet, remoteAddress, message: (e as Error).message });
      if (!assoc.established) return;
    }
  }
}

type Message = Awaited<ReturnType<Association["receive"]>>;

const QR_SERVICES = new Map<string, "find" | "move" | "get">([
  [QR_MODELS.patientRoot.find, "find"], [QR_MODELS.studyRoot.find, "find"],
  [QR_MODELS.patientRoot.move, "move"], [QR_MODELS.studyRoot.move, "move"],
  [QR_MODELS.patientRoot.get, "get"], [QR_MODELS.studyRoot.get, "get"],
]);

function isQrModel(uid: string): boolean {
  return QR_SERVICES.has(uid);
}

/** The service a presentation context was accepted for. */
function serviceOf(abstractSyntax: string): "verification" | "find" | "move" | "get" | "storage" | "commitment" {
  if (abstractSyntax === VERIFICATION_SOP_CLASS) return "verification";
  if (abstractSyntax === STORAGE_COMMITMENT_PUSH) return "commitment";
  return QR_SERVICES.get(abstractSyntax) ?? "storage";
}

const SERVICE_OF_COMMAND: Record<number, string> = {
  [C_ECHO_RQ]: "verification", [C_STORE_RQ]: "storage", [C_FIND_RQ]: "find", [C_MOVE_RQ]: "move", [C_GET_RQ]: "get",
  [N_ACTION_RQ]: "commitment", [N_EVENT_REPORT_RQ]: "commitment",
};

/** PS3.7 C.4: unrecognized operation. */
const STATUS_UNRECOGNIZED_OPERATION = 0x0211;

async function dispatch(assoc: Association, m: Message, info: RequestInfo, h: ScpHandlers, ctx: AssociationContext): Promise<void> {
  const cmd = m.command;
  if (cmd.commandField === C_CANCEL_RQ) return; // nothing in progress
  const rsp = (status: number, errorComment: string) =>
    assoc.sendMessage(m.contextId, {
      commandField: (cmd.commandField | 0x8000) & 0xffff, messageIdBeingRespondedTo: cmd.messageId,
      affectedSopClassUid: cmd.affectedSopClassUid ?? m.context.abstractSyntax, status, errorComment, hasDataSet: false,
    });
  const needed = SERVICE_OF_COMMAND[cmd.commandField];
  if (needed === undefined) {
    m.file?.release?.();
    if (m.file) unlinkQuiet(m.file.path);
    if (cmd.commandField & 0x8000) {
      // A response to nothing we asked: answering it would start a ping-pong.
      ctx.emit({ type: "error", callingAet: printable(info.callingAet), remoteAddress: info.remoteAddress, message: `Unexpected DIMSE response 0x${cmd.commandField.toString(16)} ignored` });
      return;
    }
    return await rsp(STATUS_UNRECOGNIZED_OPERATION, `Unrecognized operation 0x${cmd.commandField.toString(16).padStart(4, "0")}`);
  }
  // A message is served only on a context accepted for its service (a C-FIND on a storage
  // context would otherwise reach the find handler of a caller let in for storage only).
  if (serviceOf(m.context.abstractSyntax) !== needed) {
    m.file?.release?.();
    if (m.file) unlinkQuiet(m.file.path);
    return await rsp(STATUS_SOP_CLASS_NOT_SUPPORTED, `Not a ${needed} presentation context`);
  }
  switch (cmd.commandField) {
    case C_ECHO_RQ: {
      let status = STATUS_SUCCESS;
      if (h.echo) status = await h.echo(info);
      await assoc.sendMessage(m.contextId, { commandField: C_ECHO_RSP, messageIdBeingRespondedTo: cmd.messageId, affectedSopClassUid: cmd.affectedSopClassUid ?? VERIFICATION_SOP_CLASS, status, hasDataSet: false });
      return;
    }
    case C_STORE_RQ:
      return await serveStore(assoc, m, info, h, ctx);
    case C_FIND_RQ:
      if (!h.find) return await rsp(STATUS_SOP_CLASS_NOT_SUPPORTED, "Query not offered");
      return await serveFind(assoc, m, info, h);
    case N_ACTION_RQ:
    case N_EVENT_REPORT_RQ:
      return await serveCommitment(assoc, m, info, h);
    default:
      if (!(cmd.commandField === C_MOVE_RQ ? h.move : h.get)) return await rsp(STATUS_SOP_CLASS_NOT_SUPPORTED, "Retrieve not offered");
      return await serveRetrieve(assoc, m, info, h);
  }
}

/** Storage Commitment: a request (we are the SCP) or a report (we asked; the peer reports on an association it opened). */
async function serveCommitment(assoc: Association, m: Message, info: RequestInfo, h: ScpHandlers): Promise<void> {
  const cmd = m.command;
  if (cmd.commandField === N_EVENT_REPORT_RQ) {
    if (!h.commitReport) {
      await assoc.sendMessage(m.contextId, { commandField: N_EVENT_REPORT_RSP, messageIdBeingRespondedTo: cmd.messageId, status: STATUS_SOP_CLASS_NOT_SUPPORTED, errorComment: "Storage commitment reports not expected", hasDataSet: false });
      return;
    }
    const result = await answerReport(assoc, m);
    await h.commitReport({ ...info, result });
    return;
  }
  if (!h.commit) {
    await assoc.sendMessage(m.contextId, { commandField: N_ACTION_RSP, messageIdBeingRespondedTo: cmd.messageId, status: STATUS_SOP_CLASS_NOT_SUPPORTED, errorComment: "Storage commitment not offered", hasDataSet: false });
    return;
  }
  await serveCommitmentRequest(assoc, m, (transactionUid, items) => h.commit!({ ...info, transactionUid, items }));
}

/** C-STORE: the handler's answer goes back; every failure (and warning) is reported with its cause. */
async function serveStore(assoc: Association, m: Message, info: RequestInfo, h: ScpHandlers, ctx: AssociationContext): Promise<void> {
  const report = (status: number, message: string, warning = false) =>
    ctx.emit({
      type: "store-failed", callingAet: printable(info.callingAet), remoteAddress: info.remoteAddress,
      sopInstanceUid: printable(m.command.affectedSopInstanceUid ?? ""), status, message, ...(warning ? { warning } : {}),
    });
  if (m.error) report(STATUS_OUT_OF_RESOURCES, m.error);
  const handler = h.store ?? (() => ({ status: STATUS_SOP_CLASS_NOT_SUPPORTED, errorComment: "Storage not offered" }));
  await answerStore(assoc, m, async (file, msg) => {
    let r: StoreAnswer;
    try {
      r = await handler({ ...info, file, command: msg.command });
    } catch (e) {
      const status = e instanceof DimseStatusError ? e.status : STATUS_PROCESSING_FAILURE;
      report(status, (e as Error).message ?? String(e));
      throw e;
    }
    const cat = statusCategory(r.status);
    if (cat === "failure") report(r.status, r.detail ?? r.errorComment ?? statusText(r.status));
    else if (cat === "warning") report(r.status, r.detail ?? r.errorComment ?? statusText(r.status), true);
    return r;
  });
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch { /* gone already */ }
}

function queryRequest(assoc: Association, m: Message, info: RequestInfo): QueryRequest {
  const identifier = parseDataSet(m.dataset ?? new Uint8Array(0), m.context.transferSyntax);
  const id = m.command.messageId;
  let cancelled = false;
  return {
    ...info,
    model: m.context.abstractSyntax,
    level: identifier.string(0x00080052) ?? "",
    identifier,
    cancelled: () => cancelled ||= assoc.takeCancel(id),
  };
}

function failure(e: unknown, fallback: number): { status: number; errorComment: string } {
  const status = e instanceof DimseStatusError ? e.status : fallback;
  return { status, errorComment: ((e as Error).message ?? String(e)).slice(0, 64) };
}

/** The request's query; when its identifier does not parse, answers "cannot understand" (with `base`) and gives undefined. */
async function readQuery(
  assoc: Association, m: Message, info: RequestInfo, base: Pick<DimseCommand, "commandField" | "messageIdBeingRespondedTo" | "affectedSopClassUid">,
): Promise<QueryRequest | undefined> {
  try {
    return queryRequest(assoc, m, info);
  } catch {
    await assoc.sendMessage(m.contextId, { ...base, status: STATUS_CANNOT_UNDERSTAND, errorComment: "Cannot parse identifier", hasDataSet: false });
    return undefined;
  }
}

async function serveFind(assoc: Association, m: Message, info: RequestInfo, h: ScpHandlers): Promise<void> {
  const base = { commandField: C_FIND_RSP, messageIdBeingRespondedTo: m.command.messageId, affectedSopClassUid: m.context.abstractSyntax };
  const rq = await readQuery(assoc, m, info, base);
  if (!rq) return;
  try {
    let sent = 0;
    for await (const match of h.find!(rq)) {
      // Writes that fit the socket's buffer never wait for I/O: let the peer's messages (a
      // C-CANCEL) be read now and then, or a fast handler would answer every match first.
      if (++sent % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
      if (rq.cancelled()) {
        await assoc.sendMessage(m.contextId, { ...base, status: STATUS_CANCEL, hasDataSet: false });
        return;
      }
      await assoc.sendMessage(m.contextId, { ...base, status: STATUS_PENDING, hasDataSet: true }, encodeDataSet(match, m.context.transferSyntax));
    }
  } catch (e) {
    if (!assoc.established) throw e;
    await assoc.sendMessage(m.contextId, { ...base, ...failure(e, STATUS_QR_OUT_OF_RESOURCES), hasDataSet: false });
    return;
  }
  await assoc.sendMessage(m.contextId, { ...base, status: rq.cancelled() ? STATUS_CANCEL : STATUS_SUCCESS, hasDataSet: false });
}

async function serveRetrieve(assoc: Association, m: Message, info: RequestInfo, h: ScpHandlers): Promise<void> {
  const isMove = m.command.commandField === C_MOVE_RQ;
  const rspField = isMove ? C_MOVE_RSP : C_GET_RSP;
  const base = { commandField: rspField, messageIdBeingRespondedTo: m.command.messageId, affectedSopClassUid: m.context.abstractSyntax };
  const rq = await readQuery(assoc, m, info, base);
  if (!rq) return;
  let plan: RetrievePlan;
  try {
    plan = isMove ? await h.move!({ ...rq, destination: m.command.moveDestination ?? "" }) : await h.get!(rq);
    if (isMove && !plan.destination) throw new DimseStatusError(STATUS_MOVE_DESTINATION_UNKNOWN, `Move destination unknown: ${m.command.moveDestination}`);
  } catch (e) {
    await assoc.sendMessage(m.contextId, { ...base, ...failure(e, STATUS_PROCESSING_FAILURE), hasDataSet: false });
    return;
  }
  const total = plan.instances.length;
  let completed = 0, failed = 0, warning = 0;
  const failedUids: string[] = [];
  let target: Association = assoc;
  if (isMove) {
    const d = plan.destination!;
    if (total > 0) {
      try {
        const o: Parameters<typeof connect>[0] = {
          host: d.host, port: d.port, callingAet: info.calledAet, calledAet: d.aeTitle,
          contexts: storageContextsWithin(plan.instances), timeouts: assoc.timeouts,
        };
        if (d.tls) o.tls = d.tls;
        target = await connect(o);
      } catch (e) {
        await assoc.sendMessage(m.contextId, { ...base, status: 0xa801, errorComment: (e as Error).message.slice(0, 64), failed: total, completed: 0, warning: 0, remaining: 0, hasDataSet: false });
        return;
      }
    }
  }
  let cancelled = false;
  try {
    for (const [i, inst] of plan.instances.entries()) {
      if (rq.cancelled()) {
        cancelled = true;
        break;
      }
      try {
        const r = await store(target, inst, isMove ? { moveOriginatorAet: info.callingAet, moveOriginatorMessageId: m.command.messageId } : {});
        const cat = statusCategory(r.status);
        if (cat === "success") completed++;
        else if (cat === "warning") warning++;
        else {
          failed++;
          failedUids.push(inst.sopInstanceUid);
        }
      } catch (e) {
        failed++;
        failedUids.push(inst.sopInstanceUid);
        if (!assoc.established) throw e;
        if (isMove && !target.established) {
          // Destination gone: the rest fail too.
          for (const rest of plan.instances.slice(i + 1)) failedUids.push(rest.sopInstanceUid);
          failed += total - i - 1;
          break;
        }
      }
      const remaining = total - completed - failed - warning;
      if (remaining > 0) {
        await assoc.sendMessage(m.contextId, { ...base, status: STATUS_PENDING, remaining, completed, failed, warning, hasDataSet: false });
      }
    }
  } finally {
    if (isMove && target !== assoc) await target.release();
  }
  const remaining = total - completed - failed - warning;
  const status = cancelled ? STATUS_CANCEL : failed > 0 || warning > 0 ? STATUS_SUBOPS_WARNING : STATUS_SUCCESS;
  const final: DimseCommand = { ...base, status, completed, failed, warning, hasDataSet: false };
  if (cancelled) final.remaining = remaining;
  let data: Uint8Array | undefined;
  if (failedUids.length > 0) {
    const ds = new DataSet({ littleEndian: true, explicitVR: true });
    const v = new TextEncoder().encode(failedUids.join("\\"));
    const value = v.length % 2 ? Uint8Array.from([...v, 0]) : v;
    ds.set({ tag: 0x00080058, vr: "UI", value, offset: 0, length: value.length });
    data = encodeDataSet(ds, m.context.transferSyntax);
  }
  await assoc.sendMessage(m.contextId, final, data);
}
