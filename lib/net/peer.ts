/**
 * From resolved peer options (as lib/cli's `PeerOptions` gives them: timeouts in seconds, TLS
 * file paths) to `connect()` options.
 */
import { readFileSync } from "node:fs";
import type { ConnectOptions, Timeouts, TlsOptions } from "./association.ts";
import type { RoleSelection } from "./pdu.ts";

/** The peer fields a network command resolves (structurally lib/cli's PeerOptions). */
export interface PeerSettings {
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

function readPem(path: string, what: string): string {
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

/** Builds `connect()` options for a peer. */
export function connectOptions(
  p: PeerSettings,
  contexts: ConnectOptions["contexts"],
  roles?: RoleSelection[],
): ConnectOptions {
  const timeouts: Timeouts = {};
  if (p.connectTimeout !== undefined) timeouts.connect = p.connectTimeout * 1000;
  if (p.assocTimeout !== undefined) timeouts.association = p.assocTimeout * 1000;
  if (p.dimseTimeout !== undefined) timeouts.dimse = p.dimseTimeout * 1000;
  const o: ConnectOptions = { host: p.host, port: p.port, callingAet: p.callingAet, calledAet: p.calledAet, contexts, timeouts };
  if (p.maxPdu !== undefined) o.maxPdu = p.maxPdu;
  if (roles) o.roles = roles;
  const tls = tlsFromFiles(p);
  if (tls) o.tls = tls;
  return o;
}
