/**
 * One export run's state, shared by the functions of the export stage: its options, what it has
 * opened (catalogs, the peer), the folder names it has given out, and its report.
 */
import { join, resolve } from "node:path";
import process from "node:process";
import { Catalog } from "../catalog/catalog.ts";
import { FolderAssigner, patientFolderName } from "../layout/sanitize.ts";
import { DEFAULT_ITEMS, type Item, planFolderName } from "../layout/tree.ts";
import type { PeerSettings } from "../net/peer.ts";
import type { FileRecord, PatientRecord, PlanRecord } from "../records/types.ts";
import type { Pacer } from "../stage/pace.ts";
import { type StageOptions, StageReport } from "../stage/stage.ts";
import { type DicomPlanSource, dicomPlanSource, type RetrieveSettings } from "./dicom_source.ts";

/** Options of the export stage. */
export interface ExportPlanOptions extends StageOptions {
  /** Write the tree here. Without it, file records carry `dest` (the tree path) for `copy-files`. */
  out?: string;
  items?: Item[];
  /** Export plans whose approval is not APPROVED (an explicit authorization step, seed 001). */
  includeUnapproved?: boolean;
  /** Overrides the catalog URL carried by the records (needed when it holds a password). */
  db?: string;
  /** Overrides the vault folder carried by the records. */
  vault?: string;
  /** Files copied at once (default 4). */
  parallel?: number;
  /**
   * Fetch DICOM from this Q/R peer by selective retrieval: for plans listed from a peer, and for
   * catalog plans (their DICOM then comes from the peer, the other items from the vault). The
   * stage opens one association when it first needs it and closes it when it ends.
   */
  peer?: PeerSettings;
  /** How DICOM is retrieved from `peer`: C-MOVE (default) or C-GET, and where objects are staged. */
  retrieve?: RetrieveSettings;
  /** Time windows and rate limits: the export pauses between files (releasing the peer's association) outside the windows. */
  pace?: Pacer;
}

/** A patient's folder, and whether its patient-level files have been exported in this run. */
export interface PatientState {
  folder: string;
  patientLevelDone: boolean;
}

/** Files, bytes and failures of one plan (or one patient's patient-level files). */
export interface Tally {
  files: number;
  bytes: number;
  failed: number;
}

/** The state of one run of the export stage. */
export interface ExportContext {
  opts: ExportPlanOptions;
  items: Set<Item>;
  report: StageReport;
  /** The peer DICOM comes from, when `opts.peer` is given (opened on first use). */
  peer?: DicomPlanSource;
  catalogs: Map<string, Catalog>;
  /** Patient folders: two patients whose names sanitize alike never share one (kept in the ledger). */
  patientFolders: FolderAssigner;
  patients: Map<string, PatientState>;
  /** Plan folders per patient: two plans with one label get two folders. */
  planFolders: Map<string, FolderAssigner>;
  /** Who owns each tree path in this run (lower-cased): two sources with one name get `name~2.ext`. */
  destOwners: Map<string, string>;
}

/** Starts a run: reads the folder names earlier runs gave out, and prepares the peer when there is one. */
export async function openContext(opts: ExportPlanOptions): Promise<ExportContext> {
  const patientFolders = new FolderAssigner(opts.ledger ? await opts.ledger.folders() : []);
  const ctx: ExportContext = {
    opts, items: new Set(opts.items ?? DEFAULT_ITEMS), report: new StageReport("export-plan", opts), catalogs: new Map(),
    patientFolders, patients: new Map(), planFolders: new Map(), destOwners: new Map(),
  };
  if (opts.peer) {
    const r = opts.retrieve ?? {};
    ctx.peer = dicomPlanSource(opts.peer, {
      mode: r.mode ?? "move", moveAet: r.moveAet, movePort: r.movePort,
      stagingDir: opts.out ? join(opts.out, ".rtexport", `staging-${process.pid}`) : resolve(r.staging ?? ".rtexport-staging"),
      keepStaged: !opts.out,
    });
  }
  return ctx;
}

/** Ends a run: closes what it opened (catalogs, the peer's association and staging) and sends `finished`. */
export async function closeContext(ctx: ExportContext): Promise<void> {
  try {
    for (const c of ctx.catalogs.values()) await c.close().catch(() => {});
    await ctx.peer?.close().catch(() => {});
  } finally {
    ctx.report.finish();
  }
}

/** Reports a failed item (counted, and on the event sink). */
export function problem(ctx: ExportContext, item: string, reason: string, patientId?: string): void {
  ctx.report.failed(item, reason, { patientId });
}

/** Reports a file record that came out of the stage: done, or skipped because it was already there. */
export function fileDone(ctx: ExportContext, rec: FileRecord): void {
  const fields = { bytes: rec.bytes ?? 0, patientId: rec.patientId, planKey: rec.planUid };
  if (rec.copy === "done-before") ctx.report.skipped(`file "${rec.path}"`, "already-done", "exported by an earlier run", fields);
  else if (rec.copy === "identical") ctx.report.skipped(`file "${rec.path}"`, "identical", "the same file is already in the tree", fields);
  else ctx.report.done(`file "${rec.path}"`, fields);
}

/** The catalog a patient or plan record comes from (opened once per URL and vault). */
export async function catalogFor(ctx: ExportContext, rec: PatientRecord | PlanRecord): Promise<Catalog | undefined> {
  const url = ctx.opts.db ?? (typeof rec.source === "string" ? rec.source : undefined);
  const vault = ctx.opts.vault ?? (typeof rec.vault === "string" ? rec.vault : undefined);
  if (!url) return undefined;
  const key = `${url}\n${vault ?? ""}`;
  let c = ctx.catalogs.get(key);
  if (!c) {
    c = await Catalog.open(url, vault);
    ctx.catalogs.set(key, c);
  }
  return c;
}

/** The patient's folder (assigned on first sight, remembered in the ledger so a rerun keeps it). */
export async function patientState(ctx: ExportContext, rec: PatientRecord | PlanRecord, name?: PatientRecord["name"]): Promise<PatientState> {
  const id = rec.patientId;
  let st = ctx.patients.get(id);
  if (st) return st;
  const key = `${rec.source ?? ""}|${id}`;
  const folder = ctx.patientFolders.assign(key, patientFolderName({ family: name?.family, given: name?.given, patientId: id }));
  await ctx.opts.ledger?.rememberFolder(key, folder);
  st = { folder, patientLevelDone: false };
  ctx.patients.set(id, st);
  return st;
}

/** The plan's folder under its patient's. */
export function planFolder(ctx: ExportContext, patientId: string, plan: PlanRecord): string {
  let a = ctx.planFolders.get(patientId);
  if (!a) ctx.planFolders.set(patientId, a = new FolderAssigner());
  const label = String(plan.label ?? plan.name ?? plan.planId ?? plan.planUid ?? "Plan");
  return a.assign(String(plan.planId ?? plan.planUid ?? label), planFolderName(label));
}

/**
 * The tree path `wanted` for the file `owner`, or `name~2.ext`, … when another file of this run
 * already has it (fraction 1 and 2 each with a fraction.xml), in source order, which is stable
 * from run to run.
 */
export function uniqueDest(ctx: ExportContext, wanted: string, owner: string): string {
  let dest = wanted;
  const dot = wanted.lastIndexOf(".");
  const slash = wanted.lastIndexOf("/");
  const [stem, ext] = dot > slash + 1 ? [wanted.slice(0, dot), wanted.slice(dot)] : [wanted, ""];
  for (let n = 2; ctx.destOwners.has(dest.toLowerCase()) && ctx.destOwners.get(dest.toLowerCase()) !== owner; n++) dest = `${stem}~${n}${ext}`;
  ctx.destOwners.set(dest.toLowerCase(), owner);
  return dest;
}

/** The ledger key of a plan. */
export function planKeyOf(plan: PlanRecord): string {
  return `${plan.source ?? ""}|${plan.planId ?? plan.planUid ?? plan.label}`;
}

/** True for a record listed from a DICOM peer. */
export function isDicomSource(rec: PatientRecord | PlanRecord): boolean {
  return typeof rec.source === "string" && rec.source.startsWith("dicom:");
}

/** The folder a record was listed from (`list-patients --from folder`), if it was. */
export function folderOf(rec: PatientRecord | PlanRecord): string | undefined {
  return typeof rec.source === "string" && rec.source.startsWith("folder:") ? rec.source.slice(7) : undefined;
}
