/**
 * Storage Commitment Push Model (PS3.4 Annex J): the SCU asks with N-ACTION-RQ (a Transaction
 * UID and the SOP instances) whether the SCP takes responsibility for them; the SCP answers
 * N-ACTION-RSP at once and reports later with N-EVENT-REPORT-RQ (event 1: all committed, 2: some
 * failed, with a failure reason each), on the same association when it is still open, or on a new
 * one it opens to the SCU (proposing the SCP role for itself by role selection).
 *
 * Here: the data sets and messages for both sides, and a {@link CommitmentTracker} that matches
 * reports to the requests waiting for them, whichever association they come on.
 */
import { DataSet } from "../dicom/dataset.ts";
import { parseDataSet } from "../dicom/reader.ts";
import { encodeDataSet } from "../dicom/writer.ts";
import type { Association, DimseMessage } from "./association.ts";
import { type DimseCommand, N_ACTION_RQ, N_ACTION_RSP, N_EVENT_REPORT_RQ, N_EVENT_REPORT_RSP, STATUS_PROCESSING_FAILURE } from "./dimse.ts";
import { DicomNetError } from "./errors.ts";

/** The Storage Commitment Push Model SOP Class, and its well-known SOP Instance. */
export const STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1";
export const STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1";

const TRANSACTION_UID = 0x00081195;
const REFERENCED_SOP_SEQUENCE = 0x00081199;
const FAILED_SOP_SEQUENCE = 0x00081198;
const REFERENCED_SOP_CLASS_UID = 0x00081150;
const REFERENCED_SOP_INSTANCE_UID = 0x00081155;
const FAILURE_REASON = 0x00081197;
const RETRIEVE_AE_TITLE = 0x00080054;

/** One object to commit. */
export interface CommitItem {
  sopClassUid: string;
  sopInstanceUid: string;
}

/** One object the SCP did not commit, with its Failure Reason (0008,1197). */
export interface CommitFailure extends CommitItem {
  reason: number;
}

/** A commitment report (the N-EVENT-REPORT's data set). */
export interface CommitmentResult {
  transactionUid: string;
  committed: CommitItem[];
  failed: CommitFailure[];
  retrieveAet?: string;
}

/** Failure reasons of PS3.3 C.14.1.1, in words. */
export function failureReasonText(reason: number): string {
  const known: Record<number, string> = {
    0x0110: "processing failure",
    0x0112: "no such object instance",
    0x0213: "resource limitation",
    0x0122: "referenced SOP class not supported",
    0x0119: "class / instance conflict",
    0x0131: "duplicate transaction UID",
  };
  return `${known[reason] ?? "failure"} (0x${reason.toString(16).toUpperCase().padStart(4, "0")})`;
}

const te = new TextEncoder();

function putUid(ds: DataSet, tag: number, uid: string): void {
  const b = te.encode(uid);
  const value = b.length % 2 ? Uint8Array.from([...b, 0]) : b;
  ds.set({ tag, vr: "UI", value, offset: 0, length: value.length });
}

function putAe(ds: DataSet, tag: number, ae: string): void {
  const b = te.encode(ae.length % 2 ? ae + " " : ae);
  ds.set({ tag, vr: "AE", value: b, offset: 0, length: b.length });
}

function refItem(i: CommitItem, reason?: number): DataSet {
  const item = new DataSet();
  putUid(item, REFERENCED_SOP_CLASS_UID, i.sopClassUid);
  putUid(item, REFERENCED_SOP_INSTANCE_UID, i.sopInstanceUid);
  if (reason !== undefined) item.set({ tag: FAILURE_REASON, vr: "US", value: Uint8Array.of(reason & 0xff, reason >>> 8), offset: 0, length: 2 });
  return item;
}

/** The N-ACTION-RQ data set: Transaction UID and the Referenced SOP Sequence. */
export function commitmentRequest(transactionUid: string, items: readonly CommitItem[]): DataSet {
  const ds = new DataSet();
  putUid(ds, TRANSACTION_UID, transactionUid);
  ds.set({ tag: REFERENCED_SOP_SEQUENCE, vr: "SQ", items: items.map((i) => refItem(i)), offset: 0, length: 0 });
  return ds;
}

/** The N-EVENT-REPORT-RQ data set for a result. */
export function commitmentReport(r: CommitmentResult): DataSet {
  const ds = new DataSet();
  putUid(ds, TRANSACTION_UID, r.transactionUid);
  if (r.retrieveAet) putAe(ds, RETRIEVE_AE_TITLE, r.retrieveAet);
  if (r.committed.length) ds.set({ tag: REFERENCED_SOP_SEQUENCE, vr: "SQ", items: r.committed.map((i) => refItem(i)), offset: 0, length: 0 });
  if (r.failed.length) ds.set({ tag: FAILED_SOP_SEQUENCE, vr: "SQ", items: r.failed.map((i) => refItem(i, i.reason)), offset: 0, length: 0 });
  return ds;
}

function items(ds: DataSet, tag: number): DataSet[] {
  return ds.get(tag)?.items ?? [];
}

/** Reads a request's Transaction UID and items (throws when there is no Transaction UID). */
export function readCommitmentRequest(ds: DataSet): { transactionUid: string; items: CommitItem[] } {
  const transactionUid = ds.string(TRANSACTION_UID);
  if (!transactionUid) throw new Error("the storage commitment request has no Transaction UID (0008,1195)");
  return {
    transactionUid,
    items: items(ds, REFERENCED_SOP_SEQUENCE).map((i) => ({ sopClassUid: i.string(REFERENCED_SOP_CLASS_UID) ?? "", sopInstanceUid: i.string(REFERENCED_SOP_INSTANCE_UID) ?? "" })),
  };
}

/** Reads a report (throws when there is no Transaction UID). */
export function readCommitmentReport(ds: DataSet): CommitmentResult {
  const transactionUid = ds.string(TRANSACTION_UID);
  if (!transactionUid) throw new Error("the storage commitment report has no Transaction UID (0008,1195)");
  const r: CommitmentResult = {
    transactionUid,
    committed: items(ds, REFERENCED_SOP_SEQUENCE).map((i) => ({ sopClassUid: i.string(REFERENCED_SOP_CLASS_UID) ?? "", sopInstanceUid: i.string(REFERENCED_SOP_INSTANCE_UID) ?? "" })),
    failed: items(ds, FAILED_SOP_SEQUENCE).map((i) => ({
      sopClassUid: i.string(REFERENCED_SOP_CLASS_UID) ?? "",
      sopInstanceUid: i.string(REFERENCED_SOP_INSTANCE_UID) ?? "",
      reason: i.number(FAILURE_REASON) ?? STATUS_PROCESSING_FAILURE,
    })),
  };
  const aet = ds.string(RETRIEVE_AE_TITLE);
  if (aet) r.retrieveAet = aet;
  return r;
}

function commitmentContext(assoc: Association) {
  const ctx = assoc.acceptedContexts().find((c) => c.abstractSyntax === STORAGE_COMMITMENT_PUSH);
  if (!ctx) throw new DicomNetError("NO_CONTEXT", `${assoc.peer} did not accept Storage Commitment Push Model`);
  return ctx;
}

/**
 * Sends N-ACTION-RQ (Request Storage Commitment) and waits for the N-ACTION-RSP; resolves with
 * its status (0: the SCP took the request; the outcome comes later in a report).
 */
export async function requestCommitment(assoc: Association, transactionUid: string, list: readonly CommitItem[]): Promise<{ status: number; errorComment?: string }> {
  const ctx = commitmentContext(assoc);
  const id = assoc.nextMessageId();
  await assoc.sendMessage(ctx.id, {
    commandField: N_ACTION_RQ, messageId: id, requestedSopClassUid: STORAGE_COMMITMENT_PUSH, requestedSopInstanceUid: STORAGE_COMMITMENT_INSTANCE,
    actionTypeId: 1, hasDataSet: true,
  }, encodeDataSet(commitmentRequest(transactionUid, list), ctx.transferSyntax));
  for (;;) {
    const m = await assoc.receive();
    if (m.command.commandField === N_ACTION_RSP && (m.command.messageIdBeingRespondedTo ?? id) === id) {
      const r: { status: number; errorComment?: string } = { status: m.command.status ?? 0 };
      if (m.command.errorComment) r.errorComment = m.command.errorComment;
      return r;
    }
    if (m.command.commandField === N_EVENT_REPORT_RQ) {
      // A report for an earlier transaction that came first: answered, and handed to whoever waits.
      await answerReport(assoc, m);
      continue;
    }
    assoc.abort();
    throw new DicomNetError("PROTOCOL", `Unexpected DIMSE message 0x${m.command.commandField.toString(16)} from ${assoc.peer} while waiting for N-ACTION-RSP`);
  }
}

/** Reports that arrived on an association while a request was waiting for something else. */
const early = new WeakMap<Association, CommitmentResult[]>();

/** Answers an N-EVENT-REPORT-RQ (success) and returns its report; an unreadable one is answered with a processing failure and thrown. */
export async function answerReport(assoc: Association, m: DimseMessage): Promise<CommitmentResult> {
  const rsp: DimseCommand = {
    commandField: N_EVENT_REPORT_RSP, messageIdBeingRespondedTo: m.command.messageId, affectedSopClassUid: STORAGE_COMMITMENT_PUSH,
    affectedSopInstanceUid: m.command.affectedSopInstanceUid ?? STORAGE_COMMITMENT_INSTANCE, status: 0, hasDataSet: false,
  };
  if (m.command.eventTypeId !== undefined) rsp.eventTypeId = m.command.eventTypeId;
  let result: CommitmentResult;
  try {
    result = readCommitmentReport(parseDataSet(m.dataset ?? new Uint8Array(0), m.context.transferSyntax));
  } catch (e) {
    await assoc.sendMessage(m.contextId, { ...rsp, status: STATUS_PROCESSING_FAILURE, errorComment: "Cannot read the report" });
    throw e;
  }
  await assoc.sendMessage(m.contextId, rsp);
  const list = early.get(assoc) ?? [];
  list.push(result);
  early.set(assoc, list);
  return result;
}

/**
 * Waits on an association for N-EVENT-REPORTs (answering each, giving each to `onReport`) until
 * `until` settles or the peer ends the association (its reports then come on a new one). The
 * caller releases the association after.
 */
export async function receiveReports(assoc: Association, onReport: (r: CommitmentResult) => void, until: Promise<unknown>): Promise<void> {
  for (const r of early.get(assoc)?.splice(0) ?? []) onReport(r);
  const stop = until.then(() => undefined, () => undefined);
  while (assoc.established) {
    const next = assoc.receive(0);
    next.catch(() => {}); // a wait cut short by `until` ends when the association is released
    let m: DimseMessage | undefined;
    try {
      m = await Promise.race([next, stop]);
    } catch {
      return; // released or aborted by the peer
    }
    if (m === undefined) return;
    if (m.command.commandField !== N_EVENT_REPORT_RQ) {
      assoc.abort();
      throw new DicomNetError("PROTOCOL", `Unexpected DIMSE message 0x${m.command.commandField.toString(16)} from ${assoc.peer} while waiting for N-EVENT-REPORT`);
    }
    await answerReport(assoc, m);
    for (const r of early.get(assoc)?.splice(0) ?? []) onReport(r);
  }
}

/**
 * SCP side: sends the report for a request on the association it came on and waits for the
 * N-EVENT-REPORT-RSP; resolves with its status.
 */
export async function sendReport(assoc: Association, result: CommitmentResult): Promise<number> {
  const ctx = commitmentContext(assoc);
  const id = assoc.nextMessageId();
  await assoc.sendMessage(ctx.id, {
    commandField: N_EVENT_REPORT_RQ, messageId: id, affectedSopClassUid: STORAGE_COMMITMENT_PUSH, affectedSopInstanceUid: STORAGE_COMMITMENT_INSTANCE,
    eventTypeId: result.failed.length ? 2 : 1, hasDataSet: true,
  }, encodeDataSet(commitmentReport(result), ctx.transferSyntax));
  for (;;) {
    const m = await assoc.receive();
    if (m.command.commandField === N_EVENT_REPORT_RSP) return m.command.status ?? 0;
    assoc.abort();
    throw new DicomNetError("PROTOCOL", `Unexpected DIMSE message 0x${m.command.commandField.toString(16)} from ${assoc.peer} while waiting for N-EVENT-REPORT-RSP`);
  }
}

/**
 * SCP side, for the SCP framework: answers an N-ACTION-RQ. The request is acknowledged first
 * (N-ACTION-RSP), then `decide` says which objects are committed, and the report goes back on
 * the same association (our SCU waits for it there; peers that released at once miss it and
 * must ask again).
 */
export async function serveCommitmentRequest(assoc: Association, m: DimseMessage, decide: (transactionUid: string, items: CommitItem[]) => Promise<CommitmentResult> | CommitmentResult): Promise<void> {
  const rsp: DimseCommand = {
    commandField: N_ACTION_RSP, messageIdBeingRespondedTo: m.command.messageId, affectedSopClassUid: STORAGE_COMMITMENT_PUSH,
    affectedSopInstanceUid: m.command.requestedSopInstanceUid ?? STORAGE_COMMITMENT_INSTANCE, actionTypeId: m.command.actionTypeId ?? 1, status: 0,
    hasDataSet: false,
  };
  let request: { transactionUid: string; items: CommitItem[] };
  try {
    if (m.command.requestedSopInstanceUid !== undefined && m.command.requestedSopInstanceUid !== STORAGE_COMMITMENT_INSTANCE) {
      throw new Error(`unknown SOP instance ${m.command.requestedSopInstanceUid}`);
    }
    request = readCommitmentRequest(parseDataSet(m.dataset ?? new Uint8Array(0), m.context.transferSyntax));
  } catch (e) {
    // 0x0117: invalid object instance; 0x0110 otherwise.
    const status = /unknown SOP instance/.test((e as Error).message) ? 0x0117 : STATUS_PROCESSING_FAILURE;
    await assoc.sendMessage(m.contextId, { ...rsp, status, errorComment: (e as Error).message.slice(0, 64) });
    return;
  }
  await assoc.sendMessage(m.contextId, rsp);
  const result = await decide(request.transactionUid, request.items);
  if (assoc.established) await sendReport(assoc, result);
}

/**
 * Matches commitment reports to the requests that wait for them, by Transaction UID, whichever
 * association a report arrives on (`deliver` from a listener's handler, or from the requesting
 * association). A report nobody waits for (late, or for another process) is kept briefly.
 */
export class CommitmentTracker {
  readonly #waiting = new Map<string, (r: CommitmentResult) => void>();
  readonly #unclaimed = new Map<string, CommitmentResult>();

  /** Hands a report to its waiter. */
  deliver(r: CommitmentResult): void {
    const w = this.#waiting.get(r.transactionUid);
    if (w) {
      this.#waiting.delete(r.transactionUid);
      w(r);
    } else {
      this.#unclaimed.set(r.transactionUid, r);
      if (this.#unclaimed.size > 64) this.#unclaimed.delete(this.#unclaimed.keys().next().value!);
    }
  }

  /** True while `transactionUid` waits for its report. */
  waiting(transactionUid: string): boolean {
    return this.#waiting.has(transactionUid);
  }

  /** Resolves with the report for `transactionUid`, or undefined after `timeoutMs` (or when `signal` aborts). */
  wait(transactionUid: string, timeoutMs: number, signal?: AbortSignal): Promise<CommitmentResult | undefined> {
    const ready = this.#unclaimed.get(transactionUid);
    if (ready) {
      this.#unclaimed.delete(transactionUid);
      return Promise.resolve(ready);
    }
    return new Promise((resolve) => {
      const finish = (r: CommitmentResult | undefined) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#waiting.delete(transactionUid);
        resolve(r);
      };
      const onAbort = () => finish(undefined);
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.set(transactionUid, finish);
    });
  }
}
