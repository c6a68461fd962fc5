// Tools for the hostile-peer tests: `serve` as a child process (its RSS read from /proc), a raw
// DICOM client over a plain socket (PDUs built byte by byte, nothing of our SCU logic), small DICOM
// objects, a CA with client certificates, and a private tmpfs for disk-full runs.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import process from "node:process";
import { DataSet, textElement } from "../lib/dicom/dataset.ts";
import { encodeDataSet, encodeFile } from "../lib/dicom/writer.ts";
import { lookupKeyword } from "../lib/dicom/dictionary.ts";
import { encodeCommand, type DimseCommand, decodeCommand } from "../lib/net/dimse.ts";
import { encodeAssociate, PDU_ASSOCIATE_RQ } from "../lib/net/pdu.ts";
import { cliCommand, root } from "./_run.ts";

export const CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2";
export const RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5";
export const VERIFICATION = "1.2.840.10008.1.1";
export const STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1";
export const PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1";
export const PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3";
export const EXPLICIT_LE = "1.2.840.10008.1.2.1";
export const IMPLICIT_LE = "1.2.840.10008.1.2";

/** Resident set size of a process in bytes (Linux /proc), 0 once it is gone. */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples a process's RSS every 25 ms until stopped; `peak` is the highest seen. */
export function rssSampler(pid: number): { stop(): number; readonly peak: number } {
  let peak = rssOf(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 25);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssOf(pid));
      return peak;
    },
    get peak() {
      return peak;
    },
  };
}

export interface ServeChild {
  proc: ChildProcess;
  port: number;
  host: string;
  stderr(): string;
  stdout(): string;
  stop(): Promise<number | null>;
}

/**
 * Starts `rtexport serve` (under the runtime running the tests) with `args`, `--port 0`, and waits
 * for its "listening on" line; `wrap` prefixes the command (e.g. `unshare -m sh -c …`).
 */
export async function startServe(args: string[], opts: { wrap?: (cmd: string[]) => string[]; timeoutMs?: number } = {}): Promise<ServeChild> {
  const base = [...cliCommand(), "serve", "--port", "0", ...args];
  const [cmd, ...rest] = opts.wrap ? opts.wrap(base) : base;
  const proc = spawn(cmd, rest, { cwd: root, env: { ...process.env, NO_COLOR: "1", TCP_NODELAY: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  let out = "";
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const deadline = Date.now() + (opts.timeoutMs ?? 30000);
  let m: RegExpExecArray | null = null;
  while (!(m = /listening on (\S+):(\d+) as/.exec(err)) && Date.now() < deadline && proc.exitCode === null) {
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!m) {
    proc.kill("SIGKILL");
    throw new Error(`serve did not start (exit ${proc.exitCode}): ${err}`);
  }
  return {
    proc,
    host: m[1],
    port: Number(m[2]),
    stderr: () => err,
    stdout: () => out,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(proc.exitCode);
        const t = setTimeout(() => proc.kill("SIGKILL"), 10000);
        proc.once("exit", (code) => {
          clearTimeout(t);
          resolve(code);
        });
        process.kill(proc.pid!, "SIGTERM");
      }),
  };
}

/** Runs a command to its end; `timeoutMs` kills it. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 60000, maxBuffer: 64 << 20, env: { ...process.env, TCP_NODELAY: "1", ...opts.env } }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number | null) ?? null : 0;
      resolve({ code: typeof code === "number" ? code : null, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0 });
    });
  });
}

/** Runs rtexport (the checkout, this runtime). */
export function rtexport(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}) {
  const [cmd, ...rest] = cliCommand();
  return run(cmd, [...rest, ...args], opts);
}

// ---- DICOM objects ----

function put(ds: DataSet, keyword: string, value: string): void {
  const e = lookupKeyword(keyword)!;
  ds.set(textElement(e.tag, e.vr.split(/[ /]/)[0], value));
}

/** A small Part 10 object with the given attributes (explicit VR LE); `pixels` adds that many bytes of OW. */
export function dicomObject(attrs: Record<string, string>, opts: { pixels?: number } = {}): Uint8Array {
  const ds = dataSet(attrs, opts);
  return encodeFile(ds, { transferSyntaxUid: EXPLICIT_LE });
}

/** The data set of `dicomObject`. */
export function dataSet(attrs: Record<string, string>, opts: { pixels?: number } = {}): DataSet {
  const ds = new DataSet({ littleEndian: true, explicitVR: true });
  const all: Record<string, string> = { SOPClassUID: CT_IMAGE, Modality: "CT", ...attrs };
  for (const [k, v] of Object.entries(all)) put(ds, k, v);
  if (opts.pixels) {
    const value = new Uint8Array(opts.pixels + (opts.pixels % 2));
    for (let i = 0; i < value.length; i++) value[i] = (i * 31 + opts.pixels) & 0xff;
    ds.set({ tag: 0x7fe00010, vr: "OW", value, offset: 0, length: value.length });
  }
  return ds;
}

export function writeObject(dir: string, name: string, attrs: Record<string, string>, opts: { pixels?: number } = {}): string {
  const p = join(dir, name);
  writeFileSync(p, dicomObject(attrs, opts));
  return p;
}

// ---- a raw DICOM client ----

export interface RawPdu {
  type: number;
  body: Uint8Array;
}

/** A plain TCP client that sends bytes and reads whole PDUs (what a hostile peer is). */
export class RawClient {
  readonly socket: net.Socket;
  private buf = new Uint8Array(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (d: Uint8Array) => {
      const n = new Uint8Array(this.buf.length + d.length);
      n.set(this.buf);
      n.set(d, this.buf.length);
      this.buf = n;
      for (const w of this.waiters.splice(0)) w();
    });
    const end = () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    };
    socket.on("close", end);
    socket.on("error", end);
  }

  static connect(port: number, host = "127.0.0.1"): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port }, () => {
        s.off("error", reject);
        s.setNoDelay(true);
        resolve(new RawClient(s));
      });
      s.once("error", reject);
    });
  }

  /** Writes, waiting for the socket to drain; false once the connection is gone. */
  async send(b: Uint8Array): Promise<boolean> {
    if (this.closed || this.socket.destroyed) return false;
    if (this.socket.write(b)) return true;
    return await new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        this.socket.off("drain", onDrain);
        this.socket.off("close", onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      this.socket.once("drain", onDrain);
      this.socket.once("close", onClose);
    });
  }

  /** The next PDU, or undefined when the connection closed (or nothing came within `timeoutMs`). */
  async readPdu(timeoutMs = 5000): Promise<RawPdu | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 6) {
        const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(2);
        if (this.buf.length >= 6 + len) {
          const pdu = { type: this.buf[0], body: this.buf.slice(6, 6 + len) };
          this.buf = this.buf.slice(6 + len);
          return pdu;
        }
      }
      if (this.closed || Date.now() > deadline) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves true when the peer closed the connection within `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Sends an A-ASSOCIATE-RQ; resolves with the answer PDU (AC type 2, RJ type 3, ABORT 7). */
  async associate(o: AssociateOptions): Promise<RawPdu | undefined> {
    await this.send(associateRq(o));
    return await this.readPdu(o.timeoutMs ?? 5000);
  }

  /** Sends a command (one PDV, last) and optionally a data set (one PDV, last) on a context. */
  async message(contextId: number, cmd: DimseCommand, data?: Uint8Array): Promise<void> {
    cmd.hasDataSet = data !== undefined;
    await this.send(pdv(contextId, true, true, encodeCommand(cmd)));
    if (data) await this.send(pdv(contextId, false, true, data));
  }

  /** Reads the next DIMSE command (a P-DATA-TF with one whole command PDV), or undefined. */
  async readCommand(timeoutMs = 5000): Promise<DimseCommand | undefined> {
    const deadline = Date.now() + timeoutMs;
    let parts: Uint8Array[] = [];
    for (;;) {
      const p = await this.readPdu(Math.max(1, deadline - Date.now()));
      if (!p) return undefined;
      if (p.type !== 4) return undefined;
      let o = 0;
      while (o + 6 <= p.body.length) {
        const n = new DataView(p.body.buffer, p.body.byteOffset).getUint32(o);
        const ctl = p.body[o + 5];
        const data = p.body.subarray(o + 6, o + 4 + n);
        if (ctl & 1) {
          parts.push(data);
          if (ctl & 2) {
            const all = new Uint8Array(parts.reduce((s, x) => s + x.length, 0));
            let k = 0;
            for (const x of parts) all.set(x, (k += x.length) - x.length);
            parts = [];
            return decodeCommand(all);
          }
        }
        o += 4 + n;
      }
    }
  }
}

export interface AssociateOptions {
  calling: string;
  called: string;
  contexts: { id?: number; abstractSyntax: string; transferSyntaxes?: string[] }[];
  maxPdu?: number;
  applicationContext?: string;
  timeoutMs?: number;
}

export function associateRq(o: AssociateOptions): Uint8Array {
  return encodeAssociate({
    type: PDU_ASSOCIATE_RQ,
    protocolVersion: 1,
    calledAet: o.called,
    callingAet: o.calling,
    applicationContext: o.applicationContext ?? "1.2.840.10008.3.1.1.1",
    contexts: o.contexts.map((c, i) => ({ id: c.id ?? i * 2 + 1, abstractSyntax: c.abstractSyntax, transferSyntaxes: c.transferSyntaxes ?? [EXPLICIT_LE, IMPLICIT_LE] })),
    user: { maxPduLength: o.maxPdu ?? 16384, implementationClassUid: "1.2.3.4.5", roles: [], other: [] },
  });
}

/** A P-DATA-TF PDU with one PDV. */
export function pdv(contextId: number, command: boolean, last: boolean, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  out[0] = 4;
  dv.setUint32(2, data.length + 6);
  dv.setUint32(6, data.length + 2);
  out[10] = contextId;
  out[11] = (command ? 1 : 0) | (last ? 2 : 0);
  out.set(data, 12);
  return out;
}

/** Results of the contexts in an A-ASSOCIATE-AC body, by id. */
export function acResults(body: Uint8Array): Map<number, number> {
  const out = new Map<number, number>();
  let p = 68;
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  while (p + 4 <= body.length) {
    const type = body[p];
    const len = dv.getUint16(p + 2);
    if (type === 0x21) out.set(body[p + 4], body[p + 6]);
    p += 4 + len;
  }
  return out;
}

/** An identifier (explicit VR LE). */
export function identifierBytes(attrs: Record<string, string>): Uint8Array {
  const ds = new DataSet({ littleEndian: true, explicitVR: true });
  for (const [k, v] of Object.entries(attrs)) put(ds, k, v);
  return encodeDataSet(ds, EXPLICIT_LE);
}

// ---- TLS: a CA, a server certificate and client certificates it signed ----

function openssl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile("openssl", args, { timeout: 20000 }, (e, _o, err) => (e ? reject(new Error(`openssl ${args[0]}: ${err}`)) : resolve())));
}

export interface Pki {
  caPath: string;
  serverCert: string;
  serverKey: string;
  client(cn: string): Promise<{ cert: string; key: string }>;
}

/** A throwaway CA in `dir`, a server certificate for 127.0.0.1 signed by it, and client certificates on demand. */
export async function makePki(dir: string): Promise<Pki> {
  const caKey = join(dir, "ca.key"), caPath = join(dir, "ca.pem");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(["req", "-x509", ...ec, "-keyout", caKey, "-out", caPath, "-days", "2", "-subj", "/CN=rtexport test CA"]);
  // End-entity certificates made from a request and signed with explicit extensions: rustls
  // (Deno's TLS) refuses a leaf that says CA:TRUE, which `req -x509` would put in.
  const issue = async (name: string, cn: string, ext: string) => {
    const key = join(dir, `${name}.key`), csr = join(dir, `${name}.csr`), cert = join(dir, `${name}.pem`), extFile = join(dir, `${name}.ext`);
    writeFileSync(extFile, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n${ext}\n`);
    await openssl(["req", "-new", ...ec, "-keyout", key, "-out", csr, "-subj", `/CN=${cn}`]);
    await openssl(["x509", "-req", "-in", csr, "-CA", caPath, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extFile]);
    return { cert, key };
  };
  // The server's certificate is also its client certificate when it opens C-MOVE sub-associations.
  const server = await issue("server", "localhost", "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost");
  return {
    caPath, serverCert: server.cert, serverKey: server.key,
    client: (cn) => issue(`client-${cn}`, cn, "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost"),
  };
}

// ---- a private tmpfs ----

/**
 * Wraps a command so that it runs in a mount namespace of its own where `dir` is a tmpfs of
 * `size` (e.g. "200k"): disk full without touching the machine's mounts (root: `unshare -m`;
 * others: a user namespace too).
 */
export function inSmallTmpfs(dir: string, size: string): (cmd: string[]) => string[] {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const userns = process.getuid?.() === 0 ? [] : ["-r"];
  return (cmd) => ["unshare", ...userns, "-m", "sh", "-c", `mount -t tmpfs -o size=${size} tmpfs ${q(dir)} && exec ${cmd.map(q).join(" ")}`];
}

/** A non-loopback IPv4 address of this machine, if it has one. */
export async function externalAddress(): Promise<string | undefined> {
  const os = await import("node:os");
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

/** True when a TCP connection to host:port is accepted. */
export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.setTimeout(3000, () => {
      s.destroy();
      resolve(false);
    });
  });
}
