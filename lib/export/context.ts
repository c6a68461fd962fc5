/**
 * One export run's state, shared by the functions of the export stage: its options, what it has
 * opened (catalogs, the peer), the folder names it has given out, and its report.
 */
import { join, resolve } from "node:path";
import { Catalog } from "../catalog/catalog.ts";
import { FolderAssigner, folderCandidates, patientFolderName } from "../layout/sanitize.ts";
import { DEFAULT_ITEMS, type Item, planFolderName } from "../layout/tree.ts";
import type { PeerSettings } from "../net/peer.ts";
import type { FileRecord, PatientRecord, PlanRecord } from "../records/types.ts";
import type { Pacer } from "../stage/pace.ts";
import { type StageEvent, type StageOptions, StageReport } from "../stage/stage.ts";
import { type DicomPlanSource, dicomPlanSource, type RetrieveSettings } from "./dicom_source.ts";
import type { HandoffTarget } from "./handoff.ts";
import { stagingName } from "./staging.ts";
import process from "node:process";
import { hostTag } from "../runtime/mod.ts";
import { MoveReceiver, refusedText } from "../retrieve/move_receiver.ts";

/** Options of the export stage. */
export interface ExportPlanOptions extends StageOptions {
  /** Write the tree here. Without it, file records carry `dest` (the tree path) for `copy-files`. */
  out?: string;
  items?: Item[];
  /** Export plans whose approval is not APPROVED (an explicit authorization step, seed 001). */
  includeUnapproved?: boolean;
  /**
   * Who authorized exporting the plans whose approval is not APPROVED (seed 001: "a qualified person
   * has authorized the export of this plan"): they are exported, and each gets an `authorization`
   * row in the ledger naming this person (its `source`), keyed and grouped by the plan's key.
   */
  authorizedBy?: string;
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
  /** Time windows and rate limits: the export pauses between files (each worker releasing its peer association) outside the windows. */
  pace?: Pacer;
  /** How DICOM is retrieved from `peer`: C-MOVE (default) or C-GET, and where objects are staged. */
  retrieve?: RetrieveSettings;
  /**
   * Without `out`, with `peer`: the tree `copy-files` writes and its ledger. Objects of a plan or
   * a patient's series that copy-files has copied there (its ledger's `file` rows, not this
   * stage's belief) are not retrieved again: their records come out `copy: "done-before"`,
   * pointing at the tree's file; what each retrieval handed on is recorded there as `handoff`
   * rows (lib/export/handoff.ts).
   */
  handoff?: HandoffTarget;
  /**
   * Patients exported at once in this process (default 1), each on its own association to `peer`.
   * With a ledger, patients are work items claimed in it with leases: any number of processes on
   * any number of machines, given the same input and ledger, split them, each patient exported
   * once, a dead worker's patients taken over (lib/ledger/claims.ts).
   */
  workers?: number;
  /** The ledger job the workers share (default "export-plan"; give each migration sharing one ledger its own). */
  job?: string;
  /** Claim patients in the ledger (default true when there is a ledger); false exports the input in order, as it comes. */
  claims?: boolean;
  /**
   * Rehash files an earlier run put in the tree before counting them as done: a file whose bytes
   * differ from the ledger's record is reported (and left alone).
   */
  verify?: boolean;
}

/** A patient's folder, whether its patient-level files have been exported in this run, and its tree paths. */
export interface PatientState {
  folder: string;
  patientLevelDone: boolean;
  /** Who owns each of the patient's tree paths in this run (lower-cased): two sources with one name get `name~2.ext`. */
  destOwners: Map<string, string>;
}

/** Files, bytes and failures of one plan (or one patient's patient-level files). */
export interface Tally {
  files: number;
  bytes: number;
  failed: number;
  /** Set when the run was stopped before every file was done (Ctrl-C, a reader that went away). */
  interrupted?: boolean;
}

/** The state of one run of the export stage. */
export interface ExportContext {
  opts: ExportPlanOptions;
  items: Set<Item>;
  report: StageReport;
  /** The peer DICOM comes from for this worker, when `opts.peer` is given (its association opened on first use). */
  peer?: DicomPlanSource;
  /** One peer source per worker (each its own association and staging folder). */
  peers: DicomPlanSource[];
  /** The C-MOVE receiver the workers share (one port; each object routed to the worker whose request it answers). */
  receiver?: MoveReceiver;
  catalogs: Map<string, Promise<Catalog>>;
  /**
   * Patient folders: two patients whose names sanitize alike never share one. With a ledger they
   * are assigned in it, atomically for every worker of the migration; without, here.
   */
  patientFolders: FolderAssigner;
  patients: Map<string, PatientState>;
  /** Plan folders per patient: two plans with one label get two folders. */
  planFolders: Map<string, FolderAssigner>;
  /** Files, bytes and failures per patient, from the stage's own events (a claimed item's outcome). */
  perPatient: Map<string, { failed: number; files: number; bytes: number; firstError?: string }>;
}

/** Starts a run: prepares one peer source per worker when there is a peer. */
export function openContext(opts: ExportPlanOptions): ExportContext {
  const perPatient: ExportContext["perPatient"] = new Map();
  const tally = (e: StageEvent) => {
    if ((e.type !== "done" && e.type !== "skipped" && e.type !== "failed") || e.patientId === undefined) return;
    let t = perPatient.get(e.patientId);
    if (!t) perPatient.set(e.patientId, t = { failed: 0, files: 0, bytes: 0 });
    if (e.type === "failed") {
      t.failed++;
      t.firstError ??= `${e.item}: ${e.reason}`;
    } else if (e.item.startsWith("file ")) {
      t.files++;
      t.bytes += e.bytes ?? 0;
    }
  };
  const report = new StageReport("export-plan", { ...opts, onEvent: (e) => (tally(e), opts.onEvent?.(e)) });
  const ctx: ExportContext = {
    opts, items: new Set(opts.items ?? DEFAULT_ITEMS), report, catalogs: new Map(), peers: [],
    patientFolders: new FolderAssigner(), patients: new Map(), planFolders: new Map(), perPatient,
  };
  if (opts.peer) {
    const r = opts.retrieve ?? {};
    const stagingRoot = opts.out ? join(opts.out, ".rtexport") : resolve(r.staging ?? ".rtexport-staging");
    if ((r.mode ?? "move") === "move") {
      // Named like a staging folder of this process, so a killed run's is cleaned (staging.ts).
      ctx.receiver = new MoveReceiver(join(stagingRoot, `incoming-${hostTag()}-${process.pid}`), {
        onRefused: (x) => report.message("warn", refusedText(x)),
      });
    }
    for (let worker = 0; worker < Math.max(1, opts.workers ?? 1); worker++) {
      ctx.peers.push(dicomPlanSource(opts.peer, {
        mode: r.mode ?? "move", moveAet: r.moveAet, movePort: r.movePort, receiver: ctx.receiver,
        // Named by host, process and worker: several machines stage into one shared tree, and a
        // killed run's leftovers are told from a live run's (staging.ts).
        stagingDir: opts.out ? join(stagingRoot, stagingName(worker)) : stagingRoot,
        keepStaged: !opts.out,
        retry: r.retry,
        onMessage: (level, text) => report.message(level, text),
        signal: opts.signal,
      }));
    }
    ctx.peer = ctx.peers[0];
  }
  return ctx;
}

/** The context as worker `worker` sees it: the same state, its own peer source. */
export function workerContext(ctx: ExportContext, worker: number): ExportContext {
  return ctx.peers.length ? { ...ctx, peer: ctx.peers[worker % ctx.peers.length] } : ctx;
}

/** Ends a run: closes what it opened (catalogs, the peers' associations and staging) and sends `finished`. */
export async function closeContext(ctx: ExportContext): Promise<void> {
  try {
    for (const c of ctx.catalogs.values()) await c.then((c) => c.close()).catch(() => {});
    for (const p of ctx.peers) await p.close().catch(() => {});
    ctx.receiver?.close();
  } finally {
    ctx.report.finish();
  }
}

/** Reports a failed item (counted, and on the event sink), unless the run was stopped. */
export function problem(ctx: ExportContext, item: string, reason: string, patientId?: string): void {
  // Once the run is stopped (Ctrl-C, SIGTERM), what fails is work abandoned in flight (an aborted
  // association, a copy cut short): not a failure of the item, which the rerun does.
  if (ctx.opts.signal?.aborted) return;
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
    // One open per catalog, whichever worker asks first.
    c = Catalog.open(url, vault);
    ctx.catalogs.set(key, c);
    c.catch(() => ctx.catalogs.delete(key));
  }
  return await c;
}

/** The patient's folder (assigned on first sight, in the ledger when there is one, so a rerun and every worker keep it). */
export async function patientState(ctx: ExportContext, rec: PatientRecord | PlanRecord, name?: PatientRecord["name"]): Promise<PatientState> {
  const id = rec.patientId;
  let st = ctx.patients.get(id);
  if (st) return st;
  const key = `${rec.source ?? ""}|${id}`;
  const wanted = patientFolderName({ family: name?.family, given: name?.given, patientId: id });
  // With --to, in copy-files's ledger: the folders a rerun's retrievals go to are those of the copies it skips.
  const ledger = ctx.opts.ledger ?? ctx.opts.handoff?.ledger;
  const folder = ledger ? await ledger.assignFolder(key, folderCandidates(key, wanted)) : ctx.patientFolders.assign(key, wanted);
  st = { folder, patientLevelDone: false, destOwners: new Map() };
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
export function uniqueDest(st: PatientState, wanted: string, owner: string): string {
  const owners = st.destOwners;
  let dest = wanted;
  const dot = wanted.lastIndexOf(".");
  const slash = wanted.lastIndexOf("/");
  const [stem, ext] = dot > slash + 1 ? [wanted.slice(0, dot), wanted.slice(dot)] : [wanted, ""];
  for (let n = 2; owners.has(dest.toLowerCase()) && owners.get(dest.toLowerCase()) !== owner; n++) dest = `${stem}~${n}${ext}`;
  owners.set(dest.toLowerCase(), owner);
  return dest;
}

/** Forgets a patient's naming state once its work item is done (memory stays flat in patient count). */
export function forgetPatient(ctx: ExportContext, patientId: string): void {
  ctx.patients.delete(patientId);
  ctx.planFolders.delete(patientId);
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
