/**
 * The one peer settings type (what `--host/--port/--aet/--aec`, timeouts and TLS flags, or a named
 * peer in rtexport.json, resolve to), and the one place that turns it into `connect()` options:
 * PEM files are read and seconds become milliseconds here and nowhere else.
 */
import { readFileSync } from "node:fs";
import type { ConnectOptions, Timeouts, TlsOptions } from "./association.ts";
import type { RoleSelection } from "./pdu.ts";

/** A DICOM peer: where to connect and how. Timeouts in seconds; TLS material as PEM file paths. */
export interface PeerSettings {
  /** Name of the peer in `rtexport.json`, when it was chosen by name. */
  name?: string;
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  connectTimeout?: number;
  assocTimeout?: number;
  dimseTimeout?: number;
  maxPdu?: number;
  tls?: boolean;
  cert?: string;
  key?: string;
  ca?: string;
}

/** "AE@host:port", how messages and records name a peer. */
export function peerLabel(p: { host: string; port: number; calledAet: string }): string {
  return `${p.calledAet}@${p.host}:${p.port}`;
}

/** Reads a PEM file; throws one line naming the file and what it was for. */
export function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`Cannot read TLS ${what} "${path}": ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
}

/** TLS options from file paths (throws a one-line error naming an unreadable file). */
export function tlsFromFiles(p: { tls?: boolean; cert?: string; key?: string; ca?: string }): TlsOptions | undefined {
  if (!p.tls && !p.cert && !p.ca) return undefined;
  const t: TlsOptions = {};
  if (p.ca) t.ca = readPem(p.ca, "CA certificate");
  if (p.cert) t.cert = readPem(p.cert, "certificate");
  if (p.key) t.key = readPem(p.key, "key");
  return t;
}

/** The peer's timeouts (seconds) as `connect()` wants them (milliseconds); unset ones stay unset. */
export function peerTimeouts(p: Pick<PeerSettings, "connectTimeout" | "assocTimeout" | "dimseTimeout">): Timeouts {
  const timeouts: Timeouts = {};
  if (p.connectTimeout !== undefined) timeouts.connect = p.connectTimeout * 1000;
  if (p.assocTimeout !== undefined) timeouts.association = p.assocTimeout * 1000;
  if (p.dimseTimeout !== undefined) timeouts.dimse = p.dimseTimeout * 1000;
  return timeouts;
}

/** Builds `connect()` options for a peer. */
export function connectOptions(
  p: PeerSettings,
  contexts: ConnectOptions["contexts"],
  roles?: RoleSelection[],
): ConnectOptions {
  const o: ConnectOptions = {
    host: p.host,
    port: p.port,
    callingAet: p.callingAet,
    calledAet: p.calledAet,
    contexts,
    timeouts: peerTimeouts(p),
  };
  if (p.maxPdu !== undefined) o.maxPdu = p.maxPdu;
  if (roles) o.roles = roles;
  const tls = tlsFromFiles(p);
  if (tls) o.tls = tls;
  return o;
}
