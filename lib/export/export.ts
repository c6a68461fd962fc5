import { stat } from "node:fs/promises";
import { basename, isAbsolute, join, resolve } from "node:path";
import { Catalog, type CatalogFileRow } from "../catalog/catalog.ts";
import { copyFileVerified, placeStagedFile } from "../copy/copy.ts";
import { readDicomFile } from "../dicom/reader.ts";
import { FolderAssigner, patientFolderName, sanitizeName } from "../layout/sanitize.ts";
import type { FileRecord, PatientRecord, PlanRecord, RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport, untilAborted, withTotal } from "../stage/stage.ts";
import { mapOrdered } from "../util/pool.ts";
import { type FolderFile, folderPatientFiles, folderPlanFiles, listFolder } from "../sources/folder.ts";
import { DEFAULT_ITEMS, type Item, placementOf, treePath } from "./layout.ts";
import type { DicomPlanFiles } from "./dicom_source.ts";

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
   * Fetches a plan's DICOM from a Q/R peer (selective retrieval). Used for plans listed from a
   * peer, and for catalog plans when given (their DICOM then comes from the peer, the other
   * items from the vault).
   */
  dicom?: {
    fetch(plan: PlanRecord, opts?: { images?: boolean }): Promise<DicomPlanFiles>;
    fetchPatientSeries?(patientId: string): Promise<DicomPlanFiles>;
  };
}

/** One file a source offers for export (a catalog row, or a file found in a folder). */
interface SourceFile {
  /** For messages: the catalog's file id or the path. */
  id: string;
  patientId: string;
  category: string | null;
  /** Absolute, or relative to the vault. */
  path: string | null;
  /** Name in the tree below the category folder; may hold a sub-folder (`CT_1.2.3/x.dcm`). */
  name?: string;
  sha256?: string | null;
  sopInstanceUid?: string | null;
  modality?: string | null;
  /** A temporary copy (retrieved from a peer) that the next stage may consume. */
  staged?: boolean;
  /** The ledger group of a retrieved file (so a rerun can reuse the whole group). */
  group?: string;
}

/** The tree name of a catalog's DICOM file, from its header (series folders for images). */
function catalogDicomName(path: string, category: string, rel: string): string {
  const file = rel.split("/").pop()!;
  try {
    const d = readDicomFile(path).dataset;
    return dicomName({
      category, modality: d.string("Modality"), seriesUid: d.string("SeriesInstanceUID"), sopInstanceUid: d.string("SOPInstanceUID"),
    }, file);
  } catch {
    return file; // unreadable here: the copy still goes ahead, and dicomFields reports it
  }
}

function fromCatalog(rows: CatalogFileRow[]): SourceFile[] {
  return rows.map((r) => ({
    id: r.file_id ?? r.vault_path ?? "(no id)", patientId: r.patient_id ?? "", category: r.category, path: r.vault_path,
    sha256: r.sha256, sopInstanceUid: r.sop_instance_uid, modality: r.modality,
  }));
}

/**
 * Tree names of DICOM files, the same whatever the source: `<Modality>_<SeriesUID>/<SOPInstanceUID>.dcm`
 * for images, `<Modality>_<SOPInstanceUID>.dcm` for a plan's RT objects.
 */
function dicomName(f: { category: string; modality?: string; seriesUid?: string; sopInstanceUid?: string }, fallback: string): string {
  const file = f.sopInstanceUid ? `${f.sopInstanceUid}.dcm` : fallback;
  if (f.category === "image") return `${f.modality ?? "OT"}_${f.seriesUid ?? "series"}/${file}`;
  return f.sopInstanceUid ? `${f.modality ?? "RT"}_${file}` : fallback;
}

function fromFolder(files: FolderFile[], patientId: string): SourceFile[] {
  return files.map((f) => ({
    id: f.path, patientId, category: f.category, path: f.path, sopInstanceUid: f.sopInstanceUid, modality: f.modality,
    name: dicomName(f, basename(f.path)),
  }));
}

const DICOM_CATEGORIES = new Set(["image", "rt-object", "dicom"]);

interface PatientState {
  folder: string;
  patientLevelDone: boolean;
}

/**
 * The export stage: takes `patient` and `plan` records (other records pass through unchanged)
 * and yields a `file` record for every file of each plan, placed in the per-patient/per-plan
 * tree (seed 000 §1.1). Patient and plan records pass through too, with the outcome on them
 * (`export: {status, files, bytes, failed}`).
 */
export async function* exportPlans(input: AsyncIterable<RtRecord>, opts: ExportPlanOptions = {}): AsyncGenerator<RtRecord> {
  const items = new Set(opts.items ?? DEFAULT_ITEMS);
  const catalogs = new Map<string, Catalog>();
  const folders = new FolderAssigner(opts.ledger ? await opts.ledger.folders() : []);
  const patients = new Map<string, PatientState>();
  const report = new StageReport("export-plan", opts);
  const problem = (item: string, reason: string, patientId?: string) => report.failed(item, reason, { patientId });
  const fileDone = (rec: FileRecord) => {
    const fields = { bytes: rec.bytes ?? 0, patientId: rec.patientId, planKey: rec.planUid };
    if (rec.copy === "done-before") report.skipped(`file "${rec.path}"`, "already-done", "exported by an earlier run", fields);
    else if (rec.copy === "identical") report.skipped(`file "${rec.path}"`, "identical", "the same file is already in the tree", fields);
    else report.done(`file "${rec.path}"`, fields);
  };

  async function catalogFor(rec: PatientRecord | PlanRecord): Promise<Catalog | undefined> {
    const url = opts.db ?? (typeof rec.source === "string" ? rec.source : undefined);
    const vault = opts.vault ?? (typeof rec.vault === "string" ? rec.vault : undefined);
    if (!url) return undefined;
    const key = `${url}\n${vault ?? ""}`;
    let c = catalogs.get(key);
    if (!c) {
      c = await Catalog.open(url, vault);
      catalogs.set(key, c);
    }
    return c;
  }

  async function patientState(rec: PatientRecord | PlanRecord, name?: PatientRecord["name"]): Promise<PatientState> {
    const id = rec.patientId;
    let st = patients.get(id);
    if (st) return st;
    const key = `${rec.source ?? ""}|${id}`;
    const wanted = patientFolderName({ family: name?.family, given: name?.given, patientId: id });
    const folder = folders.assign(key, wanted);
    await opts.ledger?.rememberFolder(key, folder);
    st = { folder, patientLevelDone: false };
    patients.set(id, st);
    return st;
  }

  // Two sources with the same file name in one folder (fraction 1 and 2 each with fraction.xml)
  // get name~2.ext, … in source order, which is stable from run to run.
  const destOwners = new Map<string, string>();
  function uniqueDest(wanted: string, src: string): string {
    let dest = wanted;
    const dot = wanted.lastIndexOf(".");
    const slash = wanted.lastIndexOf("/");
    const [stem, ext] = dot > slash + 1 ? [wanted.slice(0, dot), wanted.slice(dot)] : [wanted, ""];
    for (let n = 2; destOwners.has(dest.toLowerCase()) && destOwners.get(dest.toLowerCase()) !== src; n++) dest = `${stem}~${n}${ext}`;
    destOwners.set(dest.toLowerCase(), src);
    return dest;
  }

  const planFolders = new Map<string, FolderAssigner>();
  function planFolder(patientId: string, plan: PlanRecord): string {
    let a = planFolders.get(patientId);
    if (!a) planFolders.set(patientId, a = new FolderAssigner());
    const label = String(plan.label ?? plan.name ?? plan.planId ?? plan.planUid ?? "Plan");
    return a.assign(String(plan.planId ?? plan.planUid ?? label), sanitizeName(label));
  }

  async function* exportRows(
    rows: SourceFile[], vault: string | undefined, st: PatientState, planDir: string | undefined, plan: PlanRecord | undefined,
    tally: { files: number; bytes: number; failed: number }, group?: (row: SourceFile) => string | undefined,
  ): AsyncGenerator<FileRecord> {
    const jobs: { row: SourceFile; src: string; dest: string }[] = [];
    for (const row of rows) {
      const what = `file ${row.id} of patient ${row.patientId}`;
      if (!row.category || !row.path) {
        problem(what, `${!row.category ? "category" : "vault_path"} is NULL in the catalog`, row.patientId);
        tally.failed++;
        continue;
      }
      const placement = placementOf(row.category);
      if (!placement) {
        problem(what, `unknown category "${row.category}"`, row.patientId);
        tally.failed++;
        continue;
      }
      if (!items.has(placement.item)) continue;
      const rel = row.path.replace(/\\/g, "/");
      if (!vault && !isAbsolute(rel)) {
        problem(what, "no vault folder given (--vault) for a vault-relative path", row.patientId);
        tally.failed++;
        continue;
      }
      const src = isAbsolute(rel) ? rel : join(vault!, rel);
      const fileName = row.name ?? (DICOM_CATEGORIES.has(row.category) ? catalogDicomName(src, row.category, rel) : rel.split("/").pop()!);
      // A staged object is identified by its SOP Instance UID, not its staging path: a later plan of
      // the patient that fetches the same CT again must land on the same tree file (found identical),
      // not on a "~2" duplicate of every slice.
      const owner = row.staged && row.sopInstanceUid ? `sop:${row.sopInstanceUid}` : resolve(src);
      const dest = uniqueDest(treePath(st.folder, planDir, row.category, fileName)!, owner);
      jobs.push({ row, src: resolve(src), dest });
    }
    const results = mapOrdered(jobs, opts.parallel ?? 4, async (job) => {
      try {
        return { job, rec: await exportOne(job.row, job.src, job.dest, plan, group?.(job.row)) };
      } catch (e) {
        return { job, error: (e as Error).message };
      }
    });
    for await (const r of results) {
      if ("error" in r && r.error !== undefined) {
        tally.failed++;
        problem(`file "${r.job.src}"`, r.error, r.job.row.patientId);
        await opts.ledger?.queue({ kind: "file", key: r.job.dest, status: "failed", source: r.job.src, dest: r.job.dest, patientId: r.job.row.patientId, error: r.error });
        continue;
      }
      const rec = r.rec!;
      tally.files++;
      tally.bytes += rec.bytes ?? 0;
      fileDone(rec);
      yield rec;
    }
  }

  async function exportOne(row: SourceFile, src: string, dest: string, plan: PlanRecord | undefined, group: string | undefined): Promise<FileRecord> {
    const base: FileRecord = { type: "file", path: src, dest, category: row.category!, patientId: row.patientId };
    if (plan?.planUid) base.planUid = plan.planUid;
    if (plan?.label) base.planLabel = plan.label;
    if (row.sopInstanceUid) base.sopInstanceUid = row.sopInstanceUid;
    if (row.modality) base.modality = row.modality;
    if (!opts.out) {
      const s = await stat(src).catch(() => undefined);
      if (!s) throw new Error("missing in the vault");
      base.bytes = s.size;
      if (row.sha256) base.sha256 = row.sha256.toLowerCase();
      if (row.staged) base.staged = true;
      return base;
    }
    const target = join(opts.out, dest);
    const known = await opts.ledger?.get("file", dest);
    if (known?.status === "done" && known.sha256 && known.source === src && (!row.sha256 || row.sha256.toLowerCase() === known.sha256)) {
      const s = await stat(target).catch(() => undefined);
      if (s && s.size === Number(known.bytes)) {
        return { ...base, path: target, source: src, bytes: s.size, sha256: known.sha256, copy: "done-before", ...dicomFields(target, row) };
      }
    }
    const s = await stat(src).catch(() => undefined);
    if (!s) throw new Error("missing in the vault");
    // A retrieved object staged under --out is linked into the tree (hashed and flushed first)
    // instead of being written a second time.
    const place = row.staged ? placeStagedFile : copyFileVerified;
    const outcome = await place(src, target, { expectedSha256: row.sha256 ?? undefined });
    if (outcome.status === "conflict") {
      throw new Error(`a different file is already at "${target}" (sha256 ${outcome.existingSha256}); not overwritten`);
    }
    await opts.ledger?.queue({
      kind: "file", key: dest, status: "done", source: src, dest, bytes: outcome.bytes, sha256: outcome.sha256,
      patientId: row.patientId, planKey: group ?? (plan ? planKeyOf(plan) : undefined),
    });
    return { ...base, path: target, source: src, bytes: outcome.bytes, sha256: outcome.sha256, copy: outcome.status, ...dicomFields(target, row) };
  }

  function dicomFields(path: string, row: SourceFile): Partial<FileRecord> {
    const placement = placementOf(row.category ?? "");
    if (!placement || (placement.item !== "patient-dicom" && placement.item !== "rt-objects")) return {};
    try {
      const f = readDicomFile(path);
      const d = f.dataset;
      const out: Partial<FileRecord> = { transferSyntaxUid: f.transferSyntaxUid };
      const put = (k: keyof FileRecord, v: string | undefined) => { if (v) (out as Record<string, unknown>)[k] = v; };
      put("sopClassUid", d.string("SOPClassUID"));
      put("sopInstanceUid", d.string("SOPInstanceUID"));
      put("modality", d.string("Modality"));
      put("studyUid", d.string("StudyInstanceUID"));
      put("seriesUid", d.string("SeriesInstanceUID"));
      return out;
    } catch (e) {
      problem(`file "${path}"`, `catalog says DICOM but it cannot be read: ${(e as Error).message}`, row.patientId);
      return {};
    }
  }

  async function* exportPlan(plan: PlanRecord): AsyncGenerator<RtRecord> {
    const tally = { files: 0, bytes: 0, failed: 0 };
    const planKey = planKeyOf(plan);
    if (plan.approval && plan.approval !== "APPROVED" && !opts.includeUnapproved) {
      report.skipped(`plan "${plan.label ?? plan.planId}" of patient ${plan.patientId}`, "unapproved", `approval is ${plan.approval}; pass --include-unapproved to export it`, { patientId: plan.patientId });
      await opts.ledger?.record({ kind: "plan", key: planKey, status: "skipped", patientId: plan.patientId, error: `approval ${plan.approval}` });
      yield { ...plan, export: { status: "skipped", reason: `approval ${plan.approval}` } };
      return;
    }
    const planName = `plan "${plan.label ?? plan.planId ?? plan.planUid}" of patient ${plan.patientId}`;
    const folderRoot = folderOf(plan);
    const fromPeer = isDicomSource(plan);
    const catalog = folderRoot || fromPeer ? undefined : await catalogFor(plan);
    if (fromPeer && !opts.dicom) {
      problem(planName, "listed from a DICOM peer: give export-plan the peer (--host/--port/--called-aet or --peer) and --out", plan.patientId);
      yield { ...plan, export: { status: "failed", reason: "no peer" } };
      return;
    }
    if (!folderRoot && !fromPeer && (!catalog || plan.planId === undefined)) {
      problem(planName, "no source on the record (give --db, or pipe list-patients --from catalog or --from folder)", plan.patientId);
      yield { ...plan, export: { status: "failed", reason: "no source" } };
      return;
    }
    const st = await patientState(plan);
    yield* patientLevel(plan, st, tally);
    const dir = planFolder(plan.patientId, plan);
    let rows: SourceFile[];
    if (folderRoot) {
      const found = plan.planUid ? folderPlanFiles(folderRoot, plan.planUid) : undefined;
      if (!found) {
        problem(planName, `not found in folder "${folderRoot}"`, plan.patientId);
        rows = [];
        tally.failed++;
      } else {
        for (const m of found.missing) {
          problem(planName, `references ${m}, which is not in the source`, plan.patientId);
          tally.failed++;
        }
        rows = fromFolder(found.files, plan.patientId);
      }
    } else if (catalog) {
      rows = fromCatalog(await catalog.files(plan.patientId, String(plan.planId)));
      if (rows.length === 0) problem(planName, "the catalog lists no files for it", plan.patientId);
      if (opts.dicom) rows = rows.filter((r) => !DICOM_CATEGORIES.has(r.category ?? ""));
    } else {
      rows = [];
    }
    let staged: DicomPlanFiles | undefined;
    const group = `plan|${planKey}`;
    if (opts.dicom && (fromPeer || catalog)) {
      const wanted = [...items].some((i) => i === "rt-objects" || i === "patient-dicom");
      const reused = wanted ? await reuseRetrieved(group) : undefined;
      if (reused) {
        for (const r of reused) {
          tally.files++;
          tally.bytes += r.bytes ?? 0;
          const rec = { ...r, planUid: plan.planUid, planLabel: plan.label };
          fileDone(rec);
          yield rec;
        }
      } else if (wanted) {
        try {
          // Image series come with the patient (every series, referenced or not), not again per plan.
          staged = await opts.dicom.fetch(plan, { images: !opts.dicom.fetchPatientSeries });
        } catch (e) {
          problem(planName, `cannot retrieve its DICOM: ${(e as Error).message}`, plan.patientId);
          tally.failed++;
        }
        for (const m of staged?.missing ?? []) {
          problem(planName, `references ${m}, which did not arrive`, plan.patientId);
          tally.failed++;
        }
        if (staged) rows = [...fromFolder(staged.files, plan.patientId).map((r) => ({ ...r, staged: true, group })), ...rows];
      }
    }
    const failedBefore = tally.failed;
    try {
      yield* exportRows(rows, catalog?.vault, st, dir, plan, tally, (r) => r.group);
    } finally {
      staged?.done();
    }
    if (staged && tally.failed === failedBefore && opts.out) {
      await opts.ledger?.record({ kind: "retrieval", key: group, status: "done", patientId: plan.patientId });
    }
    const status = tally.failed ? "partial" : "done";
    await opts.ledger?.record({ kind: "plan", key: planKey, status: tally.failed ? "failed" : "done", patientId: plan.patientId, bytes: tally.bytes, error: tally.failed ? `${tally.failed} file(s) failed` : undefined });
    yield { ...plan, export: { status, files: tally.files, bytes: tally.bytes, failed: tally.failed, folder: `${st.folder}/${dir}` } };
  }

  function isDicomSource(rec: PatientRecord | PlanRecord): boolean {
    return typeof rec.source === "string" && rec.source.startsWith("dicom:");
  }

  function planKeyOf(plan: PlanRecord): string {
    return `${plan.source ?? ""}|${plan.planId ?? plan.planUid ?? plan.label}`;
  }

  /**
   * Files a previous run retrieved from a peer for this group and put in the tree, when every one
   * is still there: a rerun then skips the retrieval (the expensive part) for that group.
   */
  async function reuseRetrieved(group: string): Promise<FileRecord[] | undefined> {
    if (!opts.out || !opts.ledger) return undefined;
    if ((await opts.ledger.get("retrieval", group))?.status !== "done") return undefined;
    const out: FileRecord[] = [];
    for (const row of await opts.ledger.doneFilesOf(group)) {
      const target = join(opts.out, row.dest ?? row.key);
      const s = await stat(target).catch(() => undefined);
      if (!s || s.size !== Number(row.bytes)) return undefined;
      const rec: FileRecord = {
        type: "file", path: target, dest: row.key, bytes: s.size, sha256: row.sha256 ?? undefined,
        // Patient/DICOM/… holds the patient's series; Patient/Plan/DICOM/… a plan's own objects.
        category: row.key.split("/")[1] === "DICOM" ? "image" : "rt-object",
        patientId: row.patient_id ?? undefined, copy: "done-before",
      };
      out.push({ ...rec, ...dicomFields(target, { id: target, patientId: rec.patientId ?? "", category: "rt-object", path: target }) });
    }
    return out;
  }

  function folderOf(rec: PatientRecord | PlanRecord): string | undefined {
    return typeof rec.source === "string" && rec.source.startsWith("folder:") ? rec.source.slice(7) : undefined;
  }

  async function* patientLevel(rec: PatientRecord | PlanRecord, st: PatientState, tally: { files: number; bytes: number; failed: number }): AsyncGenerator<FileRecord> {
    if (st.patientLevelDone) return;
    st.patientLevelDone = true;
    const root = folderOf(rec);
    if (root) {
      yield* exportRows(fromFolder(folderPatientFiles(root, rec.patientId), rec.patientId), undefined, st, undefined, undefined, tally);
      return;
    }
    const catalog = isDicomSource(rec) ? undefined : await catalogFor(rec);
    let rows = catalog ? fromCatalog(await catalog.files(rec.patientId, null)) : [];
    let staged: DicomPlanFiles | undefined;
    if (opts.dicom?.fetchPatientSeries && (catalog || isDicomSource(rec))) {
      // With a DICOM peer, the patient's series come from the peer, the rest from the vault.
      rows = rows.filter((r) => !DICOM_CATEGORIES.has(r.category ?? ""));
      const group = `series|${rec.source ?? ""}|${rec.patientId}`;
      const reused = items.has("patient-dicom") ? await reuseRetrieved(group) : undefined;
      if (reused) {
        for (const r of reused) {
          tally.files++;
          tally.bytes += r.bytes ?? 0;
          fileDone(r);
          yield r;
        }
      } else if (items.has("patient-dicom")) {
        try {
          staged = await opts.dicom.fetchPatientSeries(rec.patientId);
          rows = [...fromFolder(staged.files, rec.patientId).map((r) => ({ ...r, staged: true, group })), ...rows];
        } catch (e) {
          problem(`patient ${rec.patientId}`, `cannot retrieve its image series: ${(e as Error).message}`, rec.patientId);
          tally.failed++;
        }
        for (const m of staged?.missing ?? []) {
          problem(`patient ${rec.patientId}`, `${m} did not arrive`, rec.patientId);
          tally.failed++;
        }
      }
    }
    const failedBefore = tally.failed;
    try {
      yield* exportRows(rows, catalog?.vault, st, undefined, undefined, tally, (r) => r.group);
    } finally {
      staged?.done();
    }
    if (staged && tally.failed === failedBefore && opts.out) {
      await opts.ledger?.record({ kind: "retrieval", key: `series|${rec.source ?? ""}|${rec.patientId}`, status: "done", patientId: rec.patientId });
    }
  }

  // Records are small: reading ahead of the export tells the number of patients once the input ends.
  const patientIds = new Set<string>();
  const records = withTotal(untilAborted(input, opts.signal), (r) => {
    if ((r.type === "patient" || r.type === "plan") && typeof r.patientId === "string") patientIds.add(r.patientId);
  }, () => report.progress({ patients: patientIds.size }));
  try {
    for await (const rec of records) {
      if (rec.type === "patient") {
        const p = rec as PatientRecord;
        const root = folderOf(p);
        const catalog = root || isDicomSource(p) ? undefined : await catalogFor(p);
        const st = await patientState(p, p.name);
        if (!catalog && !root) {
          yield rec;
          continue;
        }
        const tally = { files: 0, bytes: 0, failed: 0 };
        yield* patientLevel(p, st, tally);
        yield rec;
        if (typeof p.plans !== "number") {
          // A bare patient record means all of its plans.
          let any = false;
          const plans = root ? listFolder(root, { patientIds: [p.patientId] }) : catalog!.list({ patientIds: [p.patientId] });
          for await (const r of plans) {
            if (r.type === "plan") {
              any = true;
              yield* exportPlan(r as PlanRecord);
            }
          }
          if (!any) problem(`patient ${p.patientId}`, "has no plans to export", p.patientId);
        } else if (p.plans === 0) {
          problem(`patient ${p.patientId}`, "has no plans to export", p.patientId);
        }
        continue;
      }
      if (rec.type === "plan") {
        yield* exportPlan(rec as PlanRecord);
        continue;
      }
      yield rec;
    }
  } finally {
    for (const c of catalogs.values()) await c.close().catch(() => {});
    report.finish();
  }
}
