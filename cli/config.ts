/**
 * Configuration: `rtexport.json` in the working directory (or the file named by `--config` /
 * `RTEXPORT_CONFIG`), and `RTEXPORT_<FLAG>` environment variables. Precedence: flags > environment
 * > config file (command section, then `defaults`) > built-in defaults.
 *
 * ```json
 * {
 *   "peers": {
 *     "aria": { "host": "10.1.2.3", "port": 57347, "calledAet": "VMSDBD", "callingAet": "RTEXPORT" },
 *     "pacs": { "host": "pacs.local", "port": 11112, "calledAet": "PACS", "tls": true, "ca": "ca.pem" }
 *   },
 *   "defaults": { "callingAet": "RTEXPORT", "logFormat": "text" },
 *   "commands": { "push": { "peer": "pacs" }, "search": { "pattern": "*.dcm" } }
 * }
 * ```
 */
import { resolve } from "node:path";
import { readTextFile } from "../lib/fs/text.ts";
import { UsageError } from "./errors.ts";
import { didYouMean } from "./suggest.ts";

/** A named DICOM peer in `rtexport.json`. */
export interface PeerConfig {
  host?: string;
  port?: number;
  calledAet?: string;
  callingAet?: string;
  tls?: boolean;
  cert?: string;
  key?: string;
  ca?: string;
  connectTimeout?: number;
  assocTimeout?: number;
  dimseTimeout?: number;
  maxPdu?: number;
  [field: string]: unknown;
}

/** The parsed content of `rtexport.json`. */
export interface RtexportConfig {
  /** Path of the file read, or undefined when there was none. */
  path?: string;
  peers: Record<string, PeerConfig>;
  /** Defaults for any flag of any command, keyed by camelCase option name (or flag name). */
  defaults: Record<string, unknown>;
  /** Per-command defaults: `commands["push"].peer = "pacs"`. */
  commands: Record<string, Record<string, unknown>>;
  /** Keys nobody reads (typos), as warnings to show once a logger exists. */
  warnings: string[];
  /** The parsed file as it was, unknown keys included (the web UI writes it back without losing them). */
  raw: Record<string, unknown>;
}

/**
 * The sections of rtexport.json: what commands read (peers, defaults, commands), and the named
 * catalogs, folders and output folders `rtexport ui` keeps there (see ui/config_store.ts).
 */
export const CONFIG_SECTIONS = ["peers", "defaults", "commands", "catalogs", "folders", "outputs"] as const;

/** The fields of a named peer. */
export const PEER_CONFIG_FIELDS = [
  "host", "port", "calledAet", "callingAet", "tls", "cert", "key", "ca", "connectTimeout", "assocTimeout", "dimseTimeout", "maxPdu",
] as const;

/** The default config file name, looked up in the working directory. */
export const CONFIG_FILE = "rtexport.json";

/** `calling-aet`, `calling_aet`, `CALLING_AET` → `callingAet`. */
export function camelCase(name: string): string {
  const parts = name.replace(/^-+/, "").split(/[-_]+/).filter(Boolean);
  if (parts.length <= 1) return name.replace(/^-+/, "");
  return parts.map((part, i) => {
    const lower = part.toLowerCase();
    return i === 0 ? lower : lower.charAt(0).toUpperCase() + lower.slice(1);
  }).join("");
}

/** `callingAet` → `RTEXPORT_CALLING_AET`. */
export function envVarName(attribute: string): string {
  return "RTEXPORT_" + attribute.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/-/g, "_").toUpperCase();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function normalizeKeys(section: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(section)) out[camelCase(key)] = value;
  return out;
}

/**
 * Read the config file. With no explicit path, `rtexport.json` in `cwd` is optional; an explicit
 * path that cannot be read, or a file that is not valid, is a {@linkcode UsageError} naming the file.
 */
export function loadConfig(options: { path?: string; cwd?: string } = {}): RtexportConfig {
  const explicit = options.path !== undefined && options.path !== "";
  const path = resolve(options.cwd ?? ".", explicit ? options.path! : CONFIG_FILE);
  let text: string;
  try {
    text = readTextFile(path);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!explicit && (code === "ENOENT" || code === "ENOTDIR")) return { peers: {}, defaults: {}, commands: {}, warnings: [], raw: {} };
    throw new UsageError(`Cannot read config file "${path}": ${code ?? (error as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`Cannot parse config file "${path}": ${(error as Error).message}`);
  }
  if (!isObject(data)) throw new UsageError(`Cannot use config file "${path}": expected a JSON object`);
  const warnings: string[] = [];
  for (const key of Object.keys(data)) {
    if (!(CONFIG_SECTIONS as readonly string[]).includes(key)) {
      warnings.push(`Unknown key "${key}" in config file "${path}" is ignored${didYouMean(key, CONFIG_SECTIONS)}`);
    }
  }
  const peers: Record<string, PeerConfig> = {};
  if (data.peers !== undefined) {
    if (!isObject(data.peers)) throw new UsageError(`Cannot use config file "${path}": "peers" must be an object`);
    for (const [name, peer] of Object.entries(data.peers)) {
      if (!isObject(peer)) throw new UsageError(`Cannot use config file "${path}": peer "${name}" must be an object`);
      peers[name] = normalizeKeys(peer) as PeerConfig;
      for (const field of Object.keys(peers[name])) {
        if (!(PEER_CONFIG_FIELDS as readonly string[]).includes(field)) {
          warnings.push(`Unknown field "${field}" of peer "${name}" in config file "${path}" is ignored${didYouMean(field, PEER_CONFIG_FIELDS)}`);
        }
      }
    }
  }
  let defaults: Record<string, unknown> = {};
  if (data.defaults !== undefined) {
    if (!isObject(data.defaults)) {
      throw new UsageError(`Cannot use config file "${path}": "defaults" must be an object`);
    }
    defaults = normalizeKeys(data.defaults);
  }
  const commands: Record<string, Record<string, unknown>> = {};
  if (data.commands !== undefined) {
    if (!isObject(data.commands)) {
      throw new UsageError(`Cannot use config file "${path}": "commands" must be an object`);
    }
    for (const [name, section] of Object.entries(data.commands)) {
      if (!isObject(section)) {
        throw new UsageError(`Cannot use config file "${path}": "commands.${name}" must be an object`);
      }
      commands[name] = normalizeKeys(section);
    }
  }
  return { path, peers, defaults, commands, warnings, raw: data };
}

/** Parse a boolean from an environment variable: 1/true/yes/on and 0/false/no/off/"" (case-insensitive). */
export function parseBooleanEnv(name: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off", ""].includes(v)) return false;
  throw new UsageError(`Invalid value "${value}" for ${name}: expected true or false`);
}
