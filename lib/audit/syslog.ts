/**
 * Audit messages to an audit record repository over syslog (IHE ATNA, ITI-20): RFC 5424
 * messages (facility 10, severity 5 for success and 4 for failures, MSGID `IHE+RFC-3881`),
 * framed by octet counting over TCP (RFC 6587) or TLS (RFC 5425).
 *
 * URLs: `syslog://host[:514]` (TCP), `syslog+tls://host[:6514]?ca=ca.pem&cert=c.pem&key=k.pem` (TLS).
 */
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { hostname } from "node:os";
import process from "node:process";
import type * as tlsTypes from "node:tls";
import { readPem } from "../net/peer.ts";
import { atnaMessage } from "./atna.ts";
import type { AuditEvent, AuditSink } from "./event.ts";

/** Where audit messages go. */
export interface SyslogTarget {
  host: string;
  port: number;
  tls: boolean;
  /** PEM file paths for TLS. */
  ca?: string;
  cert?: string;
  key?: string;
  /** The URL as given, without its query (for messages). */
  display: string;
}

/** Parses `syslog://host:port` or `syslog+tls://host:port?ca=…`; throws one line naming the URL. */
export function parseSyslogUrl(url: string): SyslogTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`Invalid audit URL "${url}": expected syslog://host:port or syslog+tls://host:port`);
  }
  const tls = u.protocol === "syslog+tls:" || u.protocol === "syslogs:";
  if (!tls && u.protocol !== "syslog:" && u.protocol !== "syslog+tcp:") {
    throw new Error(`Invalid audit URL "${url}": the scheme must be syslog: (TCP) or syslog+tls: (TLS)`);
  }
  if (!u.hostname) throw new Error(`Invalid audit URL "${url}": no host`);
  const port = u.port ? Number(u.port) : tls ? 6514 : 514;
  const t: SyslogTarget = { host: u.hostname.replace(/^\[|\]$/g, ""), port, tls, display: `${u.protocol}//${u.host}` };
  for (const k of ["ca", "cert", "key"] as const) {
    const v = u.searchParams.get(k);
    if (v) t[k] = v;
  }
  return t;
}

/** One RFC 5424 message (without framing) for an audit event. */
export function syslogMessage(e: AuditEvent, host: string, appName = "rtexport"): string {
  const severity = e.outcome === "success" ? 5 : 4;
  const pri = 10 * 8 + severity;
  const field = (s: string) => s.replace(/[^\x21-\x7e]/g, "_").slice(0, 255) || "-";
  // MSG-UTF8: a byte order mark, then the XML (RFC 5424 §6.4).
  return `<${pri}>1 ${e.time} ${field(host)} ${field(appName)} ${process.pid} IHE+RFC-3881 - \ufeff${atnaMessage(e)}`;
}

/** Octet-counting frame: `LENGTH SP MESSAGE`, LENGTH in bytes (RFC 6587 §3.4.1, RFC 5425 §4.3). */
export function frame(message: string): Uint8Array {
  const body = Buffer.from(message, "utf8");
  return Buffer.concat([Buffer.from(`${body.length} `, "ascii"), body]);
}

/**
 * Sends audit events to a syslog collector: one connection per sink, opened at the first write,
 * each event one framed message. Errors name the URL.
 *
 * @example
 * ```ts
 * const sink = new SyslogSink("syslog+tls://arr.hospital:6514?ca=/etc/arr-ca.pem");
 * await sink.write(events);
 * await sink.close();
 * ```
 */
export class SyslogSink implements AuditSink {
  readonly target: SyslogTarget;
  readonly #host: string;
  #socket: net.Socket | undefined;
  readonly #timeoutMs: number;

  constructor(target: SyslogTarget | string, opts: { hostname?: string; timeoutMs?: number } = {}) {
    this.target = typeof target === "string" ? parseSyslogUrl(target) : target;
    this.#host = opts.hostname ?? hostname();
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async #connect(): Promise<net.Socket> {
    if (this.#socket && !this.#socket.destroyed) return this.#socket;
    const t = this.target;
    const what = `Cannot send audit messages to ${t.display}`;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      let s: net.Socket;
      const timer = setTimeout(() => {
        s?.destroy();
        reject(new Error(`${what}: no connection within ${this.#timeoutMs / 1000} s`));
      }, this.#timeoutMs);
      const fail = (e: Error & { code?: string }) => {
        clearTimeout(timer);
        reject(new Error(`${what}: ${e.code === "ECONNREFUSED" ? "connection refused" : e.message}`));
      };
      const ok = () => {
        clearTimeout(timer);
        s.off("error", fail);
        resolve(s);
      };
      if (t.tls) {
        import("node:tls").then((tls) => {
          const o: tlsTypes.ConnectionOptions = { host: t.host, port: t.port, servername: net.isIP(t.host) ? undefined : t.host };
          try {
            if (t.ca) o.ca = readPem(t.ca, "CA certificate");
            if (t.cert) o.cert = readPem(t.cert, "certificate");
            if (t.key) o.key = readPem(t.key, "key");
          } catch (e) {
            return fail(e as Error);
          }
          s = tls.connect(o, ok);
          s.once("error", fail);
        }, fail);
      } else {
        s = net.connect({ host: t.host, port: t.port }, ok);
        s.once("error", fail);
      }
    });
    socket.on("error", () => {}); // reported by the write that meets it
    this.#socket = socket;
    return socket;
  }

  async write(events: AuditEvent[]): Promise<void> {
    const socket = await this.#connect();
    for (const e of events) {
      await new Promise<void>((resolve, reject) => {
        socket.write(frame(syslogMessage(e, this.#host)), (err) => (err ? reject(new Error(`Cannot send audit messages to ${this.target.display}: ${err.message}`)) : resolve()));
      });
    }
  }

  async close(): Promise<void> {
    const s = this.#socket;
    this.#socket = undefined;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        s.destroy();
        resolve();
      }, 2000);
      s.once("close", () => {
        clearTimeout(t);
        resolve();
      });
      s.end();
    });
  }
}
