/**
 * Real DICOM peers for tests and benchmarks, each on free loopback ports with its own temporary
 * directory: Orthanc (with its REST API), DCMTK `storescp` and `dcmqrscp`. Every peer has
 * `stop()` (call it in `after()`), and `kill()` to simulate a crash. DCMTK processes run with
 * TCP_NODELAY=1 (without it every object waits ~45 ms on Nagle + delayed ACK).
 *
 * @example
 * ```ts
 * const orthanc = await startOrthanc();
 * after(() => orthanc.stop());
 * // C-STORE to 127.0.0.1:orthanc.port, called AE orthanc.aeTitle; then:
 * const ids: string[] = await orthanc.rest("/instances");
 * ```
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** Environment for DCMTK tools: TCP_NODELAY=1 on top of the current environment. */
export function dcmtkEnv(): Record<string, string> {
  return { ...process.env as Record<string, string>, TCP_NODELAY: "1" };
}

/** A free TCP port on loopback (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on host:port (or rejects after `timeoutMs`). */
export async function waitForPort(port: number, host = "127.0.0.1", timeoutMs = 15000, proc?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`Peer process exited (code ${proc.exitCode}) before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`Nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A running peer. */
export interface Peer {
  host: string;
  port: number;
  aeTitle: string;
  /** Temporary directory of the peer (removed by `stop`). */
  dir: string;
  process: ChildProcess;
  /** Terminates the peer and removes its directory. */
  stop(): Promise<void>;
  /** SIGKILLs the peer now (a crash in the middle of a transfer); `stop()` still cleans up. */
  kill(): void;
  /** Everything the process wrote to stderr/stdout so far (for failure messages). */
  output(): string;
}

function launch(cmd: string, args: string[], dir: string, env: Record<string, string>): { proc: ChildProcess; output: () => string } {
  const proc = spawn(cmd, args, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (b: Uint8Array) => {
    out += new TextDecoder().decode(b);
    if (out.length > 200000) out = out.slice(-100000);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  proc.on("error", (e) => {
    out += `\n[spawn error] ${e.message}`;
  });
  return { proc, output: () => out };
}

function stopper(proc: ChildProcess, dir: string, keepDir = false): () => Promise<void> {
  let stopped: Promise<void> | undefined;
  return () => {
    stopped ??= (async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
}

export interface OrthancPeer extends Peer {
  httpPort: number;
  /** Starts Orthanc again (same ports, configuration and storage) after `kill()`; resolves once it answers. */
  restart(): Promise<void>;
  /** GET (or with `body`, POST) on Orthanc's REST API; resolves with the parsed JSON. */
  // deno-lint-ignore no-explicit-any
  rest(path: string, body?: unknown): Promise<any>;
  /** Raw bytes of GET `path` (e.g. `/instances/{id}/file`). */
  restBytes(path: string): Promise<Uint8Array>;
}

/** A C-MOVE destination a peer should know: name → AE title, host, port. */
export interface KnownAe {
  aeTitle: string;
  host: string;
  port: number;
}

/**
 * Starts the Debian Orthanc on free loopback DICOM and HTTP ports with temporary storage, REST
 * without authentication, every storage class accepted (unknown ones too). `modalities` become
 * DicomModalities (for C-MOVE destinations), keyed by AE title.
 */
export async function startOrthanc(opts: { aeTitle?: string; modalities?: KnownAe[]; verbose?: boolean } = {}): Promise<OrthancPeer> {
  const dir = mkdtempSync(join(tmpdir(), "rtexport-orthanc-"));
  const port = await freePort();
  const httpPort = await freePort();
  const aeTitle = opts.aeTitle ?? "ORTHANC";
  const modalities: Record<string, [string, string, number]> = {};
  for (const m of opts.modalities ?? []) modalities[m.aeTitle] = [m.aeTitle, m.host, m.port];
  const config = {
    Name: "rtexport-test",
    StorageDirectory: join(dir, "storage"),
    IndexDirectory: join(dir, "index"),
    StorageCompression: false,
    HttpServerEnabled: true,
    HttpPort: httpPort,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    SslEnabled: false,
    DicomServerEnabled: true,
    DicomAet: aeTitle,
    DicomPort: port,
    DicomCheckCalledAet: false,
    DicomModalities: modalities,
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomAlwaysAllowFind: true,
    DicomAlwaysAllowGet: true,
    DicomAlwaysAllowMove: true,
    UnknownSopClassAccepted: true,
    DicomScpTimeout: 30,
    DicomAssociationCloseDelay: 0,
    SaveJobs: false,
    Plugins: [],
    ConcurrentJobs: 2,
    StableAge: 1,
    DeidentifyLogs: true,
  };
  const configPath = join(dir, "orthanc.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const base = `http://127.0.0.1:${httpPort}`;
  const orthancArgs = [...(opts.verbose ? ["--verbose"] : []), configPath];
  let current = launch("/usr/sbin/Orthanc", orthancArgs, dir, { ...process.env as Record<string, string> });
  let stop = stopper(current.proc, dir);
  const up = async () => {
    const { proc, output } = current;
    const deadline = Date.now() + 30000;
    for (;;) {
      if (proc.exitCode !== null) {
        await stop();
        throw new Error(`Orthanc exited (code ${proc.exitCode}): ${output().slice(-2000)}`);
      }
      try {
        const r = await fetch(`${base}/system`);
        if (r.ok) {
          await r.json();
          break;
        }
        await r.body?.cancel();
      } catch { /* not up yet */ }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`Orthanc did not answer on ${base}/system within 30 s: ${output().slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitForPort(port, "127.0.0.1", 15000, proc);
  };
  await up();
  const peer: OrthancPeer = {
    host: "127.0.0.1",
    port,
    httpPort,
    aeTitle,
    dir,
    process: current.proc,
    stop: () => stop(),
    kill: () => current.proc.kill("SIGKILL"),
    output: () => current.output(),
    async restart() {
      if (current.proc.exitCode === null && current.proc.signalCode === null) {
        await new Promise<void>((resolve) => current.proc.once("exit", () => resolve()));
      }
      current = launch("/usr/sbin/Orthanc", orthancArgs, dir, { ...process.env as Record<string, string> });
      stop = stopper(current.proc, dir);
      peer.process = current.proc;
      await up();
    },
    async rest(path: string, body?: unknown) {
      const r = await fetch(base + path, body === undefined ? {} : { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });
      const text = await r.text();
      if (!r.ok) throw new Error(`Orthanc ${path}: HTTP ${r.status} ${text.slice(0, 200)}`);
      return text ? JSON.parse(text) : undefined;
    },
    async restBytes(path: string) {
      const r = await fetch(base + path);
      if (!r.ok) throw new Error(`Orthanc ${path}: HTTP ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    },
  };
  return peer;
}

export interface StorescpPeer extends Peer {
  /** Where received files go (`<Modality>.<SOPInstanceUID>` names; nothing with `ignore`). */
  outDir: string;
}

/**
 * Starts DCMTK `storescp` on a free loopback port. Accepts all storage classes, uncompressed
 * syntaxes by default (`acceptAll: true` adds the compressed ones, `+xa`); `ignore: true` receives
 * without writing (benchmarks).
 */
export async function startStorescp(opts: { aeTitle?: string; ignore?: boolean; acceptAll?: boolean; args?: string[]; port?: number; outDir?: string } = {}): Promise<StorescpPeer> {
  const dir = mkdtempSync(join(tmpdir(), "rtexport-storescp-"));
  const outDir = opts.outDir ?? join(dir, "in");
  mkdirSync(outDir, { recursive: true });
  const port = opts.port ?? await freePort();
  const aeTitle = opts.aeTitle ?? "STORESCP";
  const args = ["--aetitle", aeTitle, "--output-directory", outDir];
  if (opts.ignore) args.push("--ignore");
  if (opts.acceptAll) args.push("+xa");
  args.push(...(opts.args ?? []), String(port));
  const { proc, output } = launch("storescp", args, dir, dcmtkEnv());
  const stop = stopper(proc, dir);
  try {
    await waitForPort(port, "127.0.0.1", 15000, proc);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}: ${output()}`);
  }
  return { host: "127.0.0.1", port, aeTitle, dir, outDir, process: proc, stop, kill: () => proc.kill("SIGKILL"), output };
}

export interface DcmqrscpPeer extends Peer {
  /** The storage area of `aeTitle` (where C-STOREd files land). */
  storageDir: string;
  configPath: string;
}

/**
 * Starts DCMTK `dcmqrscp` (Q/R SCP with C-FIND, C-MOVE, C-GET and storage) with a temporary
 * config: one AE (`aeTitle`, default DCMQRSCP) with read/write storage, any calling AE allowed,
 * and `moveDestinations` in its host table. Fill it with `storescu` (see `runDcmtk`).
 * `forking`: one process per association, so several can be open at once (and DCMTK 3.6.7's
 * `--single-process` mode crashes when an association that carried a C-MOVE ends).
 */
export async function startDcmqrscp(opts: { aeTitle?: string; moveDestinations?: KnownAe[]; forking?: boolean } = {}): Promise<DcmqrscpPeer> {
  const dir = mkdtempSync(join(tmpdir(), "rtexport-dcmqrscp-"));
  const storageDir = join(dir, "db");
  mkdirSync(storageDir);
  const port = await freePort();
  const aeTitle = opts.aeTitle ?? "DCMQRSCP";
  const hosts = (opts.moveDestinations ?? []).map((d, i) => `dest${i} = (${d.aeTitle}, ${d.host}, ${d.port})`);
  const config = [
    `NetworkTCPPort = ${port}`,
    `MaxPDUSize = 16384`,
    `MaxAssociations = 16`,
    `HostTable BEGIN`,
    ...hosts,
    `HostTable END`,
    `VendorTable BEGIN`,
    `VendorTable END`,
    `AETable BEGIN`,
    `${aeTitle} ${storageDir} RW (1000, 4096mb) ANY`,
    `AETable END`,
    "",
  ].join("\n");
  const configPath = join(dir, "dcmqrscp.cfg");
  writeFileSync(configPath, config);
  const { proc, output } = launch("dcmqrscp", [...(opts.forking ? [] : ["--single-process"]), "--config", configPath, "--disable-host-lookup"], dir, dcmtkEnv());
  const stop = stopper(proc, dir);
  try {
    await waitForPort(port, "127.0.0.1", 15000, proc);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}: ${output()}`);
  }
  return { host: "127.0.0.1", port, aeTitle, dir, storageDir, configPath, process: proc, stop, kill: () => proc.kill("SIGKILL"), output };
}

/** Runs a DCMTK tool (TCP_NODELAY=1) with a timeout; resolves with its exit code and output. Never rejects on exit status. */
export function runDcmtk(tool: string, args: string[], timeoutMs = 60000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tool, args, { env: dcmtkEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Runs a command's `main(argv, io)` in this process with captured stdout/stderr and optional stdin text. */
export async function runMainCaptured(
  main: (argv: string[], io?: Record<string, unknown>) => Promise<number>,
  argv: string[],
  opts: { stdin?: string; env?: Record<string, string>; cwd?: string } = {},
  // deno-lint-ignore no-explicit-any
): Promise<{ code: number; stdout: string; stderr: string; records: Record<string, any>[] }> {
  const { PassThrough, Readable } = await import("node:stream");
  const out = new PassThrough();
  let stdout = "";
  out.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  let stderr = "";
  const stdin = Object.assign(Readable.from(opts.stdin === undefined ? [] : [opts.stdin]), { isTTY: opts.stdin === undefined });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("RTEXPORT_")) env[k] = v;
  const code = await main(argv, {
    stdin,
    stdout: Object.assign(out, { isTTY: false }),
    stderr: { write: (t: string) => (stderr += t) },
    env: { ...env, ...opts.env },
    cwd: opts.cwd ?? process.cwd(),
  });
  await new Promise((r) => setTimeout(r, 0));
  const records = stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  return { code, stdout, stderr, records };
}

/** A self-signed certificate for 127.0.0.1/localhost (EC P-256), made with openssl in `dir`. */
export async function makeTlsCert(dir: string): Promise<{ cert: string; key: string; certPath: string; keyPath: string }> {
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  await new Promise<void>((resolve, reject) => {
    execFile("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyPath,
      "-out", certPath, "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ], { timeout: 20000 }, (err) => (err ? reject(err) : resolve()));
  });
  const { readFileSync } = await import("node:fs");
  return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8"), certPath, keyPath };
}

export interface RsyslogPeer extends Peer {
  /** The file rsyslog writes each message to: one line per message, `PRI|APP-NAME|MSGID|MSG`. */
  logFile: string;
  /** The lines written so far. */
  lines(): string[];
}

/**
 * Starts Debian's rsyslogd in the foreground as a TCP syslog collector (imtcp, octet-counted
 * framing as RFC 6587 describes) on a free loopback port, writing every message to one file.
 */
export async function startRsyslog(): Promise<RsyslogPeer> {
  const dir = mkdtempSync(join(tmpdir(), "rtexport-rsyslog-"));
  const port = await freePort();
  const logFile = join(dir, "audit.log");
  const config = [
    `global(workDirectory="${dir}" maxMessageSize="64k")`,
    `module(load="imtcp")`,
    `input(type="imtcp" port="${port}" address="127.0.0.1")`,
    `template(name="audit" type="list") {`,
    `  property(name="pri") constant(value="|") property(name="app-name") constant(value="|") property(name="msgid") constant(value="|")`,
    `  property(name="msg" droplastlf="on") constant(value="\\n")`,
    `}`,
    `*.* action(type="omfile" file="${logFile}" template="audit")`,
    "",
  ].join("\n");
  const configPath = join(dir, "rsyslog.conf");
  writeFileSync(configPath, config);
  const { proc, output } = launch("/usr/sbin/rsyslogd", ["-n", "-f", configPath, "-i", join(dir, "rsyslogd.pid")], dir, { ...process.env as Record<string, string> });
  const stop = stopper(proc, dir);
  try {
    await waitForPort(port, "127.0.0.1", 15000, proc);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}: ${output()}`);
  }
  const { existsSync, readFileSync } = await import("node:fs");
  return {
    host: "127.0.0.1", port, aeTitle: "", dir, logFile, process: proc, stop, kill: () => proc.kill("SIGKILL"), output,
    lines: () => existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").filter((l) => l !== "") : [],
  };
}
