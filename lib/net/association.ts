/**
 * One DICOM association over a TCP (or TLS) socket: PDU framing, the upper-layer state machine
 * (DUL), DIMSE message assembly, and sending messages whose data set is streamed from a file.
 * Used by both sides: `connect()` makes a requestor (SCU); the SCP framework (scp.ts) makes
 * acceptors. Service operations (echo, store, find, move, get) live in scu.ts on top of this.
 */
import { Buffer } from "node:buffer";
import { closeSync, openSync, readSync, renameSync } from "node:fs";
import * as net from "node:net";
import type * as tlsTypes from "node:tls";
import { type DimseCommand, decodeCommand, encodeCommand } from "./dimse.ts";
import { DicomNetError, socketError } from "./errors.ts";
import { type AssociationLimits, DEFAULT_ASSOCIATION_LIMITS, DEFAULT_SCP_IDLE_MS, withDefaults } from "./limits.ts";
import { CopyPool, FileSink, MemorySink, type ReceivedFile, type Sink, TempFiles } from "./sinks.ts";
import {
  abortReasonText, APPLICATION_CONTEXT_NAME, type AssociateAc, type AssociateRq, decodePdu, DEFAULT_MAX_PDU,
  encodeAbort, encodeAssociate, encodeAssociateRj, encodeReleaseRp, encodeReleaseRq, fragment, maxPduPayload, PC_ACCEPTANCE,
  type Pdu, PDU_ABORT, PDU_ASSOCIATE_AC, PDU_ASSOCIATE_RJ, PDU_ASSOCIATE_RQ, PDU_P_DATA_TF, PDU_RELEASE_RP,
  PDU_RELEASE_RQ, PDV_HEADER_LENGTH, type PresentationContextRq, rejectReasonText, type RoleSelection,
  writePdvHeader,
} from "./pdu.ts";
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from "../dicom/writer.ts";

export type { ReceivedFile } from "./sinks.ts";

/** A presentation context as negotiated. */
export interface NegotiatedContext {
  id: number;
  abstractSyntax: string;
  /** The accepted transfer syntax ("" when rejected). */
  transferSyntax: string;
  accepted: boolean;
  /** PS3.8 result (0 accepted, 1..4 rejection reasons). */
  result: number;
}

/** TLS settings: PEM contents (read the files before). */
export interface TlsOptions {
  ca?: string | Uint8Array;
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  /** Verify the peer's certificate (default true for clients). */
  rejectUnauthorized?: boolean;
  /** Server name for SNI and certificate host checks (default: the host). */
  servername?: string;
  /** SCP: ask clients for a certificate and verify it against `ca`. */
  requestCert?: boolean;
}

/** Timeouts in milliseconds; 0 disables one. */
export interface Timeouts {
  /** TCP (and TLS) connect. Default 10 s. */
  connect?: number;
  /** Waiting for A-ASSOCIATE-AC/RJ (SCU) or -RQ (SCP), and for A-RELEASE-RP. Default 30 s. */
  association?: number;
  /** Waiting for a DIMSE message (a response, or the next request on an SCP). Default 60 s for SCUs, 600 s idle on SCPs. */
  dimse?: number;
}

/**
 * Where and how {@linkcode connect} opens an association: peer, AE titles, the presentation contexts
 * to propose, role selection, PDU size, timeouts, TLS.
 */
export interface ConnectOptions {
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  /** Presentation contexts to propose; ids are assigned (1, 3, 5, …). */
  contexts: { abstractSyntax: string; transferSyntaxes: string[] }[];
  /** SCP/SCU role selection sub-items (C-GET needs scp: true for the storage classes it receives). */
  roles?: RoleSelection[];
  /** Largest PDU we receive (announced to the peer; larger ones abort the association). Default 262144. */
  maxPdu?: number;
  timeouts?: Timeouts;
  tls?: TlsOptions;
  /** What the peer may make us buffer (see limits.ts); `maxPdu` above wins over `limits.maxPdu`. */
  limits?: Partial<AssociationLimits>;
}

export interface DimseMessage {
  contextId: number;
  context: NegotiatedContext;
  command: DimseCommand;
  /** The data set bytes, for messages received in memory. */
  dataset?: Uint8Array;
  /** The data set, for C-STORE-RQs streamed to disk (see `storeDir`). */
  file?: ReceivedFile;
  /** Set when the data set could not be written to disk; the data was discarded. */
  error?: string;
}

/** A data set to send: a byte range of a file (streamed) or bytes in memory. */
export type DataSource = { path: string; offset: number; length: number } | Uint8Array;

type State = "connecting" | "awaiting-ac" | "awaiting-rq" | "established" | "awaiting-rp" | "closed";

interface Waiter {
  resolve: (m: DimseMessage) => void;
  reject: (e: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * Size of the buffer a requestor's plain TCP socket reads into (net `onread`): reused for every
 * read, so receiving allocates nothing per chunk (the default path allocates a 64 KB buffer
 * per read), and reads are larger (fewer system calls).
 */
const READ_BUFFER = 512 * 1024;
/** Received bytes gathered before a write, when the socket hands over chunks we may keep. */
const COALESCE_WRITES = 512 * 1024;
/** Bytes read from a file per read when streaming a data set. */
const SEND_BLOCK = 1024 * 1024;

/**
 * An established association. One DIMSE operation at a time (no asynchronous operations
 * window). Received messages are queued and taken with `receive()`.
 */
export class Association {
  readonly socket: net.Socket;
  readonly peer: string;
  readonly isRequestor: boolean;
  callingAet = "";
  calledAet = "";
  /** Accepted and rejected contexts by id. */
  readonly contexts: Map<number, NegotiatedContext> = new Map();
  /** Role selections as negotiated. */
  roles: RoleSelection[] = [];
  /** Largest PDU the peer receives (0 = no limit). */
  peerMaxPdu = 0;
  peerImplementationClassUid = "";
  peerImplementationVersionName = "";
  /** Where C-STORE-RQ data sets are streamed (a directory); unset = kept in memory. */
  storeDir: string | undefined;
  /** Compute the SHA-256 of each file received into `storeDir` while writing it (`ReceivedFile.sha256`). */
  hashReceived = false;
  /**
   * Also keep an in-memory copy of each file received into `storeDir` up to this many bytes
   * (`ReceivedFile.bytes`; 0 = none): the consumer then hashes and parses it without reading the
   * file back. At most two such buffers per association; a file that gets none (both held, or
   * larger than this) is hashed while it is written instead (`ReceivedFile.sha256`).
   */
  keepReceived = 0;
  private copyPool: CopyPool | undefined;
  timeouts: Required<Timeouts>;

  private state: State;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private readonly queue: DimseMessage[] = [];
  private readonly waiters: Waiter[] = [];
  /** The command set being received (bounded by `limits.maxCommand`). */
  private cmd: MemorySink | undefined;
  readonly limits: AssociationLimits;
  /** Largest P-DATA-TF PDU we announced (0 = none announced); set by the negotiation. */
  private maxPduReceive = 0;
  /** When bytes last arrived: a DIMSE wait counts from the peer's last sign of life. */
  private lastActivity = Date.now();
  /** The socket is paused: messages are queued unread, or negotiation holds the bytes. */
  private paused = false;
  /** Bytes of the P-DATA-TF PDU being streamed that have not arrived yet (0: between PDUs). */
  private pduLeft = 0;
  /** The PDV being streamed: its header, and how many of its data bytes are still to come. */
  private pdv: { contextId: number; command: boolean; last: boolean; left: number } | undefined;
  private tempFiles: TempFiles | undefined;
  private current: { contextId: number; command: DimseCommand; sink: Sink } | undefined;
  private closedError: DicomNetError | undefined;
  private pduWaiter: { resolve: (p: Pdu) => void; reject: (e: Error) => void } | undefined;
  private drainWaiters: (() => void)[] = [];
  private closeWaiters: (() => void)[] = [];
  private messageId = 0;
  private hold = false;
  private sendBuffers: { buf: Buffer; flushed: Promise<void> }[] = [];
  private readonly tls: boolean;
  /** A requestor over TLS that presents no client certificate. */
  private readonly tlsWithoutCert: boolean;
  /** The A-ASSOCIATE-RQ received (acceptors) or sent (requestors). */
  request: AssociateRq | undefined;

  constructor(
    socket: net.Socket,
    opts: { requestor: boolean; peer: string; tls: boolean; tlsWithoutCert?: boolean; timeouts?: Timeouts; limits?: Partial<AssociationLimits> },
  ) {
    this.socket = socket;
    this.peer = opts.peer;
    this.isRequestor = opts.requestor;
    this.tls = opts.tls;
    this.tlsWithoutCert = opts.tls && opts.tlsWithoutCert === true;
    this.state = opts.requestor ? "connecting" : "awaiting-rq";
    this.limits = withDefaults(DEFAULT_ASSOCIATION_LIMITS, opts.limits);
    this.timeouts = {
      connect: opts.timeouts?.connect ?? 10000,
      association: opts.timeouts?.association ?? 30000,
      dimse: opts.timeouts?.dimse ?? (opts.requestor ? 60000 : DEFAULT_SCP_IDLE_MS),
    };
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.onData(chunk));
    socket.on("drain", () => this.flushDrain());
    socket.on("error", (e) => this.onClose(socketError(e, this.peer, this.tls)));
    socket.on("close", () => this.onClose(this.closedByPeer()));
  }

  /**
   * The error for a connection the peer closed. Over TLS without a client certificate of ours, a
   * peer that closes before answering the association request has most likely refused the
   * session for want of one: TLS 1.3 reports that after the handshake, and the alert can be lost
   * with the connection (seen under Deno), so the sentence names the likely fix.
   */
  private closedByPeer(): DicomNetError {
    if (this.tlsWithoutCert && (this.state === "awaiting-ac" || this.state === "connecting")) {
      return new DicomNetError(
        "TLS",
        `TLS failure with ${this.peer}: it closed the connection before answering our association request; it may require a client certificate (give ours with --cert and --key)`,
      );
    }
    return new DicomNetError("CLOSED", `Connection to ${this.peer} closed by the peer`);
  }

  /** True while the association can carry messages. */
  get established(): boolean {
    return this.state === "established";
  }

  /** Next message id (1..65535). */
  nextMessageId(): number {
    this.messageId = (this.messageId % 65535) + 1;
    return this.messageId;
  }

  /** The accepted contexts. */
  acceptedContexts(): NegotiatedContext[] {
    return [...this.contexts.values()].filter((c) => c.accepted);
  }

  // ---- receiving ----

  private onData(chunk: Uint8Array): void {
    this.feed(chunk, false);
  }

  /**
   * Handles bytes read from the socket. `borrowed`: `chunk` is a view into a read buffer that is
   * reused once this returns (net `onread`), so nothing may keep a reference to it: sinks are
   * flushed, and what stays buffered (a partial header) is copied.
   */
  feed(chunk: Uint8Array, borrowed: boolean): void {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.lastActivity = Date.now();
    }
    this.pump();
    // Bytes of a reused read buffer are written before it is read into again; chunks the socket
    // gave us (64 KB each on an accepted connection) are gathered into one write of about
    // COALESCE_WRITES bytes, not written one system call per chunk.
    this.current?.sink.flush(borrowed ? 0 : COALESCE_WRITES);
    if (borrowed) {
      for (let i = 0; i < this.chunks.length; i++) if (this.chunks[i].buffer === chunk.buffer) this.chunks[i] = this.chunks[i].slice();
    }
  }

  /** True while buffered bytes must wait: negotiation holds them, or too many messages are unread. */
  private stalled(): boolean {
    return this.hold || this.queue.length >= this.limits.maxQueuedMessages;
  }

  /** Goes on parsing (and reading) once the reason to stop is gone. */
  private unstall(): void {
    if (this.stalled()) return;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    if (this.buffered > 0) queueMicrotask(() => this.pump());
  }

  /**
   * Parses and handles the buffered PDUs (until negotiation holds it). P-DATA-TF PDUs are not
   * reassembled: their PDVs' bytes go to the message being received as they arrive.
   */
  private pump(): void {
    while (this.state !== "closed") {
      if (this.stalled()) {
        // Bytes we cannot act on yet (negotiation pending, messages unread) stay in the kernel.
        if (this.buffered > 0 && !this.paused) {
          this.paused = true;
          this.socket.pause();
        }
        return;
      }
      if (this.pduLeft > 0) {
        if (!this.streamPData()) return;
        continue;
      }
      if (this.buffered < 6) return;
      const first = this.chunks[0];
      const head = first.length >= 6 ? first : this.take(6, false);
      const len = ((head[2] << 24) >>> 0) + (head[3] << 16) + (head[4] << 8) + head[5];
      if ((this.state === "awaiting-rq" && head[0] !== PDU_ASSOCIATE_RQ) || head[0] < 1 || head[0] > 7) {
        // Not DICOM (e.g. a TLS ClientHello on a plain port): do not wait for a bogus length.
        this.protocolAbort(`received data that is not a DICOM PDU (type 0x${head[0].toString(16)})`);
        return;
      }
      if (head[0] === PDU_P_DATA_TF && !this.pduWaiter && (this.state === "established" || this.state === "awaiting-rp")) {
        if (this.maxPduReceive > 0 && len > this.maxPduReceive) {
          this.protocolAbort(`P-DATA-TF PDU of ${len} bytes is larger than the ${this.maxPduReceive} we announced`, 6);
          return;
        }
        this.take(6, true);
        this.pduLeft = len;
        continue;
      }
      // Every other PDU is read whole: its length is checked before any of its body is kept.
      if (len > this.limits.maxAssociatePdu) {
        this.protocolAbort(`${pduName(head[0])} PDU of ${len} bytes is larger than the ${this.limits.maxAssociatePdu} allowed`, 6);
        return;
      }
      if (this.buffered < len + 6) return;
      const bytes = this.take(len + 6, true);
      let pdu: Pdu;
      try {
        pdu = decodePdu(bytes);
      } catch (e) {
        this.protocolAbort((e as Error).message);
        return;
      }
      this.onPdu(pdu);
    }
  }

  /** Consumes the buffered bytes of the P-DATA-TF PDU being streamed; false when it needs more (or the association ended). */
  private streamPData(): boolean {
    let pdv = this.pdv;
    if (!pdv) {
      if (this.pduLeft < 6) {
        this.protocolAbort("truncated PDV header");
        return false;
      }
      if (this.buffered < 6) return false;
      const h = this.take(6, true);
      const n = ((h[0] << 24) >>> 0) + (h[1] << 16) + (h[2] << 8) + h[3];
      if (n < 2 || 4 + n > this.pduLeft) {
        this.protocolAbort(`PDV length ${n} runs past its PDU`);
        return false;
      }
      this.pduLeft -= 6;
      pdv = { contextId: h[4], command: (h[5] & 1) === 1, last: (h[5] & 2) === 2, left: n - 2 };
      if (pdv.command && this.current) {
        this.protocolAbort("command fragment while a data set was expected");
        return false;
      }
      if (!pdv.command && !this.current) {
        this.protocolAbort("data set fragment without a command");
        return false;
      }
      this.pdv = pdv;
    }
    while (pdv.left > 0 && this.buffered > 0) {
      const c = this.chunks[0];
      const k = Math.min(c.length, pdv.left);
      const piece = k === c.length ? c : c.subarray(0, k);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      this.buffered -= k;
      this.pduLeft -= k;
      pdv.left -= k;
      if (pdv.command) {
        this.cmd ??= new MemorySink(this.limits.maxCommand);
        if (!this.cmd.write(piece)) {
          this.protocolAbort(`command set larger than the ${this.limits.maxCommand} bytes allowed`);
          return false;
        }
      } else if (!this.current!.sink.write(piece)) {
        const what = commandName(this.current!.command.commandField);
        this.protocolAbort(`${what} data set larger than the ${this.limits.maxIdentifier} bytes kept in memory`);
        return false;
      }
    }
    if (pdv.left > 0) return false;
    this.pdv = undefined;
    this.endPdv(pdv);
    return this.state !== "closed";
  }

  /** A PDV has arrived whole: completes the command or the data set when it was the last fragment. */
  private endPdv(pdv: { contextId: number; command: boolean; last: boolean }): void {
    if (!pdv.last) return;
    if (pdv.command) {
      let command: DimseCommand;
      try {
        command = decodeCommand(this.cmd?.end().dataset ?? new Uint8Array(0));
      } catch (e) {
        return this.protocolAbort(`malformed command set: ${(e as Error).message}`);
      } finally {
        this.cmd = undefined;
      }
      const context = this.contexts.get(pdv.contextId);
      if (!context?.accepted) return this.protocolAbort(`message on presentation context ${pdv.contextId}, which was not accepted`);
      if (command.hasDataSet) {
        this.current = { contextId: pdv.contextId, command, sink: this.sinkFor(command, context) };
      } else {
        this.deliver({ contextId: pdv.contextId, context, command });
      }
      return;
    }
    const cur = this.current!;
    this.current = undefined;
    const r = cur.sink.end();
    this.deliver({ contextId: cur.contextId, context: this.contexts.get(cur.contextId)!, command: cur.command, ...r });
  }

  /** Takes n bytes from the buffered chunks (without consuming unless `consume`). */
  private take(n: number, consume: boolean): Uint8Array {
    const first = this.chunks[0];
    if (first.length >= n) {
      if (!consume) return first.subarray(0, n);
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let o = 0;
    let i = 0;
    while (o < n) {
      const c = this.chunks[i];
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (consume) {
        if (k === c.length) {
          this.chunks.shift();
          continue;
        }
        this.chunks[0] = c.subarray(k);
      } else i++;
    }
    if (consume) this.buffered -= n;
    return out;
  }

  private onPdu(pdu: Pdu): void {
    if (this.pduWaiter) {
      const w = this.pduWaiter;
      this.pduWaiter = undefined;
      // Later PDUs wait until the negotiation step has acted on this one.
      this.hold = true;
      w.resolve(pdu);
      return;
    }
    switch (pdu.type) {
      case PDU_P_DATA_TF:
        // Streamed by pump() when established; anywhere else it is out of place.
        return this.protocolAbort("unexpected P-DATA-TF");
      case PDU_RELEASE_RQ:
        if (this.state !== "established") return this.protocolAbort("unexpected A-RELEASE-RQ");
        this.state = "closed";
        this.fail(new DicomNetError("CLOSED", `Association with ${this.peer} released by the peer`));
        if (this.tempFiles) {
          // The temporary files opened ahead are removed before the peer hears that the release is done.
          void this.tempFiles.dispose().then(() => this.answerRelease());
        } else this.answerRelease();
        return;
      case PDU_RELEASE_RP:
        if (this.state === "awaiting-rp") {
          this.state = "closed";
          this.socket.end();
          this.fail(new DicomNetError("CLOSED", `Association with ${this.peer} released`));
          return;
        }
        return this.protocolAbort("unexpected A-RELEASE-RP");
      case PDU_ABORT:
        this.state = "closed";
        this.fail(new DicomNetError("ABORTED", `Association with ${this.peer} ${abortReasonText(pdu.source, pdu.reason)}`));
        this.socket.destroy();
        return;
      default:
        this.protocolAbort(`unexpected PDU type ${pdu.type}`);
    }
  }

  private copies(): CopyPool | undefined {
    if (this.keepReceived <= 0) return undefined;
    if (this.copyPool?.limit !== this.keepReceived) this.copyPool = new CopyPool(this.keepReceived);
    return this.copyPool;
  }

  private sinkFor(command: DimseCommand, context: NegotiatedContext): Sink {
    if (command.commandField === 0x0001 && this.storeDir !== undefined) {
      if (this.tempFiles?.dir !== this.storeDir) {
        void this.tempFiles?.dispose();
        this.tempFiles = new TempFiles(this.storeDir);
      }
      return new FileSink(this.tempFiles, {
        sopClassUid: command.affectedSopClassUid ?? context.abstractSyntax,
        sopInstanceUid: command.affectedSopInstanceUid ?? "",
        transferSyntaxUid: context.transferSyntax,
      }, this.isRequestor ? this.calledAet : this.callingAet, this.hashReceived, this.copies());
    }
    return new MemorySink(this.limits.maxIdentifier);
  }

  private deliver(m: DimseMessage): void {
    const w = this.waiters.shift();
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(m);
    } else this.queue.push(m);
  }

  private answerRelease(): void {
    this.write(encodeReleaseRp());
    this.socket.end();
  }

  /** Removes a queued C-CANCEL-RQ for `messageId`; true when there was one. */
  takeCancel(messageId: number | undefined): boolean {
    const i = this.queue.findIndex((m) => m.command.commandField === 0x0fff && m.command.messageIdBeingRespondedTo === messageId);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  /** Waits for the next DIMSE message (timeout: `timeouts.dimse` unless given). */
  receive(timeoutMs: number = this.timeouts.dimse): Promise<DimseMessage> {
    const m = this.queue.shift();
    if (m) {
      this.unstall();
      return Promise.resolve(m);
    }
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      if (timeoutMs > 0) {
        // The wait counts from the peer's last byte: a large data set still arriving is not idle.
        const expire = () => {
          const quiet = Date.now() - this.lastActivity;
          if (quiet < timeoutMs && this.lastActivity > start) {
            w.timer = setTimeout(expire, timeoutMs - quiet);
            return;
          }
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          const err = new DicomNetError(
            "TIMEOUT",
            this.isRequestor
              ? `No response from ${this.peer} within ${seconds(timeoutMs)} (DIMSE timeout)`
              : `No request from ${this.peer} within ${seconds(timeoutMs)} (idle timeout)`,
          );
          this.abort();
          reject(err);
        };
        const start = Date.now();
        w.timer = setTimeout(expire, timeoutMs);
      }
      this.waiters.push(w);
    });
  }

  // ---- closing ----

  private fail(err: DicomNetError): void {
    if (!this.closedError) this.closedError = err;
    if (this.current) {
      this.current.sink.discard();
      this.current = undefined;
    }
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(this.closedError);
    }
    if (this.pduWaiter) {
      const p = this.pduWaiter;
      this.pduWaiter = undefined;
      p.reject(this.closedError);
    }
    this.flushDrain();
  }

  private onClose(err: DicomNetError): void {
    const wasOpen = this.state !== "closed";
    this.state = "closed";
    this.fail(wasOpen ? err : this.closedError ?? err);
    this.copyPool?.close(); // copies still held are dropped when released, not pooled
    const waiters = this.closeWaiters.splice(0);
    const notify = () => {
      for (const f of waiters) f();
    };
    // Those waiting for the close (release(), then removing a staging folder) also wait for the
    // temporary files opened ahead to be removed.
    if (this.tempFiles) void this.tempFiles.dispose().then(notify);
    else notify();
  }

  /** Why the association ended, once it has. */
  get closeReason(): DicomNetError | undefined {
    return this.closedError;
  }

  /** Aborts as the service provider (PS3.8 Table 9-26 reason: 2 unexpected PDU, 6 invalid parameter value). */
  private protocolAbort(why: string, reason = 2): void {
    if (this.state === "closed") return;
    this.write(encodeAbort(2, reason));
    this.state = "closed";
    this.fail(new DicomNetError("PROTOCOL", `Protocol error with ${this.peer}: ${why}`));
    this.socket.destroy();
  }

  /** Sends A-ABORT and closes the connection. */
  abort(): void {
    if (this.state === "closed") {
      this.socket.destroy();
      return;
    }
    this.write(encodeAbort(0, 0));
    this.state = "closed";
    this.fail(new DicomNetError("ABORTED", `Association with ${this.peer} aborted`));
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 100).unref?.();
  }

  /** Releases the association (A-RELEASE-RQ, wait for -RP, close). Never throws. */
  async release(): Promise<void> {
    if (this.state !== "established") {
      this.socket.destroy();
      return;
    }
    this.state = "awaiting-rp";
    const closed = new Promise<void>((resolve) => {
      this.closeWaiters.push(resolve);
    });
    this.write(encodeReleaseRq());
    const timer = setTimeout(() => this.socket.destroy(), this.timeouts.association || 30000);
    await closed;
    clearTimeout(timer);
  }

  /** Resolves when the socket has closed. */
  closed(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  // ---- sending ----

  private write(b: Uint8Array): boolean {
    if (this.socket.destroyed || !this.socket.writable) return true;
    return this.socket.write(b);
  }

  /** Writes and calls `done` once the bytes left for the kernel, or the connection ended. */
  private writeThen(b: Uint8Array, done: () => void): void {
    if (this.socket.destroyed || !this.socket.writable) return done();
    this.socket.write(b, () => done());
  }

  private flushDrain(): void {
    for (const f of this.drainWaiters.splice(0)) f();
  }

  private async drain(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = this.timeouts.dimse > 0
        ? setTimeout(() => {
          this.abort();
          reject(new DicomNetError("TIMEOUT", `${this.peer} stopped reading within ${seconds(this.timeouts.dimse)} (DIMSE timeout)`));
        }, this.timeouts.dimse)
        : undefined;
      this.drainWaiters.push(() => {
        if (timer) clearTimeout(timer);
        resolve();
      });
    });
    if (this.closedError) throw this.closedError;
  }

  private async send(b: Uint8Array): Promise<void> {
    if (this.closedError) throw this.closedError;
    if (!this.write(b)) await this.drain();
  }

  /**
   * Sends a DIMSE message: the command, then the data set if given. A file data source is read
   * in PDU-sized pieces straight into the PDU buffers and written with back-pressure; its
   * bytes go out unchanged.
   */
  async sendMessage(contextId: number, command: DimseCommand, data?: DataSource): Promise<void> {
    if (this.closedError) throw this.closedError;
    if (this.state !== "established") throw new DicomNetError("CLOSED", `Association with ${this.peer} is not established`);
    command.hasDataSet = data !== undefined;
    const commandPdus = fragment(contextId, true, encodeCommand(command), this.peerMaxPdu);
    if (data === undefined || data instanceof Uint8Array) {
      for (const p of commandPdus) await this.send(p);
      if (data !== undefined) for (const p of fragment(contextId, false, data, this.peerMaxPdu)) await this.send(p);
      return;
    }
    const fd = openSync(data.path, "r"); // before anything is written: a missing file leaves the association usable
    // The command goes out in the same writev as the first block of the data set.
    this.socket.cork();
    let corked = true;
    for (const p of commandPdus) this.write(p);
    // Read blocks of whole PDVs (about 1 MB) with one read each into one of two reused buffers,
    // then hand the socket each PDV header and a view of the block while corked, so Node writes
    // them with one writev. A buffer is refilled only after the socket flushed what it held,
    // so memory stays at two blocks per association whatever the object size.
    const max = maxPduPayload(this.peerMaxPdu);
    const block = Math.max(max, Math.floor(SEND_BLOCK / max) * max);
    if (this.sendBuffers.length === 0 || this.sendBuffers[0].buf.length < block) {
      this.sendBuffers = [0, 1].map(() => ({ buf: Buffer.allocUnsafe(block), flushed: Promise.resolve() }));
    }
    try {
      let pos = 0;
      let k = 0;
      do {
        const slot = this.sendBuffers[k];
        k ^= 1;
        if (!corked) await slot.flushed;
        if (this.closedError) throw this.closedError;
        const n = Math.min(block, data.length - pos);
        const buf = slot.buf;
        let got = 0;
        while (got < n) {
          const r = readSync(fd, buf, got, n - got, data.offset + pos + got);
          if (r === 0) throw new Error(`Cannot read "${data.path}": file ended at offset ${data.offset + pos + got}`);
          got += r;
        }
        const pdus = Math.ceil(n / max) || 1;
        const headers = Buffer.allocUnsafe(PDV_HEADER_LENGTH * pdus);
        let onFlushed!: () => void;
        slot.flushed = new Promise<void>((resolve) => {
          onFlushed = () => {
            this.closeWaiters.splice(this.closeWaiters.indexOf(onFlushed) >>> 0, 1);
            resolve();
          };
          this.closeWaiters.push(onFlushed);
        });
        if (!corked) this.socket.cork();
        corked = false;
        for (let i = 0, o = 0; i < pdus; i++, o += max) {
          const len = Math.min(max, n - o);
          const h = headers.subarray(i * PDV_HEADER_LENGTH, (i + 1) * PDV_HEADER_LENGTH);
          writePdvHeader(h, contextId, false, pos + o + len >= data.length, len);
          this.write(h);
          if (i === pdus - 1) this.writeThen(buf.subarray(o, o + len), onFlushed);
          else this.write(buf.subarray(o, o + len));
        }
        this.socket.uncork();
        pos += n;
        if (this.socket.writableNeedDrain) await this.drain();
        else if (this.closedError) throw this.closedError;
      } while (pos < data.length);
    } catch (e) {
      // Half a message went out: the association cannot carry on.
      if (corked) this.socket.uncork();
      if (e !== this.closedError) this.abort();
      throw e;
    } finally {
      closeSync(fd);
    }
  }

  // ---- negotiation ----

  /** Waits for one PDU outside the established state (negotiation). */
  waitPdu(timeoutMs: number, what: string): Promise<Pdu> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = timeoutMs > 0
        ? setTimeout(() => {
          this.pduWaiter = undefined;
          this.socket.destroy();
          reject(new DicomNetError("TIMEOUT", `No ${what} from ${this.peer} within ${seconds(timeoutMs)} (association timeout)`));
        }, timeoutMs)
        : undefined;
      this.pduWaiter = {
        resolve: (p) => {
          if (timer) clearTimeout(timer);
          resolve(p);
        },
        reject: (e) => {
          if (timer) clearTimeout(timer);
          reject(e);
        },
      };
      // PDUs may already be buffered.
      this.hold = false;
      this.unstall();
      this.pump();
    });
  }

  /** Requestor: sends A-ASSOCIATE-RQ and waits for the answer. */
  async requestAssociation(rq: AssociateRq): Promise<void> {
    this.request = rq;
    this.callingAet = rq.callingAet;
    this.calledAet = rq.calledAet;
    this.maxPduReceive = rq.user.maxPduLength;
    this.state = "awaiting-ac";
    this.write(encodeAssociate(rq));
    const answer = await this.waitPdu(this.timeouts.association, "association answer");
    if (answer.type === PDU_ASSOCIATE_RJ) {
      this.state = "closed";
      this.socket.destroy();
      const kind = answer.result === 2 ? "transient" : "permanent";
      throw new DicomNetError(
        "REJECTED",
        `Association rejected by ${this.peer} (${kind}): ${rejectReasonText(answer.source, answer.reason)}`,
        answer,
      );
    }
    if (answer.type === PDU_ABORT) {
      this.state = "closed";
      this.socket.destroy();
      throw new DicomNetError("ABORTED", `Association request to ${this.peer} ${abortReasonText(answer.source, answer.reason)}`);
    }
    if (answer.type !== PDU_ASSOCIATE_AC) {
      this.protocolAbort(`expected A-ASSOCIATE-AC, got PDU type ${answer.type}`);
      throw this.closedError!;
    }
    this.acceptAnswer(rq, answer);
  }

  private acceptAnswer(rq: AssociateRq, ac: AssociateAc): void {
    const proposed = new Map(rq.contexts.map((c) => [c.id, c]));
    for (const c of ac.contexts) {
      const p = proposed.get(c.id);
      if (!p) continue;
      const accepted = c.result === PC_ACCEPTANCE;
      this.contexts.set(c.id, { id: c.id, abstractSyntax: p.abstractSyntax, transferSyntax: accepted ? c.transferSyntax : "", accepted, result: c.result });
    }
    this.peerMaxPdu = ac.user.maxPduLength;
    this.peerImplementationClassUid = ac.user.implementationClassUid;
    this.peerImplementationVersionName = ac.user.implementationVersionName ?? "";
    // Roles: without an answer item the default roles apply (requestor SCU only).
    const answered = new Map(ac.user.roles.map((r) => [r.sopClassUid, r]));
    this.roles = (rq.user.roles ?? []).map((r) => {
      const a = answered.get(r.sopClassUid);
      return { sopClassUid: r.sopClassUid, scu: a ? a.scu && r.scu : true, scp: a ? a.scp && r.scp : false };
    });
    this.state = "established";
    this.resume();
  }

  private resume(): void {
    this.hold = false;
    this.unstall();
    queueMicrotask(() => this.pump());
  }

  /** Acceptor: sends A-ASSOCIATE-AC for the request received. */
  acceptAssociation(rq: AssociateRq, contexts: NegotiatedContext[], roles: RoleSelection[], maxPdu: number): void {
    for (const c of contexts) this.contexts.set(c.id, c);
    this.roles = roles;
    this.maxPduReceive = maxPdu;
    this.peerMaxPdu = rq.user.maxPduLength;
    this.peerImplementationClassUid = rq.user.implementationClassUid;
    this.peerImplementationVersionName = rq.user.implementationVersionName ?? "";
    const ac: AssociateAc = {
      type: PDU_ASSOCIATE_AC,
      protocolVersion: 1,
      calledAet: rq.calledAet,
      callingAet: rq.callingAet,
      applicationContext: APPLICATION_CONTEXT_NAME,
      contexts: contexts.map((c) => ({ id: c.id, result: c.result, transferSyntax: c.transferSyntax })),
      user: {
        maxPduLength: maxPdu,
        implementationClassUid: IMPLEMENTATION_CLASS_UID,
        implementationVersionName: IMPLEMENTATION_VERSION_NAME,
        roles,
        other: [],
      },
    };
    this.write(encodeAssociate(ac));
    this.state = "established";
    this.resume();
  }

  /** Acceptor: sends A-ASSOCIATE-RJ and closes. */
  rejectAssociation(result: number, source: number, reason: number): void {
    this.write(encodeAssociateRj(result, source, reason));
    this.state = "closed";
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref?.();
  }

  /** Acceptor: marks the association set up by the SCP framework. */
  setAets(callingAet: string, calledAet: string): void {
    this.callingAet = callingAet;
    this.calledAet = calledAet;
  }

  /** Moves a received temp file into place atomically. */
  static moveReceived(file: ReceivedFile, dest: string): void {
    renameSync(file.path, dest);
  }
}


const PDU_NAMES: Record<number, string> = {
  1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF", 5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT",
};

function pduName(type: number): string {
  return PDU_NAMES[type] ?? `type 0x${type.toString(16)}`;
}

const COMMAND_NAMES: Record<number, string> = {
  0x0001: "C-STORE-RQ", 0x0010: "C-GET-RQ", 0x0020: "C-FIND-RQ", 0x0021: "C-MOVE-RQ", 0x0030: "C-ECHO-RQ",
  0x8001: "C-STORE-RSP", 0x8010: "C-GET-RSP", 0x8020: "C-FIND-RSP", 0x8021: "C-MOVE-RSP",
};

function commandName(field: number): string {
  return COMMAND_NAMES[field] ?? `command 0x${field.toString(16).padStart(4, "0")}`;
}

export function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Builds the proposed contexts with ids 1, 3, 5, … (at most 128). */
export function numberContexts(list: { abstractSyntax: string; transferSyntaxes: string[] }[]): PresentationContextRq[] {
  if (list.length > 128) throw new Error(`Too many presentation contexts (${list.length}; at most 128)`);
  return list.map((c, i) => ({ id: i * 2 + 1, abstractSyntax: c.abstractSyntax, transferSyntaxes: c.transferSyntaxes }));
}

/**
 * Opens an association: TCP (or TLS) connect with a timeout, A-ASSOCIATE-RQ, and the answer.
 * Throws a `DicomNetError` whose message says what happened (refused, rejected with the reason,
 * timeout, TLS failure).
 *
 * @example
 * ```ts
 * const assoc = await connect({
 *   host: "pacs", port: 104, callingAet: "RTEXPORT", calledAet: "PACS",
 *   contexts: [{ abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
 * });
 * await echo(assoc);
 * await assoc.release();
 * ```
 */
export async function connect(opts: ConnectOptions): Promise<Association> {
  const peer = `${opts.calledAet}@${opts.host}:${opts.port}`;
  const connectTimeout = opts.timeouts?.connect ?? 10000;
  // Assigned once, below: the read callback set up before it must see it unset until then.
  // deno-lint-ignore prefer-const
  let assoc: Association | undefined;
  const early: Uint8Array[] = [];
  // An error between the connect and the Association taking over the socket (a TLS 1.3 server
  // refusing our certificate sends its alert just then): kept and handed over, never uncaught.
  let settled = false;
  let earlyError: Error | undefined;
  let onError!: (e: Error) => void;
  const useTls = opts.tls !== undefined;
  // node:tls costs ~60 ms to load (cipher tables): only when TLS is asked for.
  const tls = useTls ? await import("node:tls") : undefined;
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    let s: net.Socket;
    const timer = connectTimeout > 0
      ? setTimeout(() => {
        s.destroy();
        reject(new DicomNetError("TIMEOUT", `Cannot connect to ${opts.host}:${opts.port}: no answer within ${seconds(connectTimeout)} (connect timeout)`));
      }, connectTimeout)
      : undefined;
    onError = (e: Error) => {
      if (settled) {
        earlyError ??= e;
        return;
      }
      settled = true;
      if (timer) clearTimeout(timer);
      s.destroy();
      reject(socketError(e, `${opts.host}:${opts.port}`, useTls));
    };
    if (useTls) {
      const t = opts.tls!;
      const tlsOpts: tlsTypes.ConnectionOptions = {
        host: opts.host,
        port: opts.port,
        rejectUnauthorized: t.rejectUnauthorized ?? true,
        servername: t.servername ?? (net.isIP(opts.host) ? undefined : opts.host),
      };
      if (t.ca) tlsOpts.ca = toPem(t.ca);
      if (t.cert) tlsOpts.cert = toPem(t.cert);
      if (t.key) tlsOpts.key = toPem(t.key);
      if (net.isIP(opts.host) && t.servername === undefined) {
        // Certificates for loopback/IP peers are checked against the IP SANs.
        tlsOpts.checkServerIdentity = (host, cert) => tls!.checkServerIdentity(host, cert);
      }
      s = tls!.connect(tlsOpts, () => {
        if (timer) clearTimeout(timer);
        settled = true;
        resolve(s);
      });
    } else {
      const buffer = Buffer.allocUnsafe(READ_BUFFER);
      const onread = {
        buffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          // A plain Uint8Array view: its slice() copies (Buffer's slice() would alias the reused buffer).
          const bytes = new Uint8Array(buf.buffer, buf.byteOffset, n);
          if (assoc) assoc.feed(bytes, true);
          else early.push(bytes.slice()); // nothing is expected before A-ASSOCIATE-RQ; keep it for the association
          return true;
        },
      };
      s = net.connect({ host: opts.host, port: opts.port, onread }, () => {
        if (timer) clearTimeout(timer);
        settled = true;
        resolve(s);
      });
    }
    s.on("error", onError);
  });
  assoc = new Association(socket, { requestor: true, peer, tls: useTls, tlsWithoutCert: useTls && !opts.tls?.cert, timeouts: opts.timeouts, limits: opts.limits });
  socket.off("error", onError);
  if (earlyError) socket.emit("error", earlyError);
  for (const b of early.splice(0)) assoc.feed(b, false);
  const rq: AssociateRq = {
    type: PDU_ASSOCIATE_RQ,
    protocolVersion: 1,
    calledAet: opts.calledAet,
    callingAet: opts.callingAet,
    applicationContext: APPLICATION_CONTEXT_NAME,
    contexts: numberContexts(opts.contexts),
    user: {
      maxPduLength: opts.maxPdu ?? opts.limits?.maxPdu ?? DEFAULT_MAX_PDU,
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
      implementationVersionName: IMPLEMENTATION_VERSION_NAME,
      roles: opts.roles ?? [],
      other: [],
    },
  };
  await assoc.requestAssociation(rq);
  return assoc;
}

function toPem(v: string | Uint8Array): string | Buffer {
  return typeof v === "string" ? v : Buffer.from(v);
}
