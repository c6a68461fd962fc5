/** Why a network operation failed, for messages and exit codes. */
export type NetErrorCode =
  | "REFUSED" // TCP connection refused
  | "UNREACHABLE" // host not found / unreachable
  | "TIMEOUT" // connect, association or DIMSE timeout
  | "REJECTED" // A-ASSOCIATE-RJ
  | "ABORTED" // A-ABORT received
  | "TLS" // TLS handshake or certificate failure
  | "CLOSED" // connection closed unexpectedly
  | "PROTOCOL" // malformed or unexpected PDU / message
  | "NO_CONTEXT"; // no accepted presentation context fits

/** A network failure with a one-line message that says what failed (no stack trace meant for users). */
export class DicomNetError extends Error {
  readonly code: NetErrorCode;
  /** A-ASSOCIATE-RJ fields when `code` is REJECTED. */
  readonly reject?: { result: number; source: number; reason: number };
  constructor(code: NetErrorCode, message: string, reject?: { result: number; source: number; reason: number }) {
    super(message);
    this.name = "DicomNetError";
    this.code = code;
    if (reject) this.reject = reject;
  }
}

/** A DIMSE status to send back from an SCP handler (throw it from a handler). */
export class DimseStatusError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "DimseStatusError";
    this.status = status;
  }
}

const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_|ERR_OSSL|HOSTNAME_MISMATCH)/;

/** Maps a socket error to a DicomNetError naming the peer. */
export function socketError(err: unknown, peer: string, tls: boolean): DicomNetError {
  const e = err as { code?: string; message?: string };
  const code = e?.code ?? "";
  const msg = e?.message ?? String(err);
  if (code === "ECONNREFUSED") return new DicomNetError("REFUSED", `Cannot connect to ${peer}: connection refused`);
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new DicomNetError("UNREACHABLE", `Cannot connect to ${peer}: host not found`);
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") return new DicomNetError("UNREACHABLE", `Cannot connect to ${peer}: host unreachable`);
  if (TLS_CODES.test(code) || (tls && /ssl|tls|certificate|handshake|alert/i.test(msg))) {
    return new DicomNetError("TLS", `TLS failure with ${peer}: ${firstLine(msg)}`);
  }
  if (code === "ECONNRESET" || code === "EPIPE") return new DicomNetError("CLOSED", `Connection to ${peer} was reset by the peer`);
  return new DicomNetError("CLOSED", `Connection to ${peer} failed: ${firstLine(msg)}`);
}

export function firstLine(s: string): string {
  return s.split("\n")[0].trim();
}
