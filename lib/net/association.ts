/**
 * One DICOM association over a TCP (or TLS) socket: PDU framing, the upper-layer state machine
 * (DUL), DIMSE message assembly, and sending messages whose data set is streamed from a file.
 * Used by both sides: `connect()` makes a requestor (SCU); the SCP framework (scp.ts) makes
 * acceptors. Service operations (echo, store, find, move, get) live in scu.ts on top of this.
 */
import { concatBytes } from "../util/bytes.ts";
import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";
import { closeSync, open as openAsync, openSync, readSync, renameSync, unlinkSync, writeSync, writevSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import * as net from "node:net";
import type * as tlsTypes from "node:tls";
import { buildMeta, encodeMeta } from "../dicom/writer.ts";
import { type DimseCommand, decodeCommand, encodeCommand } from "./dimse.ts";
import { DicomNetError, socketError } from "./errors.ts";
import {
  abortReasonText, APPLICATION_CONTEXT_NAME, type AssociateAc, type AssociateRq, decodePdu, DEFAULT_MAX_PDU,
  encodeAbort, encodeAssociate, encodeAssociateRj, encodeReleaseRp, encodeReleaseRq, fragment, maxPduPayload, PC_ACCEPTANCE,
  type Pdu, PDU_ABORT, PDU_ASSOCIATE_AC, PDU_ASSOCIATE_RJ, PDU_ASSOCIATE_RQ, PDU_P_DATA_TF, PDU_RELEASE_RP,
  PDU_RELEASE_RQ, PDV_HEADER_LENGTH, type PresentationContextRq, rejectReasonText, type RoleSelection,
  writePdvHeader,
} from "./pdu.ts";
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from "../dicom/writer.ts";

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
  /** Largest PDU we receive (announced to the peer). Default 262144. */
  maxPdu?: number;
  timeouts?: Timeouts;
  tls?: TlsOptions;
}

/** A data set received with a message: in memory, or streamed into a file. */
export interface ReceivedFile {
  /** Temporary Part 10 file (meta header built from the command + the data set bytes as received). */
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Size of the file in bytes. */
  size: number;
  /** Lower-case hex SHA-256 of the file, computed while it was written (when `hashReceived` is set). */
  sha256?: string;
  /**
   * The whole file (meta header and data set) as written, when the association keeps copies
   * (`keepReceived`) and it fit. Valid until `release()`: the buffer then serves a later object.
   */
  bytes?: Uint8Array;
  /** Gives `bytes` back to the association (idempotent). Whoever keeps the file must call it. */
  release?: () => void;
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

/** Where a message's data set bytes go while they arrive. */
interface Sink {
  /** Takes bytes that may be a view into a reused read buffer: copy or consume them before `flush`. */
  write(b: Uint8Array): void;
  /** Called before the bytes given to `write` may change (end of each socket read). */
  flush(): void;
  end(): { dataset?: Uint8Array; file?: ReceivedFile; error?: string };
  discard(): void;
}

class MemorySink implements Sink {
  parts: Uint8Array[] = [];
  length = 0;
  write(b: Uint8Array): void {
    this.parts.push(b.slice());
    this.length += b.length;
  }
  flush(): void {}
  end(): { dataset: Uint8Array } {
    if (this.parts.length === 1) return { dataset: this.parts[0] };
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return { dataset: out };
  }
  discard(): void {
    this.parts = [];
  }
}

let tempCounter = 0;

function tempPath(dir: string): string {
  return join(dir, `.rtexport-rx-${process.pid}-${Date.now().toString(36)}-${(tempCounter++).toString(36)}.part`);
}

/**
 * Temporary files opened ahead of time. With one, a third of the objects of a 500-object C-GET
 * from Orthanc found none ready (the open's completion had not been handled yet) and created
 * theirs synchronously, on the path the peer waits on; with four, 0–5 of 500 did.
 */
const TEMP_FILES_AHEAD = 4;

/**
 * Opens the temporary file for the next received object in the background once an association
 * has received two (creating a file costs 0.2–0.5 ms here; done while the peer is still
 * sending, it is off the path between an object's last byte and our C-STORE-RSP). An
 * association that carries a single object (a storescu per file) opens nothing ahead.
 */
class TempFiles {
  readonly dir: string;
  private readonly ready: { fd: number; path: string }[] = [];
  private opening = 0;
  private taken = 0;
  private stopped = false;
  private idle: (() => void)[] = [];

  constructor(dir: string) {
    this.dir = dir;
  }

  /** A new, empty file opened for writing (synchronously when none is ready; that throws on failure). */
  take(): { fd: number; path: string } {
    let f = this.ready.shift();
    if (!f) {
      const path = tempPath(this.dir);
      f = { fd: openSync(path, "wx"), path };
    }
    if (++this.taken >= 2) this.refill();
    return f;
  }

  /**
   * Opens the next file ahead, one at a time: creates in one folder serialize on its lock in the
   * kernel, and several in flight spun on it (perf, 4 at once: a sixth of the process's CPU in
   * rwsem_spin_on_owner on this 2-CPU host).
   */
  private refill(): void {
    if (this.stopped || this.opening > 0 || this.ready.length >= TEMP_FILES_AHEAD) return;
    const path = tempPath(this.dir);
    this.opening++;
    openAsync(path, "wx", (err, fd) => {
      this.opening--;
      if (err) this.stopped = true; // the synchronous open in take() reports the problem
      else if (this.stopped) discardTemp(fd, path);
      else this.ready.push({ fd, path });
      if (this.opening === 0) for (const f of this.idle.splice(0)) f();
      this.refill();
    });
  }

  /** Closes and removes the files opened ahead; resolves when no open is in flight any more. */
  dispose(): Promise<void> {
    this.stopped = true;
    for (const f of this.ready.splice(0)) discardTemp(f.fd, f.path);
    if (this.opening === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 2000); // an open never takes that long; never hang a close on it
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function discardTemp(fd: number, path: string): void {
  try {
    closeSync(fd);
    unlinkSync(path);
  } catch { /* already gone (staging removed) */ }
}

/** The first buffer a kept copy gets (grown by doubling up to the association's limit). */
const COPY_INITIAL = 1024 * 1024;

/**
 * Buffers that hold in-memory copies of received files (`Association.keepReceived`), so the
 * consumer hashes and parses an object without reading its file back. Two per association: one
 * being filled, one waiting for the consumer. When neither is free (a consumer that holds on to
 * them, or a peer that sends before our C-STORE-RSP) an object simply gets no copy.
 */
class CopyPool {
  readonly limit: number;
  private readonly free: Uint8Array[] = [];
  private live = 0;
  private closed = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  take(): Uint8Array | undefined {
    if (this.closed) return undefined;
    const b = this.free.pop();
    if (b) return b;
    if (this.live >= 2) return undefined;
    this.live++;
    return new Uint8Array(Math.min(COPY_INITIAL, this.limit));
  }

  /** A larger buffer holding the first `used` bytes of `b`, or undefined past the limit (`b` is given back). */
  grow(b: Uint8Array, used: number, need: number): Uint8Array | undefined {
    if (need > this.limit) {
      this.give(b);
      return undefined;
    }
    let size = b.length;
    while (size < need) size *= 2;
    const n = new Uint8Array(Math.min(size, this.limit));
    n.set(b.subarray(0, used));
    return n;
  }

  give(b: Uint8Array): void {
    if (!this.closed) this.free.push(b);
  }

  /** The association ended: buffers given back from now on are dropped, not kept. */
  close(): void {
    this.closed = true;
    this.free.length = 0;
  }
}

/** Writes all of `parts` at the file's current position (writev; the rest with write if it was short). */
function writeAllv(fd: number, parts: Uint8Array[], total: number): void {
  let done = parts.length === 1 ? writeSync(fd, parts[0]) : writevSync(fd, parts);
  if (done === total) return;
  for (const p of parts) {
    if (done >= p.length) {
      done -= p.length;
      continue;
    }
    let o = done;
    while (o < p.length) o += writeSync(fd, p, o, p.length - o);
    done = 0;
  }
}

/**
 * Writes a received data set to a temporary file as its PDVs arrive, behind a meta header: the
 * pieces of one socket read go out with one writev, optionally hashed on the way.
 */
class FileSink implements Sink {
  private fd: number | undefined;
  private size = 0;
  private error: string | undefined;
  readonly path: string;
  private readonly info: Omit<ReceivedFile, "path" | "size">;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private readonly hash: Hash | undefined;
  private readonly copies: CopyPool | undefined;
  /** The in-memory copy being filled (`copies`), and how much of it is used. */
  private copy: Uint8Array | undefined;
  private copied = 0;

  constructor(files: TempFiles, info: Omit<ReceivedFile, "path" | "size">, sourceAet: string, hash: boolean, copies?: CopyPool) {
    this.info = info;
    this.hash = hash ? createHash("sha256") : undefined;
    this.copies = copies;
    this.copy = copies?.take();
    let f: { fd: number; path: string };
    try {
      f = files.take();
    } catch (e) {
      this.path = join(files.dir, ".rtexport-rx-*.part");
      this.error = `Cannot write "${this.path}": ${(e as Error).message ?? e}`;
      return;
    }
    this.path = f.path;
    this.fd = f.fd;
    try {
      const meta = encodeMeta(buildMeta(info.sopClassUid, info.sopInstanceUid, info.transferSyntaxUid, sourceAet));
      const head = new Uint8Array(132 + meta.length);
      head.set([0x44, 0x49, 0x43, 0x4d], 128);
      head.set(meta, 132);
      this.write(head);
    } catch (e) {
      this.fail(e);
    }
  }

  private fail(e: unknown): void {
    this.error = `Cannot write "${this.path}": ${(e as Error).message ?? e}`;
    this.discard();
  }

  write(b: Uint8Array): void {
    if (this.fd === undefined) return;
    this.pending.push(b);
    this.pendingBytes += b.length;
    this.hash?.update(b);
    if (this.copy) {
      if (this.copied + b.length > this.copy.length) this.copy = this.copies!.grow(this.copy, this.copied, this.copied + b.length);
      if (this.copy) {
        this.copy.set(b, this.copied);
        this.copied += b.length;
      }
    }
  }

  flush(): void {
    if (this.fd === undefined || this.pendingBytes === 0) return;
    try {
      writeAllv(this.fd, this.pending, this.pendingBytes);
      this.size += this.pendingBytes;
    } catch (e) {
      this.fail(e);
    }
    this.pending = [];
    this.pendingBytes = 0;
  }

  end(): { file?: ReceivedFile; error?: string } {
    this.flush();
    if (this.error || this.fd === undefined) {
      this.discard();
      return { error: this.error ?? "data set discarded" };
    }
    try {
      closeSync(this.fd);
      this.fd = undefined;
    } catch (e) {
      this.fail(e);
      return { error: this.error };
    }
    const file: ReceivedFile = { ...this.info, path: this.path, size: this.size };
    if (this.hash) file.sha256 = this.hash.digest("hex");
    if (this.copy) {
      // The closure holds the buffer until it is given back, and the pool (not this sink) after.
      let copy: Uint8Array | undefined = this.copy;
      const pool = this.copies!;
      this.copy = undefined;
      file.bytes = copy.subarray(0, this.copied);
      file.release = () => {
        if (!copy) return;
        pool.give(copy);
        copy = undefined;
        file.bytes = undefined;
      };
    }
    return { file };
  }

  discard(): void {
    this.pending = [];
    this.pendingBytes = 0;
    if (this.copy) this.copies!.give(this.copy);
    this.copy = undefined;
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch { /* already closed */ }
      this.fd = undefined;
    }
    try {
      if (this.path) unlinkSync(this.path);
    } catch { /* not created */ }
  }
}

/** A data set to send: a byte range of a file (streamed) or bytes in memory. */
export type DataSource = { path: string; offset: number; length: number } | Uint8Array;

type State = "connecting" | "awaiting-ac" | "awaiting-rq" | "established" | "awaiting-rp" | "closed";

interface Waiter {
  resolve: (m: DimseMessage) => void;
  reject: (e: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
}

const MAX_ACCEPTED_PDU = 64 * 1024 * 1024;
/**
 * Size of the buffer a requestor's plain TCP socket reads into (net `onread`): reused for every
 * read, so receiving allocates nothing per chunk (the default path allocates a 64 KB buffer
 * per read), and reads are larger (fewer system calls).
 */
const READ_BUFFER = 512 * 1024;
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
   * file back. At most two such buffers per association.
   */
  keepReceived = 0;
  private copyPool: CopyPool | undefined;
  timeouts: Required<Timeouts>;

  private state: State;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private readonly queue: DimseMessage[] = [];
  private readonly waiters: Waiter[] = [];
  private cmdParts: Uint8Array[] = [];
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
  /** The A-ASSOCIATE-RQ received (acceptors) or sent (requestors). */
  request: AssociateRq | undefined;

  constructor(socket: net.Socket, opts: { requestor: boolean; peer: string; tls: boolean; timeouts?: Timeouts }) {
    this.socket = socket;
    this.peer = opts.peer;
    this.isRequestor = opts.requestor;
    this.tls = opts.tls;
    this.state = opts.requestor ? "connecting" : "awaiting-rq";
    this.timeouts = {
      connect: opts.timeouts?.connect ?? 10000,
      association: opts.timeouts?.association ?? 30000,
      dimse: opts.timeouts?.dimse ?? (opts.requestor ? 60000 : 600000),
    };
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.onData(chunk));
    socket.on("drain", () => this.flushDrain());
    socket.on("error", (e) => this.onClose(socketError(e, this.peer, this.tls)));
    socket.on("close", () => this.onClose(new DicomNetError("CLOSED", `Connection to ${this.peer} closed by the peer`)));
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
    }
    this.pump();
    this.current?.sink.flush();
    if (borrowed) {
      for (let i = 0; i < this.chunks.length; i++) if (this.chunks[i].buffer === chunk.buffer) this.chunks[i] = this.chunks[i].slice();
    }
  }

  /**
   * Parses and handles the buffered PDUs (until negotiation holds it). P-DATA-TF PDUs are not
   * reassembled: their PDVs' bytes go to the message being received as they arrive.
   */
  private pump(): void {
    while (!this.hold && this.state !== "closed") {
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
      if (len > MAX_ACCEPTED_PDU) {
        this.protocolAbort(`PDU of ${len} bytes is larger than allowed`);
        return;
      }
      if (head[0] === PDU_P_DATA_TF && !this.pduWaiter && (this.state === "established" || this.state === "awaiting-rp")) {
        this.take(6, true);
        this.pduLeft = len;
        continue;
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
      if (pdv.command) this.cmdParts.push(piece.slice());
      else this.current!.sink.write(piece);
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
        command = decodeCommand(concatBytes(this.cmdParts));
      } catch (e) {
        return this.protocolAbort(`malformed command set: ${(e as Error).message}`);
      } finally {
        this.cmdParts = [];
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
    return new MemorySink();
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
    if (m) return Promise.resolve(m);
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      if (timeoutMs > 0) {
        w.timer = setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          const err = new DicomNetError("TIMEOUT", `No response from ${this.peer} within ${seconds(timeoutMs)} (DIMSE timeout)`);
          this.abort();
          reject(err);
        }, timeoutMs);
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

  private protocolAbort(why: string): void {
    if (this.state === "closed") return;
    this.write(encodeAbort(2, 2));
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
      this.pump();
    });
  }

  /** Requestor: sends A-ASSOCIATE-RQ and waits for the answer. */
  async requestAssociation(rq: AssociateRq): Promise<void> {
    this.request = rq;
    this.callingAet = rq.callingAet;
    this.calledAet = rq.calledAet;
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
    queueMicrotask(() => this.pump());
  }

  /** Acceptor: sends A-ASSOCIATE-AC for the request received. */
  acceptAssociation(rq: AssociateRq, contexts: NegotiatedContext[], roles: RoleSelection[], maxPdu: number): void {
    for (const c of contexts) this.contexts.set(c.id, c);
    this.roles = roles;
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
    const onError = (e: Error) => {
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
        s.off("error", onError);
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
        s.off("error", onError);
        resolve(s);
      });
    }
    s.once("error", onError);
  });
  assoc = new Association(socket, { requestor: true, peer, tls: useTls, timeouts: opts.timeouts });
  for (const b of early.splice(0)) assoc.feed(b, false);
  const rq: AssociateRq = {
    type: PDU_ASSOCIATE_RQ,
    protocolVersion: 1,
    calledAet: opts.calledAet,
    callingAet: opts.callingAet,
    applicationContext: APPLICATION_CONTEXT_NAME,
    contexts: numberContexts(opts.contexts),
    user: {
      maxPduLength: opts.maxPdu ?? DEFAULT_MAX_PDU,
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
