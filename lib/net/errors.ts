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

/**
 * What went wrong in a TLS handshake, in words (OpenSSL's own strings, such as
 * "error:0A000086:SSL routines::certificate verify failed", mean little to a physicist). Keyed by
 * the error code Node and Deno give, with the OpenSSL reason text as a fallback.
 */
export function tlsFailureText(code: string, message: string): string {
  const m = message.toLowerCase();
  switch (code) {
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
      return "its certificate is self-signed and not trusted (give the CA that issued it with --ca)";
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "UNABLE_TO_GET_ISSUER_CERT":
      return "its certificate is not signed by a trusted CA (give the CA with --ca)";
    case "CERT_HAS_EXPIRED":
      return "its certificate has expired";
    case "CERT_NOT_YET_VALID":
      return "its certificate is not valid yet (check both clocks)";
    case "ERR_TLS_CERT_ALTNAME_INVALID":
    case "HOSTNAME_MISMATCH":
      return "its certificate is not issued for this host name or address";
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "ERR_SSL_PACKET_LENGTH_TOO_LONG":
    case "ERR_SSL_HTTP_REQUEST":
      return "it does not speak TLS on this port";
  }
  if (/certificate ?required|peer did not return a certificate|no certificate returned/.test(m)) {
    return "it requires a client certificate (give ours with --cert and --key)";
  }
  if (/unknown ?ca|bad ?certificate|certificate ?unknown|unsupported ?certificate|decrypt ?error/.test(m)) {
    return "it did not accept our client certificate";
  }
  if (/certificate verify failed|unable to get local issuer/.test(m)) return "its certificate could not be verified (give the CA with --ca)";
  if (/wrong version number|unknown protocol|http request/.test(m)) return "it does not speak TLS on this port";
  if (/no shared cipher|handshake ?failure|unsupported protocol|version too low|protocol ?version/.test(m)) {
    return "it has no TLS version or cipher in common with us";
  }
  if (/socket hang up|econnreset|disconnected before secure/.test(m) || code === "ECONNRESET") {
    return "it closed the connection during the TLS handshake";
  }
  return `the TLS handshake failed (${code || "unknown error"})`;
}

/** Maps a socket error to a DicomNetError naming the peer. */
export function socketError(err: unknown, peer: string, tls: boolean): DicomNetError {
  const e = err as { code?: string; message?: string };
  const code = e?.code ?? "";
  const msg = e?.message ?? String(err);
  if (code === "ECONNREFUSED") return new DicomNetError("REFUSED", `Cannot connect to ${peer}: connection refused`);
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new DicomNetError("UNREACHABLE", `Cannot connect to ${peer}: host not found`);
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") return new DicomNetError("UNREACHABLE", `Cannot connect to ${peer}: host unreachable`);
  if (TLS_CODES.test(code) || (tls && /ssl|tls|certificate|handshake|alert|socket hang up|disconnected/i.test(msg))) {
    return new DicomNetError("TLS", `TLS failure with ${peer}: ${tlsFailureText(code, msg)}`);
  }
  if (code === "ECONNRESET" || code === "EPIPE") return new DicomNetError("CLOSED", `Connection to ${peer} was reset by the peer`);
  return new DicomNetError("CLOSED", `Connection to ${peer} failed: ${firstLine(msg)}`);
}

export function firstLine(s: string): string {
  return s.split("\n")[0].trim();
}
