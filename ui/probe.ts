/**
 * "Test connection" for the entries of rtexport.json: a peer gets a C-ECHO by `rtexport echo`
 * (its record says why it failed: refused, unreachable, timeout, rejected, TLS…), a catalog is
 * opened read-only and its views counted, a folder and an output folder are looked at. Each
 * failure is one sentence with a short kind the page shows as a badge.
 */
import { accessSync, constants, existsSync, readdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { Catalog } from "../lib/catalog/catalog.ts";
import { DatabaseUrlError, parseDatabaseUrl } from "../lib/sql/url.ts";
import { runPipeline } from "./child.ts";
import { commandArgs } from "./shared/argv.ts";
import type { CatalogEntry, CommandInfo, FolderEntry, OutputEntry, PeerEntry, ProbeResult } from "./shared/types.ts";

function elapsed(t0: number): number {
  return Math.round(performance.now() - t0);
}

/** C-ECHO through `rtexport echo` with the peer's settings. */
export async function probePeer(echoInfo: CommandInfo, peer: PeerEntry, opts: { cwd: string; config?: string }): Promise<ProbeResult> {
  const t0 = performance.now();
  const options: Record<string, string | boolean> = {};
  for (const k of ["host", "port", "calledAet", "callingAet", "ca", "cert", "key", "connectTimeout", "assocTimeout", "dimseTimeout", "maxPdu"]) {
    if (peer[k] !== undefined && peer[k] !== null && peer[k] !== "") options[k] = String(peer[k]);
  }
  if (peer.tls) options.tls = true;
  // A probe should answer soon: a peer that does not answer in 5 s is reported as such.
  options.connectTimeout ??= "5";
  options.assocTimeout ??= "10";
  const argv = ["echo", ...commandArgs(echoInfo, { options, args: [] }, ["host", "port", "calledAet", "callingAet"]).map(String)];
  const r = await runPipeline([argv], { cwd: opts.cwd, config: opts.config, keepRecords: 5, timeoutMs: 30_000 });
  const rec = r.records.find((x) => x.type === "echo");
  if (rec?.status === "ok") return { ok: true, kind: "ok", message: `C-ECHO answered in ${rec.ms} ms`, ms: elapsed(t0) };
  if (rec) return { ok: false, kind: String(rec.reason ?? "error"), message: String(rec.error ?? "C-ECHO failed"), ms: elapsed(t0) };
  return { ok: false, kind: r.exitCode === 2 ? "settings" : "error", message: r.errors.at(-1) ?? `echo ended with exit status ${r.exitCode}`, ms: elapsed(t0) };
}

/** Opens the catalog read-only, counts its patients and plans, and looks for the vault. */
export async function probeCatalog(entry: CatalogEntry): Promise<ProbeResult> {
  const t0 = performance.now();
  try {
    parseDatabaseUrl(entry.db);
  } catch (e) {
    return { ok: false, kind: "bad-url", message: (e as DatabaseUrlError).message };
  }
  let catalog: Catalog;
  try {
    catalog = await Catalog.open(entry.db, entry.vault);
  } catch (e) {
    const m = (e as Error).message;
    const kind = /no such file|ENOENT|does not exist/i.test(m) ? "not-found" : /ECONNREFUSED/.test(m) ? "refused" : /password|auth/i.test(m) ? "login" : "unreachable";
    return { ok: false, kind, message: `Cannot open catalog: ${m}` };
  }
  try {
    let patients: number, plans: number;
    try {
      patients = Number((await catalog.db.selectFrom("rtx_patients").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);
      plans = Number((await catalog.db.selectFrom("rtx_plans").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);
    } catch (e) {
      return { ok: false, kind: "not-a-catalog", message: `The database has no readable catalog views (rtx_patients, rtx_plans): ${(e as Error).message}` };
    }
    if (entry.vault && !(existsSync(entry.vault) && statSync(entry.vault).isDirectory())) {
      return { ok: false, kind: "vault-missing", message: `The catalog answers (${patients} patients, ${plans} plans), but the vault folder "${entry.vault}" is not there` };
    }
    return { ok: true, kind: "ok", message: `${patients} patients, ${plans} plans${entry.vault ? "; vault found" : ""}`, ms: elapsed(t0) };
  } finally {
    await catalog.close().catch(() => {});
  }
}

/** A folder to list from: there, a folder, readable. */
export function probeFolder(entry: FolderEntry): ProbeResult {
  try {
    if (!existsSync(entry.path)) return { ok: false, kind: "not-found", message: `No folder "${entry.path}"` };
    if (!statSync(entry.path).isDirectory()) return { ok: false, kind: "not-a-folder", message: `"${entry.path}" is a file, not a folder` };
    const n = readdirSync(entry.path).length;
    return { ok: true, kind: "ok", message: `Readable, ${n} entr${n === 1 ? "y" : "ies"} at the top` };
  } catch (e) {
    return { ok: false, kind: "not-readable", message: `Cannot read "${entry.path}": ${(e as Error).message}` };
  }
}

/** An output folder: writable (or creatable), and its ledger URL well-formed. */
export function probeOutput(entry: OutputEntry): ProbeResult {
  if (entry.ledger) {
    try {
      parseDatabaseUrl(entry.ledger);
    } catch (e) {
      return { ok: false, kind: "bad-url", message: (e as Error).message };
    }
  }
  let dir = entry.path;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    if (!statSync(dir).isDirectory()) return { ok: false, kind: "not-a-folder", message: `"${dir}" is a file, not a folder` };
    accessSync(dir, constants.W_OK);
  } catch {
    return { ok: false, kind: "not-writable", message: `Cannot write in "${dir}"` };
  }
  return { ok: true, kind: "ok", message: dir === entry.path ? "Writable" : `Will be created (in "${dir}", which is writable)` };
}
