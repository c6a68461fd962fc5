/**
 * Upper-layer PDUs (DICOM PS3.8 section 9.3): encoding and decoding of the association PDUs, and
 * the P-DATA-TF framing. Pure functions over bytes; no I/O.
 */
import { concatBytes } from "../util/bytes.ts";

export const PDU_ASSOCIATE_RQ = 0x01;
export const PDU_ASSOCIATE_AC = 0x02;
export const PDU_ASSOCIATE_RJ = 0x03;
export const PDU_P_DATA_TF = 0x04;
export const PDU_RELEASE_RQ = 0x05;
export const PDU_RELEASE_RP = 0x06;
export const PDU_ABORT = 0x07;

export const APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1";

/** Largest PDU we accept to read when a peer announces none (0 = unlimited). */
export const DEFAULT_MAX_PDU = 262144;

/** A proposed presentation context (A-ASSOCIATE-RQ). */
export interface PresentationContextRq {
  /** Odd number 1..255. */
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

/** Presentation context results (PS3.8 Table 9-18). */
export const PC_ACCEPTANCE = 0;
export const PC_USER_REJECTION = 1;
export const PC_NO_REASON = 2;
export const PC_ABSTRACT_SYNTAX_NOT_SUPPORTED = 3;
export const PC_TRANSFER_SYNTAXES_NOT_SUPPORTED = 4;

/** A presentation context answer (A-ASSOCIATE-AC). */
export interface PresentationContextAc {
  id: number;
  /** 0 acceptance, 1 user rejection, 2 no reason, 3 abstract syntax not supported, 4 transfer syntaxes not supported. */
  result: number;
  /** The accepted transfer syntax (meaningful when result is 0). */
  transferSyntax: string;
}

/** SCP/SCU role selection sub-item (PS3.7 D.3.3.4). */
export interface RoleSelection {
  sopClassUid: string;
  scu: boolean;
  scp: boolean;
}

export interface UserInformation {
  /** Maximum P-DATA-TF PDU length the sender can receive (0 = no limit). */
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersionName?: string;
  roles: RoleSelection[];
  /** Sub-items we do not interpret, kept raw (type, bytes). */
  other: { type: number; value: Uint8Array }[];
}

export interface AssociateRq {
  type: typeof PDU_ASSOCIATE_RQ;
  protocolVersion: number;
  calledAet: string;
  callingAet: string;
  applicationContext: string;
  contexts: PresentationContextRq[];
  user: UserInformation;
}

export interface AssociateAc {
  type: typeof PDU_ASSOCIATE_AC;
  protocolVersion: number;
  calledAet: string;
  callingAet: string;
  applicationContext: string;
  contexts: PresentationContextAc[];
  user: UserInformation;
}

export interface AssociateRj {
  type: typeof PDU_ASSOCIATE_RJ;
  /** 1 rejected-permanent, 2 rejected-transient. */
  result: number;
  /** 1 service-user, 2 service-provider (ACSE), 3 service-provider (presentation). */
  source: number;
  reason: number;
}

/** One presentation data value; `data` is a view into the received PDU. */
export interface Pdv {
  contextId: number;
  command: boolean;
  last: boolean;
  data: Uint8Array;
}

export interface PData {
  type: typeof PDU_P_DATA_TF;
  pdvs: Pdv[];
}

export interface ReleaseRq {
  type: typeof PDU_RELEASE_RQ;
}
export interface ReleaseRp {
  type: typeof PDU_RELEASE_RP;
}
export interface Abort {
  type: typeof PDU_ABORT;
  /** 0 service-user, 2 service-provider. */
  source: number;
  reason: number;
}

export type Pdu = AssociateRq | AssociateAc | AssociateRj | PData | ReleaseRq | ReleaseRp | Abort;

/** A malformed PDU. */
export class PduError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PduError";
  }
}

const enc = new TextEncoder();

function ascii(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/** UIDs on the wire may carry a trailing NUL; AE titles are space padded. */
function uid(bytes: Uint8Array): string {
  return ascii(bytes).replace(/[\0 ]+$/, "");
}

function aet(bytes: Uint8Array): string {
  return ascii(bytes).trim();
}

class Builder {
  parts: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
  u8(v: number): this {
    return this.bytes(Uint8Array.of(v & 0xff));
  }
  u16(v: number): this {
    return this.bytes(Uint8Array.of((v >>> 8) & 0xff, v & 0xff));
  }
  u32(v: number): this {
    return this.bytes(Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff));
  }
  text(s: string): this {
    return this.bytes(enc.encode(s));
  }
  /** An item: type, reserved, 16-bit length, body. */
  item(type: number, body: Builder | Uint8Array): this {
    const b = body instanceof Builder ? body.concat() : body;
    if (b.length > 0xffff) throw new PduError(`Item 0x${type.toString(16)} is too long (${b.length} bytes)`);
    return this.u8(type).u8(0).u16(b.length).bytes(b);
  }
  concat(): Uint8Array {
    return concatBytes(this.parts, this.length);
  }
}

function aetField(s: string): Uint8Array {
  const b = new Uint8Array(16).fill(0x20);
  b.set(enc.encode(s.slice(0, 16)));
  return b;
}

function pdu(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(6 + body.length);
  const dv = new DataView(out.buffer);
  out[0] = type;
  dv.setUint32(2, body.length);
  out.set(body, 6);
  return out;
}

function userInfoItem(u: UserInformation): Builder {
  const b = new Builder();
  b.item(0x51, new Builder().u32(u.maxPduLength));
  b.item(0x52, enc.encode(u.implementationClassUid));
  for (const r of u.roles) {
    const id = enc.encode(r.sopClassUid);
    b.item(0x54, new Builder().u16(id.length).bytes(id).u8(r.scu ? 1 : 0).u8(r.scp ? 1 : 0));
  }
  if (u.implementationVersionName) b.item(0x55, enc.encode(u.implementationVersionName.slice(0, 16)));
  for (const o of u.other) b.item(o.type, o.value);
  return b;
}

/** Encodes an A-ASSOCIATE-RQ or -AC. */
export function encodeAssociate(p: AssociateRq | AssociateAc): Uint8Array {
  const b = new Builder();
  b.u16(p.protocolVersion).u16(0).bytes(aetField(p.calledAet)).bytes(aetField(p.callingAet)).bytes(new Uint8Array(32));
  b.item(0x10, enc.encode(p.applicationContext));
  if (p.type === PDU_ASSOCIATE_RQ) {
    for (const pc of p.contexts) {
      const body = new Builder().u8(pc.id).u8(0).u8(0).u8(0);
      body.item(0x30, enc.encode(pc.abstractSyntax));
      for (const ts of pc.transferSyntaxes) body.item(0x40, enc.encode(ts));
      b.item(0x20, body);
    }
  } else {
    for (const pc of p.contexts) {
      const body = new Builder().u8(pc.id).u8(0).u8(pc.result).u8(0);
      // PS3.8 9.3.3.2: the transfer syntax sub-item is significant only on acceptance, but must be present.
      body.item(0x40, enc.encode(pc.result === PC_ACCEPTANCE ? pc.transferSyntax : ""));
      b.item(0x21, body);
    }
  }
  b.item(0x50, userInfoItem(p.user));
  return pdu(p.type, b.concat());
}

export function encodeAssociateRj(result: number, source: number, reason: number): Uint8Array {
  return pdu(PDU_ASSOCIATE_RJ, Uint8Array.of(0, result, source, reason));
}

export function encodeReleaseRq(): Uint8Array {
  return pdu(PDU_RELEASE_RQ, new Uint8Array(4));
}

export function encodeReleaseRp(): Uint8Array {
  return pdu(PDU_RELEASE_RP, new Uint8Array(4));
}

export function encodeAbort(source = 0, reason = 0): Uint8Array {
  return pdu(PDU_ABORT, Uint8Array.of(0, 0, source, reason));
}

/** Size of the P-DATA-TF PDU header plus one PDV header: what precedes a PDV's data. */
export const PDV_HEADER_LENGTH = 12;

/**
 * Writes the header of a P-DATA-TF PDU holding one PDV of `dataLength` bytes into `buf[0..12)`,
 * so callers can read file bytes straight into `buf[12..]` and send it without a copy.
 */
export function writePdvHeader(buf: Uint8Array, contextId: number, command: boolean, last: boolean, dataLength: number): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, 12);
  buf[0] = PDU_P_DATA_TF;
  buf[1] = 0;
  dv.setUint32(2, dataLength + 6);
  dv.setUint32(6, dataLength + 2);
  buf[10] = contextId;
  buf[11] = (command ? 1 : 0) | (last ? 2 : 0);
}

/** One P-DATA-TF PDU holding one PDV. */
export function encodePdv(contextId: number, command: boolean, last: boolean, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(PDV_HEADER_LENGTH + data.length);
  writePdvHeader(out, contextId, command, last, data.length);
  out.set(data, PDV_HEADER_LENGTH);
  return out;
}

/**
 * Splits a message part (command or data set bytes) into P-DATA-TF PDUs that fit the peer's
 * maximum PDU length (`maxPdu` 0 = unlimited).
 */
export function fragment(contextId: number, command: boolean, data: Uint8Array, maxPdu: number): Uint8Array[] {
  const max = maxPduPayload(maxPdu);
  const out: Uint8Array[] = [];
  let pos = 0;
  do {
    const n = Math.min(max, data.length - pos);
    out.push(encodePdv(contextId, command, pos + n >= data.length, data.subarray(pos, pos + n)));
    pos += n;
  } while (pos < data.length);
  return out;
}

/** Largest PDV data length for a peer's maximum PDU length. */
export function maxPduPayload(maxPdu: number): number {
  // 0 means "no limit"; keep PDUs at a size that streams well anyway.
  const limit = maxPdu === 0 || maxPdu > 4194304 ? DEFAULT_MAX_PDU : maxPdu;
  return Math.max(limit - 6, 8); // the PDV item header (4 length + 2 header) counts in the PDU length
}

function readItems(bytes: Uint8Array, start: number, end: number, fn: (type: number, body: Uint8Array) => void): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = start;
  while (p < end) {
    if (p + 4 > end) throw new PduError(`truncated item at byte ${p}`);
    const type = bytes[p];
    const len = dv.getUint16(p + 2);
    if (p + 4 + len > end) throw new PduError(`item 0x${type.toString(16).padStart(2, "0")} runs past its PDU`);
    fn(type, bytes.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
}

function decodeUserInfo(body: Uint8Array): UserInformation {
  const u: UserInformation = { maxPduLength: 0, implementationClassUid: "", roles: [], other: [] };
  readItems(body, 0, body.length, (type, b) => {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    switch (type) {
      case 0x51:
        if (b.length < 4) throw new PduError("maximum length sub-item is too short");
        u.maxPduLength = dv.getUint32(0);
        break;
      case 0x52: u.implementationClassUid = uid(b); break;
      case 0x55: u.implementationVersionName = aet(b); break;
      case 0x54: {
        // Found by scripts/fuzz.ts: an empty sub-item read its UID length past its end.
        if (b.length < 2) throw new PduError("role selection sub-item is too short");
        const n = dv.getUint16(0);
        if (b.length < 2 + n + 2) throw new PduError("role selection sub-item is too short");
        u.roles.push({ sopClassUid: uid(b.subarray(2, 2 + n)), scu: b[2 + n] === 1, scp: b[3 + n] === 1 });
        break;
      }
      default: u.other.push({ type, value: b.slice() });
    }
  });
  return u;
}

/** Decodes a complete PDU (6-byte header included). P-DATA PDV data are views into `bytes`. */
export function decodePdu(bytes: Uint8Array): Pdu {
  if (bytes.length < 6) throw new PduError("PDU shorter than its header");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = bytes[0];
  const len = dv.getUint32(2);
  if (len + 6 !== bytes.length) throw new PduError(`PDU length ${len} does not match the ${bytes.length - 6} bytes received`);
  switch (type) {
    case PDU_P_DATA_TF: {
      const pdvs: Pdv[] = [];
      let p = 6;
      while (p < bytes.length) {
        if (p + 6 > bytes.length) throw new PduError("truncated PDV header");
        const n = dv.getUint32(p);
        if (n < 2 || p + 4 + n > bytes.length) throw new PduError(`PDV length ${n} runs past its PDU`);
        const ctl = bytes[p + 5];
        pdvs.push({ contextId: bytes[p + 4], command: (ctl & 1) === 1, last: (ctl & 2) === 2, data: bytes.subarray(p + 6, p + 4 + n) });
        p += 4 + n;
      }
      return { type, pdvs };
    }
    case PDU_ASSOCIATE_RQ:
    case PDU_ASSOCIATE_AC: {
      if (bytes.length < 74) throw new PduError("A-ASSOCIATE PDU shorter than its fixed fields");
      const protocolVersion = dv.getUint16(6);
      const calledAet = aet(bytes.subarray(10, 26));
      const callingAet = aet(bytes.subarray(26, 42));
      let applicationContext = "";
      const rqContexts: PresentationContextRq[] = [];
      const acContexts: PresentationContextAc[] = [];
      let user: UserInformation = { maxPduLength: 0, implementationClassUid: "", roles: [], other: [] };
      readItems(bytes, 74, bytes.length, (itemType, body) => {
        if (itemType === 0x10) applicationContext = uid(body);
        else if (itemType === 0x20 || itemType === 0x21) {
          if (body.length < 4) throw new PduError("presentation context item is too short");
          const id = body[0];
          const result = body[2];
          let abstractSyntax = "";
          const tss: string[] = [];
          readItems(body, 4, body.length, (sub, b) => {
            if (sub === 0x30) abstractSyntax = uid(b);
            else if (sub === 0x40) tss.push(uid(b));
          });
          if (itemType === 0x20) rqContexts.push({ id, abstractSyntax, transferSyntaxes: tss });
          else acContexts.push({ id, result, transferSyntax: tss[0] ?? "" });
        } else if (itemType === 0x50) user = decodeUserInfo(body);
      });
      if (type === PDU_ASSOCIATE_RQ) {
        return { type, protocolVersion, calledAet, callingAet, applicationContext, contexts: rqContexts, user };
      }
      return { type, protocolVersion, calledAet, callingAet, applicationContext, contexts: acContexts, user };
    }
    case PDU_ASSOCIATE_RJ:
      if (bytes.length < 10) throw new PduError("A-ASSOCIATE-RJ is too short");
      return { type, result: bytes[7], source: bytes[8], reason: bytes[9] };
    case PDU_RELEASE_RQ: return { type };
    case PDU_RELEASE_RP: return { type };
    case PDU_ABORT:
      if (bytes.length < 10) throw new PduError("A-ABORT is too short");
      return { type, source: bytes[8], reason: bytes[9] };
    default:
      throw new PduError(`unknown PDU type 0x${type.toString(16).padStart(2, "0")}`);
  }
}

/** Text for an A-ASSOCIATE-RJ (PS3.8 Table 9-21). */
export function rejectReasonText(source: number, reason: number): string {
  if (source === 1) {
    switch (reason) {
      case 1: return "no reason given";
      case 2: return "application context name not supported";
      case 3: return "calling AE title not recognized";
      case 7: return "called AE title not recognized";
    }
  } else if (source === 2) {
    switch (reason) {
      case 1: return "no reason given (ACSE)";
      case 2: return "protocol version not supported";
    }
  } else if (source === 3) {
    switch (reason) {
      case 1: return "temporary congestion";
      case 2: return "local limit exceeded";
    }
  }
  return `reason ${reason} from source ${source}`;
}

/** Text for an A-ABORT (PS3.8 Table 9-26). */
export function abortReasonText(source: number, reason: number): string {
  if (source !== 2) return "aborted by the peer";
  const reasons: Record<number, string> = {
    0: "reason not specified",
    1: "unrecognized PDU",
    2: "unexpected PDU",
    4: "unrecognized PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
  };
  return `aborted by the peer's service provider: ${reasons[reason] ?? `reason ${reason}`}`;
}

/** Text for a presentation context result. */
export function contextResultText(result: number): string {
  switch (result) {
    case PC_ACCEPTANCE: return "accepted";
    case PC_USER_REJECTION: return "rejected by the user";
    case PC_NO_REASON: return "rejected (no reason)";
    case PC_ABSTRACT_SYNTAX_NOT_SUPPORTED: return "abstract syntax not supported";
    case PC_TRANSFER_SYNTAXES_NOT_SUPPORTED: return "transfer syntaxes not supported";
  }
  return `result ${result}`;
}
