/**
 * What the export does for one patient and one plan: find its files at the source (catalog and
 * vault, folder, or peer), put them in the tree, and record the outcome on the record and in the
 * ledger.
 */
import { rmSync } from "node:fs";
import { resolve } from "node:path";
import type { Catalog } from "../catalog/catalog.ts";
import { isDicomCategory } from "../layout/tree.ts";
import type { FileRecord, PatientRecord, PlanRecord, RtRecord } from "../records/types.ts";
import { FatalStageError } from "../stage/stage.ts";
import { folderPatientFiles, folderPlanFiles, listFolder } from "../sources/folder.ts";
import {
  catalogFor, type ExportContext, fileDone, folderOf, isDicomSource, type PatientState, patientState, planFolder, planKeyOf,
  problem, type Tally,
} from "./context.ts";
import type { DicomPlanFiles } from "./dicom_source.ts";
import { recordHandoff } from "./handoff.ts";
import { exportRows, fromCatalog, fromFolder, reuseRetrieved, type SourceFile } from "./files.ts";

const newTally = (): Tally => ({ files: 0, bytes: 0, failed: 0 });

/**
 * A `patient` record: its patient-level files, the record itself, then (when the record does not
 * say how many plans follow) every plan of the patient at its source.
 */
export async function* exportPatient(ctx: ExportContext, p: PatientRecord): AsyncGenerator<RtRecord> {
  const root = folderOf(p);
  const catalog = root || isDicomSource(p) ? undefined : await catalogFor(ctx, p);
  const st = await patientState(ctx, p, p.name);
  if (!catalog && !root) {
    yield p;
    return;
  }
  yield* exportPatientLevel(ctx, p, st, newTally());
  yield p;
  if (typeof p.plans !== "number") {
    // A bare patient record means all of its plans.
    let any = false;
    const plans = root ? listFolder(root, { patientIds: [p.patientId] }) : catalog!.list({ patientIds: [p.patientId] });
    for await (const r of plans) {
      if (r.type === "plan") {
        any = true;
        yield* exportPlan(ctx, r as PlanRecord);
      }
    }
    if (!any) problem(ctx, `patient ${p.patientId}`, "has no plans to export", p.patientId);
  } else if (p.plans === 0) {
    problem(ctx, `patient ${p.patientId}`, "has no plans to export", p.patientId);
  }
}

/** Records a previous run put in the tree, counted and reported as this run's. */
function* reused(ctx: ExportContext, records: FileRecord[], tally: Tally): Generator<FileRecord> {
  for (const r of records) {
    tally.files++;
    tally.bytes += r.bytes ?? 0;
    fileDone(ctx, r);
    yield r;
  }
}

/**
 * A `plan` record: the patient's patient-level files first (once per patient), then the plan's
 * own files into its folder, then the record with `export: {status, files, bytes, failed, folder}`.
 */
export async function* exportPlan(ctx: ExportContext, plan: PlanRecord): AsyncGenerator<RtRecord> {
  const { opts, report } = ctx;
  const tally = newTally();
  const planKey = planKeyOf(plan);
  const unapproved = !!plan.approval && plan.approval !== "APPROVED";
  if (unapproved && !opts.includeUnapproved && !opts.authorizedBy) {
    report.skipped(`plan "${plan.label ?? plan.planId}" of patient ${plan.patientId}`, "unapproved", `approval is ${plan.approval}; pass --include-unapproved or --authorized-by NAME to export it`, { patientId: plan.patientId });
    await opts.ledger?.record({ kind: "plan", key: planKey, status: "skipped", patientId: plan.patientId, error: `approval ${plan.approval}` });
    yield { ...plan, export: { status: "skipped", reason: `approval ${plan.approval}` } };
    return;
  }
  const planName = `plan "${plan.label ?? plan.planId ?? plan.planUid}" of patient ${plan.patientId}`;
  const authorizedBy = unapproved && opts.authorizedBy ? opts.authorizedBy : undefined;
  if (authorizedBy) {
    // The authorization is a fact of its own, recorded before the export whatever its outcome.
    await opts.ledger?.record({ kind: "authorization", key: planKey, status: "done", patientId: plan.patientId, planKey, source: authorizedBy });
    report.message("info", `${planName}: approval is ${plan.approval}; exported on the authorization of ${authorizedBy}`, planName);
  }
  const folderRoot = folderOf(plan);
  const fromPeer = isDicomSource(plan);
  const catalog = folderRoot || fromPeer ? undefined : await catalogFor(ctx, plan);
  if (fromPeer && !ctx.peer) {
    problem(ctx, planName, "listed from a DICOM peer: give export-plan the peer (--host/--port/--called-aet or --peer) and --out", plan.patientId);
    yield { ...plan, export: { status: "failed", reason: "no peer" } };
    return;
  }
  if (!folderRoot && !fromPeer && (!catalog || plan.planId === undefined)) {
    problem(ctx, planName, "no source on the record (give --db, or pipe list-patients --from catalog or --from folder)", plan.patientId);
    yield { ...plan, export: { status: "failed", reason: "no source" } };
    return;
  }
  const st = await patientState(ctx, plan);
  yield* exportPatientLevel(ctx, plan, st, tally);
  const dir = planFolder(ctx, plan.patientId, plan);
  let rows: SourceFile[] = [];
  if (folderRoot) {
    const found = plan.planUid ? folderPlanFiles(folderRoot, plan.planUid, plan.patientId) : undefined;
    if (!found) {
      problem(ctx, planName, `not found in folder "${folderRoot}"`, plan.patientId);
      tally.failed++;
    } else {
      for (const m of found.missing) {
        problem(ctx, planName, `references ${m}, which is not in the source`, plan.patientId);
        tally.failed++;
      }
      rows = fromFolder(found.files, plan.patientId);
    }
  } else if (catalog) {
    rows = fromCatalog(await catalog.files(plan.patientId, String(plan.planId)));
    if (rows.length === 0) problem(ctx, planName, "the catalog lists no files for it", plan.patientId);
    // With a peer, the plan's DICOM comes from the peer, the rest from the vault.
    if (ctx.peer) rows = rows.filter((r) => !isDicomCategory(r.category));
  }
  let staged: DicomPlanFiles | undefined;
  const group = `plan|${planKey}`;
  if (ctx.peer && (fromPeer || catalog) && (ctx.items.has("rt-objects") || ctx.items.has("patient-dicom"))) {
    const again = await reuseRetrieved(ctx, group);
    if (again) {
      yield* reused(ctx, again.map((r) => ({ ...r, planUid: plan.planUid, planLabel: plan.label })), tally);
    } else {
      try {
        // Image series come with the patient (every series, referenced or not), not again per plan.
        staged = await ctx.peer.fetch(plan, { images: false });
      } catch (e) {
        if (e instanceof FatalStageError) throw e;
        problem(ctx, planName, `cannot retrieve its DICOM: ${(e as Error).message}`, plan.patientId);
        tally.failed++;
      }
      for (const m of staged?.missing ?? []) {
        problem(ctx, planName, `references ${m}, which did not arrive`, plan.patientId);
        tally.failed++;
      }
      if (staged) rows = [...fromFolder(staged.files, plan.patientId, { staged: true, group }), ...rows];
    }
  }
  yield* exportRetrieved(ctx, rows, catalog, st, dir, plan, tally, { staged, group, patientId: plan.patientId });
  // Stopped before the plan was done: nothing says it is; a rerun exports what is missing.
  if (tally.interrupted || opts.signal?.aborted) return;
  const status = tally.failed ? "partial" : "done";
  await opts.ledger?.record({ kind: "plan", key: planKey, status: tally.failed ? "failed" : "done", patientId: plan.patientId, bytes: tally.bytes, error: tally.failed ? `${tally.failed} file(s) failed` : undefined });
  yield { ...plan, export: { status, files: tally.files, bytes: tally.bytes, failed: tally.failed, folder: `${st.folder}/${dir}`, ...(authorizedBy ? { authorizedBy } : {}) } };
}

/**
 * Exports rows, some of them staged from a peer; once they are in the tree without a failure, the
 * retrieval is recorded as done, so that a rerun reuses them instead of retrieving again.
 */
async function* exportRetrieved(
  ctx: ExportContext, rows: SourceFile[], catalog: Catalog | undefined, st: PatientState, dir: string | undefined,
  plan: PlanRecord | undefined, tally: Tally, retrieval: { staged?: DicomPlanFiles; group: string; patientId: string },
): AsyncGenerator<FileRecord> {
  const failedBefore = tally.failed;
  const handoff = retrieval.staged && !ctx.opts.out ? ctx.opts.handoff : undefined;
  const handed: FileRecord[] = [];
  const passedOn = new Set<string>();
  try {
    for await (const r of exportRows(ctx, rows, catalog?.vault, st, dir, plan, tally)) {
      if (r.staged) {
        passedOn.add(r.path);
        if (handoff) handed.push(r);
      }
      yield r;
    }
  } finally {
    retrieval.staged?.done();
    // Without --out, an object staged for copy-files that did not go out (not selected, failed, or
    // the run stopped) would wait in staging for the next run: nobody reads it, so it goes now.
    if (!ctx.opts.out) for (const f of retrieval.staged?.files ?? []) if (!passedOn.has(resolve(f.path))) rmSync(f.path, { force: true });
  }
  if (!retrieval.staged || tally.failed !== failedBefore || tally.interrupted || ctx.opts.signal?.aborted) return;
  if (ctx.opts.out) await ctx.opts.ledger?.record({ kind: "retrieval", key: retrieval.group, status: "done", patientId: retrieval.patientId });
  // Every object went out to copy-files: what it was, so that a rerun can tell from copy-files's ledger whether all arrived.
  else if (handoff) {
    await recordHandoff(handoff, retrieval.group, retrieval.patientId, handed).catch((e) =>
      ctx.report.message("warn", `Cannot record in the ledger what went to copy-files (a rerun retrieves it again): ${(e as Error).message}`)
    );
  }
}

/** The patient-level files of the patient of `rec` (image series, photo, patient documents), once per patient. */
async function* exportPatientLevel(ctx: ExportContext, rec: PatientRecord | PlanRecord, st: PatientState, tally: Tally): AsyncGenerator<FileRecord> {
  if (st.patientLevelDone) return;
  st.patientLevelDone = true;
  const root = folderOf(rec);
  if (root) {
    yield* exportRows(ctx, fromFolder(folderPatientFiles(root, rec.patientId), rec.patientId), undefined, st, undefined, undefined, tally);
    return;
  }
  const catalog = isDicomSource(rec) ? undefined : await catalogFor(ctx, rec);
  let rows = catalog ? fromCatalog(await catalog.files(rec.patientId, null)) : [];
  let staged: DicomPlanFiles | undefined;
  const group = `series|${rec.source ?? ""}|${rec.patientId}`;
  if (ctx.peer && (catalog || isDicomSource(rec))) {
    // With a DICOM peer, the patient's series come from the peer, the rest from the vault.
    rows = rows.filter((r) => !isDicomCategory(r.category));
    const again = ctx.items.has("patient-dicom") ? await reuseRetrieved(ctx, group) : undefined;
    if (again) {
      yield* reused(ctx, again, tally);
    } else if (ctx.items.has("patient-dicom")) {
      try {
        staged = await ctx.peer.fetchPatientSeries(rec.patientId);
        rows = [...fromFolder(staged.files, rec.patientId, { staged: true, group }), ...rows];
      } catch (e) {
        if (e instanceof FatalStageError) throw e;
        problem(ctx, `patient ${rec.patientId}`, `cannot retrieve its image series: ${(e as Error).message}`, rec.patientId);
        tally.failed++;
      }
      for (const m of staged?.missing ?? []) {
        problem(ctx, `patient ${rec.patientId}`, `${m} did not arrive`, rec.patientId);
        tally.failed++;
      }
    }
  }
  yield* exportRetrieved(ctx, rows, catalog, st, undefined, undefined, tally, { staged, group, patientId: rec.patientId });
}
