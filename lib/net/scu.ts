/**
 * DIMSE service operations on an association (PS3.7 section 9): C-ECHO, C-STORE, C-FIND,
 * C-MOVE, C-GET, for the side that sends the request. Also used by the SCP framework for the
 * C-STORE sub-operations of C-MOVE and C-GET.
 */
import { readFileSync, unlinkSync } from "node:fs";
import type { DataSet } from "../dicom/dataset.ts";
import { parseDataSet, readDicomFile } from "../dicom/reader.ts";
import { encodeDataSet, evenLength } from "../dicom/writer.ts";
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
  SOP_CLASS_NAMES, TRANSFER_SYNTAX_NAMES, VERIFICATION_SOP_CLASS,
} from "../dicom/uids.ts";
import { syntaxInfo } from "../codec/syntaxes.ts";
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

/**
 * Reads a file's header (not its pixel data) to make a StoreSource; the data set's SOP Class and
 * Instance UIDs name the object (the meta header's only when the data set lacks them). The file's
 * structure is walked to its end (fragment headers, elements after the pixel data), so a
 * truncated file is refused here. Throws `DicomParseError`.
 */
export function storeSourceFromFile(path: string): StoreSource {
  const f = readDicomFile(path, { checkEnd: true });
  const sopClassUid = f.dataset.string(0x00080016) ?? f.meta.string(0x00020002);
  const sopInstanceUid = f.dataset.string(0x00080018) ?? f.meta.string(0x00020003);
  if (!sopClassUid || !sopInstanceUid) {
    throw new Error(`Cannot send "${path}": it has no SOP Class UID or SOP Instance UID`);
  }
  return { sopClassUid, sopInstanceUid, transferSyntaxUid: f.transferSyntaxUid, path, datasetOffset: f.datasetOffset, size: f.size };
}

/** The native syntaxes offered when a peer takes none of an object's own, in our order of preference. */
const FALLBACK_SYNTAXES = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN];

/**
 * Presentation contexts for a set of objects, as DCMTK's storescu proposes them: one per SOP class
 * and transfer syntax, proposing that syntax alone, so a peer that accepts an object's own syntax
 * gets its bytes unchanged (a context listing several syntaxes lets the peer pick another, and the
 * object would be transcoded). One more per SOP class proposes Explicit and Implicit VR Little
 * Endian, for when the peer takes none of the objects' own syntaxes: native objects are then
 * transcoded, lossless compressed ones decoded (lib/codec). May give more than the 128 contexts
 * one association carries: push splits its objects over associations (lib/push), and
 * {@linkcode storageContextsWithin} folds them for one association.
 *
 * @example
 * ```ts
 * storageContexts([{ sopClassUid: CT, transferSyntaxUid: JPEG_LS }]);
 * // [{ abstractSyntax: CT, transferSyntaxes: [JPEG_LS] }, { abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] }]
 * ```
 */
export function storageContexts(objects: Iterable<{ sopClassUid: string; transferSyntaxUid: string }>): { abstractSyntax: string; transferSyntaxes: string[] }[] {
  const own = new Map<string, { abstractSyntax: string; transferSyntaxes: string[] }>();
  const classes: string[] = [];
  for (const o of objects) {
    const key = `${o.sopClassUid}|${o.transferSyntaxUid}`;
    if (own.has(key)) continue;
    if (!classes.includes(o.sopClassUid)) classes.push(o.sopClassUid);
    own.set(key, { abstractSyntax: o.sopClassUid, transferSyntaxes: [o.transferSyntaxUid] });
  }
  const out = [...own.values()];
  for (const sopClassUid of classes) out.push({ abstractSyntax: sopClassUid, transferSyntaxes: [...FALLBACK_SYNTAXES] });
  return out;
}

/**
 * {@linkcode storageContexts} for objects that must all go over one association (serve's C-MOVE
 * sub-operations): when one context per class and syntax would be more than `max` (128, what an
 * association carries), a class's native syntaxes share one context, the fallbacks after them
 * (the peer picks one, so a native object may be transcoded), and each compressed syntax keeps
 * its own (a class's native context can still take a decoded object).
 *
 * @example
 * ```ts
 * const contexts = storageContextsWithin(objects); // at most 128 unless the objects hold more classes and compressed syntaxes
 * ```
 */
export function storageContextsWithin(
  objects: Iterable<{ sopClassUid: string; transferSyntaxUid: string }>, max = MAX_PROPOSED_CONTEXTS,
): { abstractSyntax: string; transferSyntaxes: string[] }[] {
  const list = [...objects];
  const out = storageContexts(list);
  if (out.length <= max) return out;
  const classes = [...new Set(list.map((o) => o.sopClassUid))];
  const own = out.filter((c) => c.transferSyntaxes.length === 1);
  const folded = new Map<string, { abstractSyntax: string; transferSyntaxes: string[] }>();
  for (const c of own) {
    const ts = c.transferSyntaxes[0];
    const native = isNativeTransferSyntax(ts);
    const key = `${c.abstractSyntax}|${native ? "native" : ts}`;
    const syntaxes = folded.get(key)?.transferSyntaxes ?? [];
    if (!syntaxes.includes(ts)) syntaxes.push(ts);
    if (!folded.has(key)) folded.set(key, { abstractSyntax: c.abstractSyntax, transferSyntaxes: syntaxes });
  }
  for (const sopClassUid of classes) {
    const native = folded.get(`${sopClassUid}|native`);
    if (!native) {
      folded.set(`${sopClassUid}|native`, { abstractSyntax: sopClassUid, transferSyntaxes: [...FALLBACK_SYNTAXES] });
      continue;
    }
    for (const ts of FALLBACK_SYNTAXES) if (!native.transferSyntaxes.includes(ts)) native.transferSyntaxes.push(ts);
  }
  return [...folded.values()];
}

/** Presentation contexts one association can carry (odd context IDs 1–255). */
const MAX_PROPOSED_CONTEXTS = 128;

/** The outcome of a C-STORE. */
export interface StoreResult {
  status: number;
  errorComment?: string;
  /**
   * How the data set was sent: streamed unchanged, transcoded to another syntax (between native
   * syntaxes, or decoded from a lossless compressed one), or encoded from a changed data set.
   */
  mode: "streamed" | "transcoded" | "encoded";
  transferSyntaxUid: string;
}

/**
 * Picks the accepted context for an object: its own transfer syntax when the peer accepts it,
 * else a native one (the object is transcoded, or decoded when compressed losslessly); says why
 * none fits (a lossy object is never decoded to be sent).
 */
export function chooseStoreContext(assoc: Association, sopClassUid: string, transferSyntaxUid: string, reencode: boolean): { context: NegotiatedContext; transcode: boolean } {
  const candidates = assoc.acceptedContexts().filter((c) => c.abstractSyntax === sopClassUid);
  const tsName = (uid: string) => TRANSFER_SYNTAX_NAMES[uid] ?? uid;
  const className = SOP_CLASS_NAMES.get(sopClassUid) ?? sopClassUid;
  const source = syntaxInfo(transferSyntaxUid);
  if (candidates.length === 0) {
    const rejected = [...assoc.contexts.values()].filter((c) => c.abstractSyntax === sopClassUid);
    if (rejected.length === 0) throw new DicomNetError("NO_CONTEXT", `No presentation context was proposed for ${className}`);
    if (rejected.some((c) => c.result === 4)) {
      const proposed = assoc.request?.contexts.filter((c) => c.abstractSyntax === sopClassUid).flatMap((c) => c.transferSyntaxes) ?? [];
      throw new DicomNetError("NO_CONTEXT", `${assoc.peer} does not accept ${className} in ${[...new Set(proposed)].map(tsName).join(" or ")}`);
    }
    throw new DicomNetError("NO_CONTEXT", `${assoc.peer} does not support ${className} (${contextResultText(rejected[0].result)})`);
  }
  const exact = candidates.find((c) => c.transferSyntax === transferSyntaxUid);
  if (exact && !(reencode && transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)) return { context: exact, transcode: false };
  const offered = [...new Set(candidates.map((c) => tsName(c.transferSyntax)))].join(", ");
  // A changed data set of a compressed object keeps its encapsulated pixel data: only its own syntax will do.
  const decodable = source.encoding === "native" || (source.encoding === "lossless" && !reencode);
  if (decodable) {
    for (const ts of [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN]) {
      const c = candidates.find((x) => x.transferSyntax === ts);
      if (c) return { context: c, transcode: true };
    }
  }
  const why = source.encoding === "lossy"
    ? `, and ${source.name} is lossy: its pixels are never decoded to be sent`
    : source.encoding === "unsupported" ? `, and no decoder here reads ${source.name}` : "";
  throw new DicomNetError("NO_CONTEXT", `${assoc.peer} does not accept ${className} in ${tsName(transferSyntaxUid)} (it accepted ${offered})${why}`);
}

/** The object's data set in `to`: re-encoded between native syntaxes, or decoded (codecs load on first use). */
async function transcodedBytes(src: StoreSource, className: string, peer: string, to: string): Promise<Uint8Array> {
  const ds = src.bytes ? parseDataSet(src.bytes, src.transferSyntaxUid) : readDicomFile(src.path!, { full: true }).dataset;
  if (isNativeTransferSyntax(src.transferSyntaxUid)) return encodeDataSet(ds, to);
  const { transcodeDataSetBytes } = await import("../codec/decode.ts");
  try {
    return await transcodeDataSetBytes(ds, src.transferSyntaxUid, to);
  } catch (e) {
    // The association is fine: this object cannot go out in any syntax the peer accepted.
    throw new DicomNetError(
      "NO_CONTEXT",
      `${peer} accepts ${className} only in syntaxes without compression, and decoding ${syntaxInfo(src.transferSyntaxUid).name} failed: ${(e as Error).message}`,
    );
  }
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
 * is the file's; transcodes between native syntaxes otherwise, and decodes a losslessly
 * compressed object when the peer takes only native syntaxes; throws `DicomNetError` (code
 * NO_CONTEXT) when no accepted context fits or the object cannot be decoded (lossy, damaged),
 * before anything is sent. A non-success status is returned, not thrown.
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
    if (src.bytes) await assoc.sendMessage(context.id, cmd, evenLength(src.bytes));
    else if (src.path !== undefined) {
      const offset = src.datasetOffset ?? 0;
      const size = src.size ?? readDicomFile(src.path).size;
      if ((size - offset) % 2 === 1) {
        // A deflated data set of odd length (files written before PS3.5 asked for the pad byte):
        // small by nature, so read and padded here.
        const file = readFileSync(src.path);
        await assoc.sendMessage(context.id, cmd, evenLength(new Uint8Array(file.buffer, file.byteOffset + offset, file.byteLength - offset)));
      } else await assoc.sendMessage(context.id, cmd, { path: src.path, offset, length: size - offset });
    } else throw new Error("C-STORE source has neither a path nor bytes");
  } else {
    mode = "transcoded";
    const className = SOP_CLASS_NAMES.get(src.sopClassUid) ?? src.sopClassUid;
    await assoc.sendMessage(context.id, cmd, await transcodedBytes(src, className, assoc.peer, context.transferSyntax));
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
 * `opts.messageId` sets the request's Message ID (default: the association's next): a receiver
 * shared by several associations tells their objects apart by the Move Originator Message ID the
 * peer puts on each sub-operation, so the IDs must be unique across those associations.
 *
 * @example
 * ```ts
 * for await (const p of move(assoc, QR_MODELS.studyRoot.move, identifier, "RTEXPORT")) if (p.final) console.log(p.completed, p.failed);
 * ```
 */
export async function* move(assoc: Association, model: string, identifier: DataSet, destination: string, opts: { messageId?: number } = {}): AsyncGenerator<RetrieveProgress> {
  const ctx = qrContext(assoc, model, "the C-MOVE information model");
  const id = opts.messageId ?? assoc.nextMessageId();
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
