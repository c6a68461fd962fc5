/**
 * rtexport.json as the UI edits it: read through the CLI's own loader (cli/config.ts), so the UI
 * sees the file exactly as every command does, and written back whole from its `raw` content, so
 * keys the UI does not know (a newer version's, a site's own) are kept. Writes are atomic (a
 * temporary file renamed over the old one) and one at a time; each starts from the file as it is
 * on disk, so an edit made meanwhile by hand is not undone.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import process from "node:process";
import { loadConfig } from "../cli/config.ts";
import { parseAeTitle, parseMaxPdu, parsePort, parseSeconds } from "../cli/peer.ts";
import { parseDatabaseUrl } from "../lib/sql/url.ts";
import type { ConfigSection, UiConfig } from "./shared/types.ts";

/** A value the UI was asked to store that cannot be: the message names it. */
export class ConfigInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigInputError";
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(entry: Record<string, unknown>, key: string, what: string, required = true): string | undefined {
  const v = entry[key];
  if (v === undefined || v === null || v === "") {
    if (required) throw new ConfigInputError(`${what} needs "${key}"`);
    return undefined;
  }
  if (typeof v !== "string") throw new ConfigInputError(`Invalid "${key}" of ${what}: expected text`);
  if (v.length > 4096 || /[\0\r\n]/.test(v)) throw new ConfigInputError(`Invalid "${key}" of ${what}: too long or holds a line break`);
  return v.trim();
}

function parsed<T>(what: string, key: string, value: unknown, parse: (v: string) => T): T {
  try {
    return parse(String(value).trim());
  } catch (e) {
    throw new ConfigInputError(`Invalid "${key}" of ${what}: ${(e as Error).message}`);
  }
}

/** The config file's sections the UI edits, read as every command reads the file. */
export class ConfigStore {
  readonly path: string;
  #writing: Promise<unknown> = Promise.resolve();

  /** `path`: the config file (it need not exist yet). */
  constructor(path: string) {
    this.path = resolve(path);
  }

  /** The file now, through cli/config.ts's loader; a broken file is an error naming it. */
  read(): UiConfig {
    const exists = existsSync(this.path);
    const config = loadConfig({ path: exists ? this.path : undefined, cwd: dirname(this.path) });
    const raw = exists ? config.raw : {};
    const warnings = [...config.warnings];
    const section = <T>(name: string): Record<string, T> => {
      const v = raw[name];
      if (v === undefined) return {};
      if (!isObject(v)) {
        warnings.push(`"${name}" in ${this.path} is not an object and is ignored`);
        return {};
      }
      const out: Record<string, T> = {};
      for (const [k, e] of Object.entries(v)) if (isObject(e)) out[k] = e as T;
      return out;
    };
    return {
      path: this.path,
      exists,
      // Peers as the commands see them (keys in camelCase).
      peers: config.peers as UiConfig["peers"],
      catalogs: section("catalogs"),
      folders: section("folders"),
      outputs: section("outputs"),
      defaults: config.defaults,
      warnings,
    };
  }

  /** Stores (or, with `entry` undefined, removes) a named entry of a section; resolves to the file as written. */
  saveEntry(section: ConfigSection, name: string, entry: Record<string, unknown> | undefined): Promise<UiConfig> {
    if (!NAME.test(name)) throw new ConfigInputError(`Invalid name "${name}": use letters, digits, ".", "_" and "-" (at most 64)`);
    const clean = entry === undefined ? undefined : this.#validate(section, name, entry);
    return this.#update((raw) => {
      const current = isObject(raw[section]) ? raw[section] as Record<string, unknown> : {};
      if (clean === undefined) delete current[name];
      else current[name] = { ...(isObject(current[name]) ? current[name] as Record<string, unknown> : {}), ...clean };
      raw[section] = current;
    });
  }

  /** Stores default values for flags (the `defaults` section): `undefined` or "" removes one. */
  saveDefaults(values: Record<string, unknown>): Promise<UiConfig> {
    const clean: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(values)) {
      if (!/^[a-zA-Z][a-zA-Z0-9]{0,63}$/.test(k)) throw new ConfigInputError(`Invalid default "${k}"`);
      if (k === "callingAet" && v) clean[k] = parsed("defaults", k, v, parseAeTitle);
      else clean[k] = v;
    }
    return this.#update((raw) => {
      const d = isObject(raw.defaults) ? raw.defaults as Record<string, unknown> : {};
      for (const [k, v] of Object.entries(clean)) {
        if (v === undefined || v === "" || v === null) delete d[k];
        else d[k] = v;
      }
      raw.defaults = d;
    });
  }

  #update(change: (raw: Record<string, unknown>) => void): Promise<UiConfig> {
    const run = this.#writing.then(() => {
      const raw: Record<string, unknown> = existsSync(this.path) ? structuredClone(loadConfig({ path: this.path }).raw) : {};
      change(raw);
      mkdirSync(dirname(this.path), { recursive: true });
      const tmp = `${this.path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(raw, null, 2) + "\n", { mode: 0o600 });
      renameSync(tmp, this.path);
      return this.read();
    });
    this.#writing = run.catch(() => {});
    return run;
  }

  /** Absolute paths, so that scripts and jobs work from any folder. */
  #path(p: string): string {
    return isAbsolute(p) ? p : resolve(dirname(this.path), p);
  }

  #validate(section: ConfigSection, name: string, e: Record<string, unknown>): Record<string, unknown> {
    const what = `${section.replace(/s$/, "")} "${name}"`;
    if (section === "peers") {
      const out: Record<string, unknown> = { host: str(e, "host", what) };
      out.port = parsed(what, "port", e.port ?? 104, parsePort);
      if (e.calledAet) out.calledAet = parsed(what, "calledAet", e.calledAet, parseAeTitle);
      if (e.callingAet) out.callingAet = parsed(what, "callingAet", e.callingAet, parseAeTitle);
      out.tls = e.tls === true;
      for (const k of ["ca", "cert", "key"]) {
        const v = str(e, k, what, false);
        out[k] = v ? this.#path(v) : undefined;
      }
      for (const k of ["connectTimeout", "assocTimeout", "dimseTimeout"]) if (e[k]) out[k] = parsed(what, k, e[k], parseSeconds);
      if (e.maxPdu) out.maxPdu = parsed(what, "maxPdu", e.maxPdu, parseMaxPdu);
      return out;
    }
    if (section === "catalogs") {
      let db = str(e, "db", what)!;
      parsed(what, "db", db, parseDatabaseUrl);
      if (db.startsWith("sqlite:") && db !== "sqlite::memory:") db = `sqlite:${this.#path(db.slice(7))}`;
      const vault = str(e, "vault", what, false);
      return { db, vault: vault ? this.#path(vault) : undefined };
    }
    if (section === "folders") return { path: this.#path(str(e, "path", what)!) };
    const ledger = str(e, "ledger", what, false);
    if (ledger) parsed(what, "ledger", ledger, parseDatabaseUrl);
    return { path: this.#path(str(e, "path", what)!), ledger: ledger || undefined };
  }
}
