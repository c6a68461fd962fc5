/**
 * Putting a source's files into the tree: each becomes a job (source path, tree path), the jobs
 * are copied (or only resolved, without `out`) a few at a time, and each yields its `file` record
 * and its ledger row.
 */
import { statSync } from "node:fs";
import { stat } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import type { CatalogFileRow } from "../catalog/catalog.ts";
import { copyFileVerified, hashFile, placeStagedFile } from "../copy/copy.ts";
import { DICOM_CATEGORY } from "../dicom/file_record.ts";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { type DicomHeader, headerOf } from "../layout/record_path.ts";
import { isDicomCategory, isTreeCategory, treePlace } from "../layout/tree.ts";
import type { FileRecord, PlanRecord } from "../records/types.ts";
import type { FolderFile } from "../sources/folder.ts";
import { untilAborted } from "../stage/stage.ts";
import type { StagedFile } from "./dicom_source.ts";
import { mapOrdered } from "../util/pool.ts";
import { copiedBefore } from "./handoff.ts";
import { type ExportContext, fileDone, type PatientState, planKeyOf, problem, type Tally, uniqueDest } from "./context.ts";

/** One file a source offers for export (a catalog row, a file found in a folder, an object retrieved from a peer). */
export interface SourceFile {
  /** For messages: the catalog's file id or the path. */
  id: string;
  patientId: string;
  category: string | null;
  /** Absolute, or relative to the vault. */
  path: string | null;
  sha256?: string | null;
  /** What the source says of a DICOM object; the file's header has the last word. */
  sopClassUid?: string | null;
  sopInstanceUid?: string | null;
  modality?: string | null;
  seriesUid?: string | null;
  /** A temporary copy (retrieved from a peer) that the next stage may consume. */
  staged?: boolean;
  /** A staged object's size and the SHA-256 of the bytes written into it (taken on arrival). */
  written?: { sha256: string; bytes: number };
  /** A staged object's header, parsed on arrival. */
  header?: DicomFile;
  /** The ledger group of a retrieved file (so a rerun can reuse the whole group). */
  group?: string;
}

/** A catalog's file rows as source files. */
export function fromCatalog(rows: CatalogFileRow[]): SourceFile[] {
  return rows.map((r) => ({
    id: r.file_id ?? r.vault_path ?? "(no id)", patientId: r.patient_id ?? "", category: r.category, path: r.vault_path,
    sha256: r.sha256, sopInstanceUid: r.sop_instance_uid, modality: r.modality,
  }));
}

/** DICOM objects found in a folder (or retrieved from a peer) as source files. */
export function fromFolder(files: (FolderFile | StagedFile)[], patientId: string, extra: Partial<SourceFile> = {}): SourceFile[] {
  return files.map((f) => {
    const row: SourceFile = {
      id: f.path, patientId, category: DICOM_CATEGORY, path: f.path, sopClassUid: f.sopClassUid, sopInstanceUid: f.sopInstanceUid,
      modality: f.modality, seriesUid: f.seriesUid, ...extra,
    };
    if ("written" in f && f.written) row.written = f.written;
    if ("header" in f && f.header) row.header = f.header;
    return row;
  });
}

/** One file to put in the tree. */
interface Job {
  row: SourceFile;
  src: string;
  dest: string;
  /** A DICOM file's header, read once: it names the file in the tree and fills its record. */
  header?: DicomHeader;
  /** Why a file the source calls DICOM could not be read as DICOM. */
  headerError?: string;
}

/**
 * Exports `rows` of one patient, at patient level or (with `planDir` and `plan`) as part of a plan:
 * places each in the tree, copies them `opts.parallel` at a time, and yields their file records in
 * source order. Rows that cannot be placed are reported and counted in `tally`.
 */
export async function* exportRows(
  ctx: ExportContext, rows: SourceFile[], vault: string | undefined, st: PatientState, planDir: string | undefined,
  plan: PlanRecord | undefined, tally: Tally,
): AsyncGenerator<FileRecord> {
  const jobs: Job[] = [];
  for (const row of rows) {
    const job = planJob(ctx, row, vault, st, planDir, tally);
    if (job) jobs.push(job);
  }
  const signal = ctx.opts.signal;
  const results = mapOrdered(untilAborted(jobs, signal), ctx.opts.parallel ?? 4, async (job) => {
    try {
      return { job, rec: await exportOne(ctx, job, plan) };
    } catch (e) {
      // Stopped (Ctrl-C, a reader that went away): abandoned, its temporary file removed; a rerun does it.
      if (signal?.aborted) return { job, interrupted: true };
      return { job, error: (e as Error).message };
    }
  });
  for await (const r of results) {
    if ("interrupted" in r) {
      tally.interrupted = true;
      continue;
    }
    if ("error" in r && r.error !== undefined) {
      tally.failed++;
      problem(ctx, `file "${r.job.src}"`, r.error, r.job.row.patientId);
      await ctx.opts.ledger?.queue({
        kind: "file", key: r.job.dest, status: "failed", source: r.job.src, dest: r.job.dest, patientId: r.job.row.patientId, error: r.error,
      });
      continue;
    }
    const rec = r.rec!;
    tally.files++;
    tally.bytes += rec.bytes ?? 0;
    fileDone(ctx, rec);
    yield rec;
  }
}

/** Where one row goes, or undefined when it is not selected or cannot be exported (reported). */
function planJob(ctx: ExportContext, row: SourceFile, vault: string | undefined, st: PatientState, planDir: string | undefined, tally: Tally): Job | undefined {
  const what = `file ${row.id} of patient ${row.patientId}`;
  const fail = (reason: string) => {
    problem(ctx, what, reason, row.patientId);
    tally.failed++;
    return undefined;
  };
  if (!row.category || !row.path) return fail(`${!row.category ? "category" : "vault_path"} is NULL in the catalog`);
  if (!isTreeCategory(row.category)) return fail(`unknown category "${row.category}"`);
  const dicom = isDicomCategory(row.category);
  const rel = row.path.replace(/\\/g, "/");
  const name = rel.split("/").pop()!;
  // What is not selected is left alone before anything is read: other files by category, DICOM
  // when no item it could fall under is (without a plan, every DICOM object is patient-level).
  if (!dicom && !ctx.items.has(treePlace(st.folder, planDir, { category: row.category, name })!.item)) return undefined;
  if (dicom && !ctx.items.has("patient-dicom") && (planDir === undefined || !ctx.items.has("rt-objects"))) return undefined;
  if (!vault && !isAbsolute(rel)) return fail("no vault folder given (--vault) for a vault-relative path");
  const src = resolve(isAbsolute(rel) ? rel : join(vault!, rel));
  const job: Job = { row, src, dest: "" };
  if (dicom) {
    try {
      job.header = headerOf(row.header ?? readDicomFile(src));
    } catch (e) {
      // reported once the file is known to exist (a missing file is reported as missing)
      job.headerError = (e as Error).message;
    }
  }
  const h = job.header;
  const place = treePlace(st.folder, planDir, {
    category: row.category, name,
    sopClassUid: h ? h.fields.sopClassUid : row.sopClassUid ?? undefined, modality: h ? h.fields.modality : row.modality ?? undefined,
    seriesUid: h ? h.fields.seriesUid : row.seriesUid ?? undefined, sopInstanceUid: h ? h.fields.sopInstanceUid : row.sopInstanceUid ?? undefined,
  })!;
  if (!ctx.items.has(place.item)) return undefined;
  // A staged object is identified by its SOP Instance UID, not its staging path: a later plan of
  // the patient that fetches the same CT again must land on the same tree file (found identical),
  // not on a "~2" duplicate of every slice.
  const owner = row.staged && row.sopInstanceUid ? `sop:${row.sopInstanceUid}` : src;
  job.dest = uniqueDest(st, place.path, owner);
  return job;
}

/** The record of one job: copied into the tree under `out`, or (without `out`) resolved for copy-files. */
async function exportOne(ctx: ExportContext, job: Job, plan: PlanRecord | undefined): Promise<FileRecord> {
  const { row, src, dest } = job;
  // A DICOM object's category is `dicom` whatever the source called it (catalog views say image, rt-object…).
  const category = isDicomCategory(row.category) ? DICOM_CATEGORY : row.category!;
  const base: FileRecord = { type: "file", path: src, dest, category, patientId: row.patientId };
  if (plan?.planUid) base.planUid = plan.planUid;
  if (plan?.label) base.planLabel = plan.label;
  if (row.sopInstanceUid) base.sopInstanceUid = row.sopInstanceUid;
  if (row.modality) base.modality = row.modality;
  // The header has the last word on what the object is; the patient is the one being exported.
  if (job.header) Object.assign(base, job.header.fields, { patientId: row.patientId });
  const out = ctx.opts.out;
  const ledger = ctx.opts.ledger;
  // A staged object is at a path of this run's own (a temporary name in staging): no earlier run
  // exported from it, so the ledger is not asked (a rerun reuses whole retrievals instead).
  const known = out && !row.staged ? await ledger?.get("file", dest) : undefined;
  // A staged object is on a local disk (a synchronous stat is cheaper than a thread-pool trip);
  // a vault may be a file server, where a stat must not hold the event loop.
  const s = row.staged ? statSync(src, { throwIfNoEntry: false }) : await stat(src).catch(() => undefined);
  let sourceChanged = false;
  if (out && known?.status === "done" && known.sha256 && known.source === src && (!row.sha256 || row.sha256.toLowerCase() === known.sha256)) {
    // Done by an earlier run: still so when the tree has the file and the source is as it was then.
    // (A ledger row without the source's size and time, from an older rtexport, is checked by content below.)
    const target = join(out, dest);
    const t = await stat(target).catch(() => undefined);
    const sameSource = s !== undefined && known.source_bytes !== null && known.source_mtime_ms !== null &&
      s.size === known.source_bytes && Math.trunc(s.mtimeMs) === known.source_mtime_ms;
    sourceChanged = s !== undefined && known.source_bytes !== null && !sameSource;
    if (!t) ctx.report.message("warn", `"${target}" was exported by an earlier run but is missing from the tree: exporting it again`, `file "${src}"`);
    else if (t.size !== Number(known.bytes)) {
      throw new Error(`"${target}" changed in the tree since it was exported (${t.size} bytes, the ledger recorded ${known.bytes}); not overwritten`);
    } else if (sameSource) {
      if (job.headerError !== undefined) {
        // the source's header cannot be read; the tree's copy still says what the object is
        try {
          Object.assign(base, headerOf(readDicomFile(target)).fields, { patientId: row.patientId });
          job.headerError = undefined;
        } catch { /* reported below */ }
      }
      unreadable(ctx, job);
      const fields = { ...base, path: target, source: src, bytes: t.size };
      // Not read again unless asked: the record says the hash is the ledger's, not one of these bytes.
      if (!ctx.opts.verify) return { ...fields, ledgerSha256: known.sha256, copy: "done-before" };
      const now = await hashFile(target);
      if (now.sha256 !== known.sha256) {
        throw new Error(`"${target}" changed in the tree since it was exported (sha256 ${now.sha256}, the ledger recorded ${known.sha256}); not overwritten`);
      }
      return { ...fields, sha256: now.sha256, copy: "done-before" };
    }
  }
  if (!s) throw new Error("missing in the vault");
  unreadable(ctx, job);
  if (!out) {
    base.bytes = s.size;
    if (row.sha256) base.sha256 = row.sha256.toLowerCase();
    if (row.staged) base.staged = true;
    return base;
  }
  const target = join(out, dest);
  // A retrieved object staged under `out` is linked into the tree (flushed first; hashed as it
  // arrived) instead of being written a second time.
  const changed = () =>
    `the source changed since it was exported (${s.size} bytes, modified ${s.mtime.toISOString()}; the ledger recorded ${known!.source_bytes} bytes, ` +
    `modified ${new Date(known!.source_mtime_ms!).toISOString()})`;
  let outcome;
  try {
    outcome = row.staged
      ? await placeStagedFile(src, target, { expectedSha256: row.sha256 ?? undefined, signal: ctx.opts.signal, written: row.written })
      : await copyFileVerified(src, target, { expectedSha256: row.sha256 ?? undefined, signal: ctx.opts.signal });
  } catch (e) {
    throw sourceChanged ? new Error(`${changed()}: ${(e as Error).message}`) : e;
  }
  if (outcome.status === "conflict") {
    throw new Error(
      sourceChanged
        ? `${changed()} and the tree holds the earlier version at "${target}" (sha256 ${outcome.existingSha256}); not overwritten`
        : `a different file is already at "${target}" (sha256 ${outcome.existingSha256}); not overwritten`,
    );
  }
  await ledger?.queue({
    kind: "file", key: dest, status: "done", source: src, dest, bytes: outcome.bytes, sha256: outcome.sha256,
    patientId: row.patientId, planKey: row.group ?? (plan ? planKeyOf(plan) : undefined),
    sourceBytes: s.size, sourceMtimeMs: Math.trunc(s.mtimeMs),
  });
  return { ...base, path: target, source: src, bytes: outcome.bytes, sha256: outcome.sha256, copy: outcome.status };
}

/** A file the source calls DICOM that cannot be read as DICOM is still exported, and reported. */
function unreadable(ctx: ExportContext, job: Job): void {
  if (job.headerError !== undefined) {
    problem(ctx, `file "${job.src}"`, `the source says DICOM but it cannot be read: ${job.headerError}`, job.row.patientId);
  }
}

/**
 * Files a previous run retrieved from a peer for this group and put in the tree, when every one
 * is still there: a rerun then skips the retrieval (the expensive part) for that group. Without
 * `out`, the same from the tree copy-files writes (`handoff`), when copy-files copied every one.
 */
export async function reuseRetrieved(ctx: ExportContext, group: string): Promise<FileRecord[] | undefined> {
  const { out, ledger, handoff } = ctx.opts;
  if (!out && handoff) {
    const changed = (path: string, now: string, recorded: string, patientId: string | undefined) =>
      problem(ctx, `file "${path}"`, `changed in the tree since copy-files copied it (sha256 ${now}, the ledger recorded ${recorded}); not overwritten`, patientId);
    return await copiedBefore(handoff, group, ctx.opts.verify, changed).catch((e) => {
      ctx.report.message("warn", `Cannot read in the ledger what copy-files has copied (retrieving again): ${(e as Error).message}`);
      return undefined;
    });
  }
  if (!out || !ledger) return undefined;
  if ((await ledger.get("retrieval", group))?.status !== "done") return undefined;
  const records: FileRecord[] = [];
  for (const row of await ledger.doneFilesOf(group)) {
    const target = join(out, row.dest ?? row.key);
    const s = await stat(target).catch(() => undefined);
    if (!s || s.size !== Number(row.bytes)) return undefined;
    // Not read again unless asked: the record says the hash is the ledger's, not the file's now.
    const hash = ctx.opts.verify ? { sha256: (await hashFile(target)).sha256 } : { ledgerSha256: row.sha256 ?? undefined };
    if (ctx.opts.verify && hash.sha256 !== row.sha256) return undefined; // retrieved again: the changed file is then a conflict
    const rec: FileRecord = {
      type: "file", path: target, dest: row.key, bytes: s.size, ...hash, category: DICOM_CATEGORY,
      patientId: row.patient_id ?? undefined, copy: "done-before",
    };
    try {
      Object.assign(rec, headerOf(readDicomFile(target)).fields, { patientId: rec.patientId });
    } catch (e) {
      problem(ctx, `file "${target}"`, `it was retrieved as DICOM but cannot be read: ${(e as Error).message}`, rec.patientId);
    }
    records.push(rec);
  }
  return records;
}
