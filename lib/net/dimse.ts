/**
 * DIMSE command sets (PS3.7 section 9 and 10): encoded in implicit VR little endian with the
 * Command Group Length first, through lib/dicom.
 */
import { DataSet } from "../dicom/dataset.ts";
import { encodeDataSet } from "../dicom/writer.ts";
import { IMPLICIT_VR_LITTLE_ENDIAN } from "../dicom/uids.ts";

export const C_STORE_RQ = 0x0001;
export const C_STORE_RSP = 0x8001;
export const C_GET_RQ = 0x0010;
export const C_GET_RSP = 0x8010;
export const C_FIND_RQ = 0x0020;
export const C_FIND_RSP = 0x8020;
export const C_MOVE_RQ = 0x0021;
export const C_MOVE_RSP = 0x8021;
export const C_ECHO_RQ = 0x0030;
export const C_ECHO_RSP = 0x8030;
export const C_CANCEL_RQ = 0x0fff;
export const N_EVENT_REPORT_RQ = 0x0100;
export const N_EVENT_REPORT_RSP = 0x8100;
export const N_ACTION_RQ = 0x0130;
export const N_ACTION_RSP = 0x8130;

/** CommandDataSetType value meaning "no data set follows". */
export const NO_DATA_SET = 0x0101;

/** Common status codes. */
export const STATUS_SUCCESS = 0x0000;
export const STATUS_PENDING = 0xff00;
export const STATUS_PENDING_WARNING = 0xff01;
export const STATUS_CANCEL = 0xfe00;
/** C-STORE: Refused, out of resources. */
export const STATUS_OUT_OF_RESOURCES = 0xa700;
/** C-FIND/MOVE/GET: Refused, out of resources (unable to calculate number of matches). */
export const STATUS_QR_OUT_OF_RESOURCES = 0xa701;
/** C-MOVE: Refused, move destination unknown. */
export const STATUS_MOVE_DESTINATION_UNKNOWN = 0xa801;
/** Error: data set does not match SOP class. */
export const STATUS_DATASET_MISMATCH = 0xa900;
/** Error: cannot understand. */
export const STATUS_CANNOT_UNDERSTAND = 0xc000;
/** Identifier does not match SOP class (Q/R). */
export const STATUS_IDENTIFIER_MISMATCH = 0xa900;
/** Sub-operations complete, one or more failures or warnings. */
export const STATUS_SUBOPS_WARNING = 0xb000;
/** Processing failure. */
export const STATUS_PROCESSING_FAILURE = 0x0110;
/** SOP class not supported. */
export const STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122;

/** A DIMSE command set; only the fields a message uses are set. */
export interface DimseCommand {
  commandField: number;
  messageId?: number;
  messageIdBeingRespondedTo?: number;
  affectedSopClassUid?: string;
  requestedSopClassUid?: string;
  affectedSopInstanceUid?: string;
  requestedSopInstanceUid?: string;
  /** 0 medium, 1 high, 2 low. */
  priority?: number;
  /** True when a data set follows the command. */
  hasDataSet: boolean;
  status?: number;
  offendingElement?: number[];
  errorComment?: string;
  errorId?: number;
  moveDestination?: string;
  remaining?: number;
  completed?: number;
  failed?: number;
  warning?: number;
  moveOriginatorAet?: string;
  moveOriginatorMessageId?: number;
  /** N-EVENT-REPORT Event Type ID (0000,1002). */
  eventTypeId?: number;
  /** N-ACTION Action Type ID (0000,1008). */
  actionTypeId?: number;
}

const te = new TextEncoder();

function text(s: string, pad: number): Uint8Array {
  const b = te.encode(s);
  if (b.length % 2 === 0) return b;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  out[b.length] = pad;
  return out;
}

function us(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff);
}

/** Encodes a command set, Command Group Length included. */
export function encodeCommand(cmd: DimseCommand): Uint8Array {
  const ds = new DataSet({ littleEndian: true, explicitVR: false });
  const put = (tag: number, vr: string, value: Uint8Array) => ds.set({ tag, vr, value, offset: 0, length: value.length });
  if (cmd.affectedSopClassUid !== undefined) put(0x00000002, "UI", text(cmd.affectedSopClassUid, 0));
  if (cmd.requestedSopClassUid !== undefined) put(0x00000003, "UI", text(cmd.requestedSopClassUid, 0));
  put(0x00000100, "US", us(cmd.commandField));
  if (cmd.messageId !== undefined) put(0x00000110, "US", us(cmd.messageId));
  if (cmd.messageIdBeingRespondedTo !== undefined) put(0x00000120, "US", us(cmd.messageIdBeingRespondedTo));
  if (cmd.moveDestination !== undefined) put(0x00000600, "AE", text(cmd.moveDestination, 0x20));
  if (cmd.priority !== undefined) put(0x00000700, "US", us(cmd.priority));
  put(0x00000800, "US", us(cmd.hasDataSet ? 0x0000 : NO_DATA_SET));
  if (cmd.status !== undefined) put(0x00000900, "US", us(cmd.status));
  if (cmd.offendingElement?.length) {
    const b = new Uint8Array(cmd.offendingElement.length * 4);
    const dv = new DataView(b.buffer);
    cmd.offendingElement.forEach((t, i) => {
      dv.setUint16(i * 4, t >>> 16, true);
      dv.setUint16(i * 4 + 2, t & 0xffff, true);
    });
    put(0x00000901, "AT", b);
  }
  if (cmd.errorComment !== undefined) put(0x00000902, "LO", text(cmd.errorComment.slice(0, 64), 0x20));
  if (cmd.errorId !== undefined) put(0x00000903, "US", us(cmd.errorId));
  if (cmd.affectedSopInstanceUid !== undefined) put(0x00001000, "UI", text(cmd.affectedSopInstanceUid, 0));
  if (cmd.requestedSopInstanceUid !== undefined) put(0x00001001, "UI", text(cmd.requestedSopInstanceUid, 0));
  if (cmd.eventTypeId !== undefined) put(0x00001002, "US", us(cmd.eventTypeId));
  if (cmd.actionTypeId !== undefined) put(0x00001008, "US", us(cmd.actionTypeId));
  if (cmd.remaining !== undefined) put(0x00001020, "US", us(cmd.remaining));
  if (cmd.completed !== undefined) put(0x00001021, "US", us(cmd.completed));
  if (cmd.failed !== undefined) put(0x00001022, "US", us(cmd.failed));
  if (cmd.warning !== undefined) put(0x00001023, "US", us(cmd.warning));
  if (cmd.moveOriginatorAet !== undefined) put(0x00001030, "AE", text(cmd.moveOriginatorAet, 0x20));
  if (cmd.moveOriginatorMessageId !== undefined) put(0x00001031, "US", us(cmd.moveOriginatorMessageId));
  const body = encodeDataSet(ds, IMPLICIT_VR_LITTLE_ENDIAN);
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(4, 4, true); // (0000,0000) UL, length 4
  dv.setUint32(8, body.length, true);
  out.set(body, 12);
  return out;
}

/**
 * Decodes a command set (implicit VR little endian, flat: command sets have no sequences).
 * Hand-written rather than through the general reader: it runs once per response, on the hot
 * path of every C-STORE. Throws on malformed bytes or a missing Command Field.
 */
export function decodeCommand(bytes: Uint8Array): DimseCommand {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = new Map<number, Uint8Array>();
  let p = 0;
  while (p + 8 <= bytes.length) {
    const tag = ((dv.getUint16(p, true) << 16) | dv.getUint16(p + 2, true)) >>> 0;
    const len = dv.getUint32(p + 4, true);
    if (len === 0xffffffff || p + 8 + len > bytes.length) {
      throw new Error(`element (${(tag >>> 16).toString(16).padStart(4, "0")},${(tag & 0xffff).toString(16).padStart(4, "0")}) runs past the end of the command set`);
    }
    values.set(tag, bytes.subarray(p + 8, p + 8 + len));
    p += 8 + len;
  }
  if (p !== bytes.length) throw new Error("command set ends inside an element header");
  const n = (tag: number): number | undefined => {
    const v = values.get(tag);
    return v && v.length >= 2 ? v[0] | (v[1] << 8) : undefined;
  };
  const s = (tag: number): string | undefined => {
    const v = values.get(tag);
    if (!v) return undefined;
    let out = "";
    for (let i = 0; i < v.length; i++) out += String.fromCharCode(v[i]);
    return out.replace(/[\0 ]+$/, "").replace(/^ +/, "");
  };
  const field = n(0x00000100);
  if (field === undefined) throw new Error("command set has no Command Field (0000,0100)");
  const cmd: DimseCommand = { commandField: field, hasDataSet: (n(0x00000800) ?? NO_DATA_SET) !== NO_DATA_SET };
  const set = <K extends keyof DimseCommand>(k: K, v: DimseCommand[K] | undefined) => {
    if (v !== undefined) cmd[k] = v;
  };
  set("messageId", n(0x00000110));
  set("messageIdBeingRespondedTo", n(0x00000120));
  set("affectedSopClassUid", s(0x00000002));
  set("requestedSopClassUid", s(0x00000003));
  set("affectedSopInstanceUid", s(0x00001000));
  set("requestedSopInstanceUid", s(0x00001001));
  set("priority", n(0x00000700));
  set("status", n(0x00000900));
  set("errorComment", s(0x00000902));
  set("errorId", n(0x00000903));
  set("moveDestination", s(0x00000600));
  set("remaining", n(0x00001020));
  set("completed", n(0x00001021));
  set("failed", n(0x00001022));
  set("warning", n(0x00001023));
  set("moveOriginatorAet", s(0x00001030));
  set("moveOriginatorMessageId", n(0x00001031));
  set("eventTypeId", n(0x00001002));
  set("actionTypeId", n(0x00001008));
  const oe = values.get(0x00000901);
  if (oe && oe.length >= 4) {
    const odv = new DataView(oe.buffer, oe.byteOffset, oe.byteLength);
    const tags: number[] = [];
    for (let i = 0; i + 4 <= oe.length; i += 4) tags.push(((odv.getUint16(i, true) << 16) | odv.getUint16(i + 2, true)) >>> 0);
    cmd.offendingElement = tags;
  }
  return cmd;
}

/** Status categories of PS3.7 Annex C. */
export function statusCategory(status: number): "success" | "pending" | "cancel" | "warning" | "failure" {
  if (status === 0) return "success";
  if (status === 0xff00 || status === 0xff01) return "pending";
  if (status === 0xfe00) return "cancel";
  if (status === 0x0001 || status === 0x0107 || status === 0x0116 || (status & 0xf000) === 0xb000) return "warning";
  return "failure";
}

/** "0xA700" style hex. */
export function formatStatus(status: number): string {
  return "0x" + status.toString(16).toUpperCase().padStart(4, "0");
}

/** Short meaning of common statuses, for messages. */
export function statusText(status: number): string {
  const known: Record<number, string> = {
    0x0000: "success",
    0x0001: "warning: requested optional attributes are not supported",
    0x0107: "warning: attribute list error",
    0x0110: "processing failure",
    0x0112: "no such object instance",
    0x0111: "duplicate SOP instance",
    0x0117: "invalid object instance",
    0x0119: "class-instance conflict",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xa700: "refused: out of resources",
    0xa701: "refused: out of resources (matches)",
    0xa702: "refused: out of resources (sub-operations)",
    0xa801: "refused: move destination unknown",
    0xa900: "error: data set does not match SOP class",
    0xb000: "warning: coercion of data elements / sub-operations with failures",
    0xb006: "warning: elements discarded",
    0xb007: "warning: data set does not match SOP class",
    0xc000: "error: cannot understand",
    0xfe00: "cancelled",
    0xff00: "pending",
    0xff01: "pending (optional keys not supported)",
  };
  return known[status] ?? (statusCategory(status) === "failure" ? "failure" : statusCategory(status));
}
