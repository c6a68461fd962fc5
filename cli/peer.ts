/**
 * The DICOM peer option group commands opt into (`echo`, `push`, `retrieve`, `list-patients`
 * from a Q/R peer): DCMTK/DicomTools vocabulary, defaults shown in `--help`, named peers from
 * `rtexport.json`.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import type { PeerConfig, RtexportConfig } from "./config.ts";
import { UsageError } from "./errors.ts";
import type { PeerSettings } from "../lib/net/peer.ts";

/** A peer as the command line resolves it: every field set (defaults filled in). */
export type PeerOptions = PeerSettings & Required<Pick<PeerSettings, "connectTimeout" | "assocTimeout" | "dimseTimeout" | "maxPdu" | "tls">>;

/** Built-in peer defaults (shown in `--help`). */
export const PEER_DEFAULTS = {
  port: 104,
  callingAet: "RTEXPORT",
  calledAet: "ANY-SCP",
  connectTimeout: 10,
  assocTimeout: 30,
  dimseTimeout: 60,
  maxPdu: 16384,
} as const;

/** Parse a TCP port 1–65535 (commander argument parser). */
export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw new InvalidArgumentError("expected a port number 1-65535.");
  }
  return n;
}

/** Parse a positive number of seconds (commander argument parser). */
export function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError("expected a positive number of seconds.");
  }
  return n;
}

/** Parse a positive integer (commander argument parser). */
export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError("expected a positive integer.");
  }
  return n;
}

/** Parse a maximum PDU size 4096–131072 bytes, as DCMTK accepts (commander argument parser). */
export function parseMaxPdu(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 4096 || n > 131072) {
    throw new InvalidArgumentError("expected a PDU size 4096-131072.");
  }
  return n;
}

/** Parse an application entity title: 1–16 characters, no backslash or control characters. */
export function parseAeTitle(value: string): string {
  const trimmed = value.trim();
  // deno-lint-ignore no-control-regex
  if (trimmed.length === 0 || trimmed.length > 16 || /[\\\x00-\x1f\x7f]/.test(trimmed)) {
    throw new InvalidArgumentError("expected an AE title of 1-16 characters without backslash.");
  }
  return trimmed;
}

const GROUP = "Peer options:";

/** Add the peer options (`--peer --host --port --aet --aec`, timeouts, TLS) to a command. */
export function addPeerOptions(cmd: Command, defaults: Partial<typeof PEER_DEFAULTS> = {}): void {
  const d = { ...PEER_DEFAULTS, ...defaults };
  const options = [
    new Option("--peer <name>", "named peer from rtexport.json"),
    new Option("--host <host>", "peer host name or address"),
    new Option("--port <port>", "peer TCP port").argParser(parsePort).default(d.port),
    new Option("--aet, --calling-aet <ae>", "calling AE title (ours)").argParser(parseAeTitle).default(d.callingAet),
    new Option("--aec, --called-aet <ae>", "called AE title (the peer's)").argParser(parseAeTitle).default(d.calledAet),
    new Option("--connect-timeout <s>", "TCP connect timeout, seconds").argParser(parseSeconds).default(d.connectTimeout),
    new Option("--assoc-timeout <s>", "association (ACSE) timeout, seconds").argParser(parseSeconds).default(
      d.assocTimeout,
    ),
    new Option("--dimse-timeout <s>", "DIMSE response timeout, seconds").argParser(parseSeconds).default(
      d.dimseTimeout,
    ),
    new Option("--max-pdu <bytes>", "maximum PDU length we receive").argParser(parseMaxPdu).default(d.maxPdu),
    new Option("--tls", "use TLS"),
    new Option("--cert <file>", "TLS client certificate (PEM)"),
    new Option("--key <file>", "TLS private key (PEM)"),
    new Option("--ca <file>", "TLS CA certificate(s) to trust (PEM)"),
  ];
  for (const option of options) cmd.addOption(option.helpGroup(GROUP));
}

const PEER_FIELDS = [
  "host",
  "port",
  "callingAet",
  "calledAet",
  "connectTimeout",
  "assocTimeout",
  "dimseTimeout",
  "maxPdu",
  "tls",
  "cert",
  "key",
  "ca",
] as const;

const PEER_PARSERS: Partial<Record<(typeof PEER_FIELDS)[number], (v: string) => unknown>> = {
  port: parsePort,
  callingAet: parseAeTitle,
  calledAet: parseAeTitle,
  connectTimeout: parseSeconds,
  assocTimeout: parseSeconds,
  dimseTimeout: parseSeconds,
  maxPdu: parseMaxPdu,
};

/**
 * Resolve the peer from option values: a flag or `RTEXPORT_*` variable wins, then the named
 * `--peer` from the config file, then config defaults, then built-in defaults.
 * `source(key)` is commander's option value source (`cli`, `env`, `config`, `default`).
 */
export function resolvePeer(
  values: Record<string, unknown>,
  source: (key: string) => string | undefined,
  config: RtexportConfig,
  options: { requireHost?: boolean } = {},
): PeerOptions {
  const name = typeof values.peer === "string" ? values.peer : undefined;
  let named: PeerConfig = {};
  if (name !== undefined) {
    const found = config.peers[name];
    if (!found) {
      const known = Object.keys(config.peers);
      const where = config.path ? `"${config.path}"` : "rtexport.json (not found)";
      throw new UsageError(
        `Unknown peer "${name}": ${where} defines ${known.length ? known.map((k) => `"${k}"`).join(", ") : "no peers"}`,
      );
    }
    named = found;
  }
  const result: Record<string, unknown> = { name };
  for (const field of PEER_FIELDS) {
    const from = source(field);
    const explicit = from === "cli" || from === "env";
    if (!explicit && named[field] !== undefined) {
      const parser = PEER_PARSERS[field];
      try {
        result[field] = parser ? parser(String(named[field])) : named[field];
      } catch (error) {
        throw new UsageError(`Invalid ${field} "${named[field]}" for peer "${name}": ${(error as Error).message}`);
      }
    } else {
      result[field] = values[field];
    }
  }
  result.tls = result.tls === true;
  if (options.requireHost !== false && (typeof result.host !== "string" || result.host === "")) {
    throw new UsageError("No peer given: use --host HOST [--port PORT] or --peer NAME");
  }
  return result as unknown as PeerOptions;
}
