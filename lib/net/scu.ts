/**
 * DIMSE service operations on an association (PS3.7 section 9): C-ECHO, C-STORE, C-FIND,
 * C-MOVE, C-GET, for the side that sends the request. Also used by the SCP framework for the
 * C-STORE sub-operations of C-MOVE and C-GET.
 */
import { unlinkSync } from "node:fs";
import type { DataSet } from "../dicom/dataset.ts";
import { parseDataSet, readDicomFile } from "../dicom/reader.ts";
import { encodeDataSet } from "../dicom/writer.ts";
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
  SOP_CLASS_NAMES, TRANSFER_SYNTAX_NAMES, VERIFICATION_SOP_CLASS,
} from "../dicom/uids.ts";
import { contextResultText } from "./pdu.ts";
import type { Association, DimseMessage, NegotiatedContext, ReceivedFile } from "./association.ts";
import {
  C_CANCEL_RQ, C_ECHO_RQ, C_ECHO_RSP, C_FIND_RQ, C_FIND_RSP, C_GET_RQ, C_GET_RSP, C_MOVE_RQ, C_MOVE_RSP,
  C_STORE_RQ, C_STORE_RSP, type DimseCommand, STATUS_OUT_OF_RESOURCES, STATUS_PROCESSING_FAILURE, statusCategory,
} from "./dimse.ts";
import { DicomNetError } from "./errors.ts";

/** The uncompressed syntaxes we transcode between (deflate counts: it inflates losslessly). */
const NATIVE = new Set([EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]);

export function isNativeTransferSyntax(uid: string): boolean {
  return NATIVE.has(uid);
}

/**
 * Query/Retrieve information models (SOP class UIDs of C-FIND, C-MOVE and C-GET): Patient Root
 * and Study Root.
 *
 * @example
 * ```ts
 * for await (const match of find(assoc, QR_MODELS.studyRoot.find, identifier)) console.log(match.string("StudyInstanceUID"));
 * ```
 */
export const QR_MODELS = {
  patientRoot: {
    find: "1.2.840.10008.5.1.4.1.2.1.1",
    move: "1.2.840.10008.5.1.4.1.2.1.2",
    get: "1.2.840.10008.5.1.4.1.2.1.3",
  },
  studyRoot: {
    find: "1.2.840.10008.5.1.4.1.2.2.1",
    move: "1.2.840.10008.5.1.4.1.2.2.2",
    get: "1.2.840.10008.5.1.4.1.2.2.3",
  },
} as const;

/** An object to send with C-STORE: a Part 10 file (its data set is streamed) or a data set in memory. */
export interface StoreSource {
  sopClassUid: string;
  sopInstanceUid: string;
  /** Transfer syntax of the data set bytes. */
  transferSyntaxUid: string;
  /** Part 10 file holding the data set from `datasetOffset` to its end. */
  path?: string;
  datasetOffset?: number;
  /** File size in bytes (with `path`). */
  size?: number;
  /** The encoded data set, when not from a file. */
  bytes?: Uint8Array;
  /** The parsed data set, when the caller changed it (sent re-encoded in the negotiated syntax). */
  dataset?: DataSet;
}

/** Reads a file's header (not its pixel data) to make a StoreSource. Throws `DicomParseError`. */
export function storeSourceFromFile(path: string): StoreSource {
  const f = readDicomFile(path);
  const sopClassUid = f.meta.string(0x00020002) ?? f.dataset.string(0x00080016);
  const sopInstanceUid = f.meta.string(0x00020003) ?? f.dataset.string(0x00080018);
  if (!sopClassUid || !sopInstanceUid) {
    throw new Error(`Cannot send "${path}": it has no SOP Class UID or SOP Instance UID`);
  }
  return { sopClassUid, sopInstanceUid, transferSyntaxUid: f.transferSyntaxUid, path, datasetOffset: f.datasetOffset, size: f.size };
}

/**
 * Presentation contexts for a set of objects: per SOP class and transfer syntax; native syntaxes
 * also offer explicit and implicit VR little endian as alternatives, compressed ones only
 * themselves (they cannot be transcoded losslessly here).
 */
export function storageContexts(objects: Iterable<{ sopClassUid: string; transferSyntaxUid: string }>): { abstractSyntax: string; transferSyntaxes: string[] }[] {
  const out = new Map<string, { abstractSyntax: string; transferSyntaxes: string[] }>();
  for (const o of objects) {
    const native = NATIVE.has(o.transferSyntaxUid);
    const key = `${o.sopClassUid}|${native ? "native" : o.transferSyntaxUid}`;
    const existing = out.get(key);
    if (native) {
      const list = existing?.transferSyntaxes ?? [];
      for (const ts of [o.transferSyntaxUid, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN]) if (!list.includes(ts)) list.push(ts);
      if (!existing) out.set(key, { abstractSyntax: o.sopClassUid, transferSyntaxes: list });
    } else if (!existing) {
      out.set(key, { abstractSyntax: o.sopClassUid, transferSyntaxes: [o.transferSyntaxUid] });
    }
  }
  return [...out.values()];
}

/** The outcome of a C-STORE. */
export interface StoreResult {
  status: number;
  errorComment?: string;
  /** How the data set was sent: streamed unchanged, or transcoded to another syntax. */
  mode: "streamed" | "transcoded" | "encoded";
  transferSyntaxUid: string;
}

/** Picks the accepted context for an object; says why none fits. */
export function chooseStoreContext(assoc: Association, sopClassUid: string, transferSyntaxUid: string, reencode: boolean): { context: NegotiatedContext; transcode: boolean } {
  const candidates = assoc.acceptedContexts().filter((c) => c.abstractSyntax === sopClassUid);
  const tsName = (uid: string) => TRANSFER_SYNTAX_NAMES[uid] ?? uid;
  const className = SOP_CLASS_NAMES.get(sopClassUid) ?? sopClassUid;
  if (candidates.length === 0) {
    const rejected = [...assoc.contexts.values()].filter((c) => c.abstractSyntax === sopClassUid);
    if (rejected.length === 0) throw new DicomNetError("NO_CONTEXT", `No presentation context was proposed for ${className}`);
    if (rejected.some((c) => c.result === 4)) {
      const proposed = assoc.request?.contexts.filter((c) => c.abstractSyntax === sopClassUid).flatMap((c) => c.transferSyntaxes) ?? [];
      throw new DicomNetError("NO_CONTEXT", `${assoc.peer} does not accept ${className} in ${[...new Set(proposed)].map(tsName).join(" or ")}${NATIVE.has(transferSyntaxUid) ? "" : ", and the file's compressed transfer syntax cannot be transcoded losslessly here"}`);
    }
    throw new DicomNetError("NO_CONTEXT", `${assoc.peer} does not support ${className} (${contextResultText(rejected[0].result)})`);
  }
  const exact = candidates.find((c) => c.transferSyntax === transferSyntaxUid);
  if (exact && !(reencode && transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)) return { context: exact, transcode: false };
  if (NATIVE.has(transferSyntaxUid)) {
    const pref = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN];
    for (const ts of pref) {
      const c = candidates.find((x) => x.transferSyntax === ts);
      if (c) return { context: c, transcode: true };
    }
  }
  const offered = candidates.map((c) => tsName(c.transferSyntax)).join(", ");
  throw new DicomNetError("NO_CONTEXT", `${assoc.peer} does not accept ${className} in ${tsName(transferSyntaxUid)} (it accepted ${offered}), and the file's compressed transfer syntax cannot be transcoded losslessly here`);
}

async function response(assoc: Association, expected: number, messageId: number): Promise<DimseMessage> {
  for (;;) {
    const m = await assoc.receive();
    if (m.command.commandField === expected && m.command.messageIdBeingRespondedTo === messageId) return m;
    if (m.command.commandField === expected && m.command.messageIdBeingRespondedTo === undefined) return m;
    assoc.abort();
    throw new DicomNetError("PROTOCOL", `Unexpected DIMSE message 0x${m.command.commandField.toString(16)} from ${assoc.peer}`);
  }
}

/**
 * C-ECHO on an open association; resolves with the status (0 on success).
 *
 * @example
 * ```ts
 * const status = await echo(assoc); // see connect
 * ```
 */
export async function echo(assoc: Association): Promise<number> {
  const ctx = assoc.acceptedContexts().find((c) => c.abstractSyntax === VERIFICATION_SOP_CLASS);
  if (!ctx) throw new DicomNetError("NO_CONTEXT", `${assoc.peer} did not accept the Verification SOP class`);
  const id = assoc.nextMessageId();
  await assoc.sendMessage(ctx.id, { commandField: C_ECHO_RQ, messageId: id, affectedSopClassUid: VERIFICATION_SOP_CLASS, hasDataSet: false });
  const rsp = await response(assoc, C_ECHO_RSP, id);
  return rsp.command.status ?? 0;
}

/**
 * C-STORE one object. Streams the file's data set unchanged when the negotiated transfer syntax
 * is the file's; transcodes between native syntaxes otherwise; throws `DicomNetError`
 * (code NO_CONTEXT) when no accepted context fits. A non-success status is returned, not thrown.
 *
 * @example
 * ```ts
 * const result = await store(assoc, storeSourceFromFile("RP1.dcm"));
 * console.log(result.status);
 * ```
 */
export async function store(assoc: Association, src: StoreSource, opts: { moveOriginatorAet?: string; moveOriginatorMessageId?: number; priority?: number } = {}): Promise<StoreResult> {
  const { context, transcode } = chooseStoreContext(assoc, src.sopClassUid, src.transferSyntaxUid, src.dataset !== undefined);
  const id = assoc.nextMessageId();
  const cmd: DimseCommand = {
    commandField: C_STORE_RQ,
    messageId: id,
    affectedSopClassUid: src.sopClassUid,
    affectedSopInstanceUid: src.sopInstanceUid,
    priority: opts.priority ?? 0,
    hasDataSet: true,
  };
  if (opts.moveOriginatorAet !== undefined) cmd.moveOriginatorAet = opts.moveOriginatorAet;
  if (opts.moveOriginatorMessageId !== undefined) cmd.moveOriginatorMessageId = opts.moveOriginatorMessageId;
  let mode: StoreResult["mode"];
  if (src.dataset) {
    mode = "encoded";
    await assoc.sendMessage(context.id, cmd, encodeDataSet(src.dataset, context.transferSyntax));
  } else if (!transcode) {
    mode = "streamed";
    if (src.bytes) await assoc.sendMessage(context.id, cmd, src.bytes);
    else if (src.path !== undefined) {
      const offset = src.datasetOffset ?? 0;
      const size = src.size ?? readDicomFile(src.path).size;
      await assoc.sendMessage(context.id, cmd, { path: src.path, offset, length: size - offset });
    } else throw new Error("C-STORE source has neither a path nor bytes");
  } else {
    mode = "transcoded";
    const ds = src.bytes
      ? parseDataSet(src.bytes, src.transferSyntaxUid)
      : readDicomFile(src.path!, { full: true }).dataset;
    await assoc.sendMessage(context.id, cmd, encodeDataSet(ds, context.transferSyntax));
  }
  const rsp = await response(assoc, C_STORE_RSP, id);
  const r: StoreResult = { status: rsp.command.status ?? 0, mode, transferSyntaxUid: context.transferSyntax };
  if (rsp.command.errorComment) r.errorComment = rsp.command.errorComment;
  return r;
}

/** Query levels. */
export type QueryLevel = "PATIENT" | "STUDY" | "SERIES" | "IMAGE";

function qrContext(assoc: Association, sopClass: string, what: string): NegotiatedContext {
  const ctx = assoc.acceptedContexts().find((c) => c.abstractSyntax === sopClass);
  if (!ctx) throw new DicomNetError("NO_CONTEXT", `${assoc.peer} did not accept ${what} (${sopClass})`);
  return ctx;
}

/**
 * C-FIND: yields each match (pending response identifier), decoded. The identifier must
 * contain QueryRetrieveLevel (0008,0052). Breaking out of the loop sends C-CANCEL.
 *
 * @example
 * ```ts
 * const id = new DataSet();
 * // … QueryRetrieveLevel=PATIENT, PatientID=*, PatientName (empty: return it)
 * for await (const match of find(assoc, QR_MODELS.patientRoot.find, id)) console.log(match.string("PatientID"));
 * ```
 */
export async function* find(assoc: Association, model: string, identifier: DataSet): AsyncGenerator<DataSet, number> {
  const ctx = qrContext(assoc, model, "the C-FIND information model");
  const id = assoc.nextMessageId();
  await assoc.sendMessage(ctx.id, { commandField: C_FIND_RQ, messageId: id, affectedSopClassUid: model, priority: 0, hasDataSet: true }, encodeDataSet(identifier, ctx.transferSyntax));
  let done = false;
  try {
    for (;;) {
      const m = await response(assoc, C_FIND_RSP, id);
      const status = m.command.status ?? 0;
      const cat = statusCategory(status);
      if (cat === "pending") {
        if (m.dataset) yield parseDataSet(m.dataset, ctx.transferSyntax);
        continue;
      }
      done = true;
      if (cat === "failure") throw new QueryError("C-FIND", status, m.command.errorComment, assoc.peer);
      return status;
    }
  } finally {
    if (!done && assoc.established) await cancel(assoc, ctx.id, id, C_FIND_RSP);
  }
}

async function cancel(assoc: Association, contextId: number, messageId: number, rspField: number): Promise<void> {
  try {
    await assoc.sendMessage(contextId, { commandField: C_CANCEL_RQ, messageIdBeingRespondedTo: messageId, hasDataSet: false });
    for (;;) {
      const m = await response(assoc, rspField, messageId);
      if (statusCategory(m.command.status ?? 0) !== "pending") return;
    }
  } catch {
    // the association ended; nothing left to cancel
  }
}

/** A failed C-FIND/MOVE/GET, with its status. */
export class QueryError extends Error {
  readonly status: number;
  constructor(op: string, status: number, comment: string | undefined, peer: string) {
    super(`${op} failed at ${peer}: status 0x${status.toString(16).toUpperCase().padStart(4, "0")}${comment ? ` (${comment})` : ""}`);
    this.name = "QueryError";
    this.status = status;
  }
}

/** A C-MOVE or C-GET response (pending or final). */
export interface RetrieveProgress {
  status: number;
  remaining?: number;
  completed?: number;
  failed?: number;
  warning?: number;
  errorComment?: string;
  /** Final response. */
  final: boolean;
  /** Failed SOP Instance UID List (0008,0058) of a final response, when sent. */
  failedInstances?: string[];
}

function progress(m: DimseMessage, ts: string): RetrieveProgress {
  const c = m.command;
  const status = c.status ?? 0;
  const p: RetrieveProgress = { status, final: statusCategory(status) !== "pending" };
  if (c.remaining !== undefined) p.remaining = c.remaining;
  if (c.completed !== undefined) p.completed = c.completed;
  if (c.failed !== undefined) p.failed = c.failed;
  if (c.warning !== undefined) p.warning = c.warning;
  if (c.errorComment) p.errorComment = c.errorComment;
  if (m.dataset && m.dataset.length > 0) {
    try {
      const ds = parseDataSet(m.dataset, ts);
      const list = ds.strings(0x00080058).filter((s) => s !== "");
      if (list.length) p.failedInstances = list;
    } catch { /* an unreadable identifier does not change the outcome */ }
  }
  return p;
}

/**
 * C-MOVE to `destination` (an AE title the peer knows). Yields every response; the last has `final`.
 *
 * @example
 * ```ts
 * for await (const p of move(assoc, QR_MODELS.studyRoot.move, identifier, "RTEXPORT")) if (p.final) console.log(p.completed, p.failed);
 * ```
 */
export async function* move(assoc: Association, model: string, identifier: DataSet, destination: string): AsyncGenerator<RetrieveProgress> {
  const ctx = qrContext(assoc, model, "the C-MOVE information model");
  const id = assoc.nextMessageId();
  await assoc.sendMessage(ctx.id, { commandField: C_MOVE_RQ, messageId: id, affectedSopClassUid: model, priority: 0, moveDestination: destination, hasDataSet: true }, encodeDataSet(identifier, ctx.transferSyntax));
  let done = false;
  try {
    for (;;) {
      const p = progress(await response(assoc, C_MOVE_RSP, id), ctx.transferSyntax);
      if (p.final) done = true;
      yield p;
      if (p.final) return;
    }
  } finally {
    if (!done && assoc.established) await cancel(assoc, ctx.id, id, C_MOVE_RSP);
  }
}

/**
 * The answer of a store handler: the C-STORE-RSP status, and `kept` when the handler keeps the
 * received file where it is (otherwise it is deleted once the handler returns, unless moved).
 * A handler that keeps a file with `bytes` must call its `release()` once done with them.
 */
export interface StoreAnswer {
  status: number;
  errorComment?: string;
  /** The whole reason, for the receiver's log (the Error Comment on the wire is cut to 64 characters). */
  detail?: string;
  kept?: boolean;
}

/** Handles an object received by C-GET; its answer is the C-STORE-RSP status. */
export type ReceiveHandler = (file: ReceivedFile, message: DimseMessage) => Promise<StoreAnswer> | StoreAnswer;

/** Told about an object that arrived but could not be written (disk full, …); it was answered 0xA700. */
export type ReceiveErrorHandler = (error: string, message: DimseMessage) => void;

/**
 * C-GET: the peer sends the objects back as C-STOREs on this association. Set
 * `assoc.storeDir` so they stream to temporary files; `onStore` must move each file away (or it
 * is deleted). Yields every C-GET response; the last has `final`.
 *
 * @example
 * ```ts
 * import { renameSync } from "node:fs";
 * const onStore = (f: { path: string; sopInstanceUid: string }) => {
 *   renameSync(f.path, `in/${f.sopInstanceUid}.dcm`);
 *   return { status: 0 };
 * };
 * for await (const p of get(assoc, QR_MODELS.studyRoot.get, identifier, onStore)) if (p.final) console.log(p.completed);
 * ```
 */
export async function* get(
  assoc: Association, model: string, identifier: DataSet, onStore: ReceiveHandler, onError?: ReceiveErrorHandler,
): AsyncGenerator<RetrieveProgress> {
  const ctx = qrContext(assoc, model, "the C-GET information model");
  const id = assoc.nextMessageId();
  await assoc.sendMessage(ctx.id, { commandField: C_GET_RQ, messageId: id, affectedSopClassUid: model, priority: 0, hasDataSet: true }, encodeDataSet(identifier, ctx.transferSyntax));
  let done = false;
  try {
    for (;;) {
      const m = await assoc.receive();
      if (m.command.commandField === C_STORE_RQ) {
        await answerStore(assoc, m, onStore, onError);
        continue;
      }
      if (m.command.commandField !== C_GET_RSP) {
        assoc.abort();
        throw new DicomNetError("PROTOCOL", `Unexpected DIMSE message 0x${m.command.commandField.toString(16)} from ${assoc.peer} during C-GET`);
      }
      const p = progress(m, ctx.transferSyntax);
      if (p.final) done = true;
      yield p;
      if (p.final) return;
    }
  } finally {
    if (!done && assoc.established) {
      try {
        await assoc.sendMessage(ctx.id, { commandField: C_CANCEL_RQ, messageIdBeingRespondedTo: id, hasDataSet: false });
      } catch { /* closed */ }
    }
  }
}

/** Runs a store handler for a received C-STORE-RQ and sends the C-STORE-RSP. */
export async function answerStore(assoc: Association, m: DimseMessage, onStore: ReceiveHandler, onError?: ReceiveErrorHandler): Promise<void> {
  let status: number = STATUS_PROCESSING_FAILURE;
  let errorComment: string | undefined;
  let kept = false;
  try {
    if (m.error) {
      status = STATUS_OUT_OF_RESOURCES;
      errorComment = "Cannot write the object";
      onError?.(m.error, m);
    } else {
      if (!m.file) throw new Error("received data set was not streamed to a file (storeDir unset)");
      const r = await onStore(m.file, m);
      status = r.status;
      errorComment = r.errorComment;
      kept = r.kept === true;
    }
  } catch (e) {
    status = (e as { status?: number }).status ?? STATUS_PROCESSING_FAILURE;
    errorComment = (e as Error).message?.slice(0, 64);
  } finally {
    if (m.file && !kept) {
      m.file.release?.();
      try {
        unlinkSync(m.file.path);
      } catch { /* moved away by the handler */ }
    }
  }
  const rsp: DimseCommand = {
    commandField: C_STORE_RSP,
    messageIdBeingRespondedTo: m.command.messageId,
    affectedSopClassUid: m.command.affectedSopClassUid,
    affectedSopInstanceUid: m.command.affectedSopInstanceUid,
    status,
    hasDataSet: false,
  };
  if (errorComment) rsp.errorComment = errorComment;
  await assoc.sendMessage(m.contextId, rsp);
}
