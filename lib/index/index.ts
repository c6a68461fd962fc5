/**
 * The folder index: an SQLite database (through kysely) of the DICOM files under a folder, at
 * the four Query/Retrieve levels, so `serve` answers C-FIND/C-MOVE/C-GET without reading files.
 * Scans are incremental: a file whose size and mtime did not change is not read again.
 */
import { type Dirent, readdirSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { type Kysely, sql } from "kysely";
import type { DataSet } from "../dicom/dataset.ts";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { openSqlite } from "../db/sqlite.ts";
import { INDEXED_ATTRIBUTES, type QueryLevel, REFERENCE_SEQUENCES } from "./attributes.ts";

export type IndexValue = string | number | null;
export type IndexRow = Record<string, IndexValue>;
export interface IndexDB {
  patient: IndexRow;
  study: IndexRow;
  series: IndexRow;
  instance: IndexRow;
}

/** The file of one indexed instance, as C-MOVE/C-GET need it. */
export interface IndexedFile {
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  bytes: number;
}

export interface IndexReport {
  scanned: number;
  added: number;
  updated: number;
  unchanged: number;
  removed: number;
  /** Files that are not DICOM or could not be read, with the reason (they are left alone). */
  failed: { path: string; error: string }[];
}

/** Name of the index database inside the served folder (dot-files are never indexed). */
export const INDEX_FILE_NAME = ".rtexport-index.sqlite";

const LEVEL_TABLE: Record<QueryLevel, keyof IndexDB> = { PATIENT: "patient", STUDY: "study", SERIES: "series", IMAGE: "instance" };
const LEVEL_KEY: Record<QueryLevel, string> = { PATIENT: "patient_id", STUDY: "study_uid", SERIES: "series_uid", IMAGE: "path" };
const PARENT_KEY: Partial<Record<QueryLevel, string>> = { STUDY: "patient_id", SERIES: "study_uid", IMAGE: "series_uid" };

function columnsOf(level: QueryLevel): string[] {
  const cols = INDEXED_ATTRIBUTES.filter((a) => a.level === level).map((a) => a.column);
  const parent = PARENT_KEY[level];
  if (parent && !cols.includes(parent)) cols.unshift(parent);
  return cols;
}

function multiValue(ds: DataSet, tag: number): string | null {
  const v = ds.strings(tag).join("\\");
  return v === "" ? null : v;
}

function referencedUids(ds: DataSet, seqTag: number): string | null {
  const uids = ds.items(seqTag).map((item) => item.string(0x00081155)).filter((u): u is string => !!u);
  return uids.length ? uids.join("\\") : null;
}

/** The index rows (one per level) describing a data set. Exported for tests. */
export function rowsOf(ds: DataSet): Record<QueryLevel, IndexRow> {
  const rows: Record<QueryLevel, IndexRow> = { PATIENT: {}, STUDY: {}, SERIES: {}, IMAGE: {} };
  for (const a of INDEXED_ATTRIBUTES) rows[a.level][a.column] = multiValue(ds, a.tag);
  rows.PATIENT.patient_id ??= "";
  rows.STUDY.patient_id = rows.PATIENT.patient_id;
  rows.SERIES.study_uid = rows.STUDY.study_uid;
  rows.IMAGE.series_uid = rows.SERIES.series_uid;
  for (const r of REFERENCE_SEQUENCES) rows.IMAGE[r.column] = referencedUids(ds, r.tag);
  // Treatment records and RT images reference plans through the same sequence; doses too.
  return rows;
}

function isDotName(name: string): boolean {
  return name.startsWith(".");
}

/** Every regular file under `dir`, skipping dot-files and dot-directories (the index, temp files). */
function* walk(dir: string): Generator<string> {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (isDotName(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

/** A folder of DICOM files and its SQLite index. */
export class FolderIndex {
  readonly dir: string;
  readonly db: Kysely<IndexDB>;

  private constructor(dir: string, db: Kysely<IndexDB>) {
    this.dir = dir;
    this.db = db;
  }

  /** Opens (creating when needed) the index of `dir`; the database lives in `dir/.rtexport-index.sqlite` unless `dbPath` says otherwise. */
  static async open(dir: string, opts: { dbPath?: string } = {}): Promise<FolderIndex> {
    const root = resolve(dir);
    const db = openSqlite<IndexDB>(opts.dbPath ?? join(root, INDEX_FILE_NAME));
    const index = new FolderIndex(root, db);
    try {
      await index.createSchema();
    } catch (e) {
      await db.destroy();
      throw new Error(`Cannot create the index of "${dir}": ${(e as Error).message}`);
    }
    return index;
  }

  private async createSchema(): Promise<void> {
    const make = async (level: QueryLevel, extra: (b: ReturnType<Kysely<IndexDB>["schema"]["createTable"]>) => ReturnType<Kysely<IndexDB>["schema"]["createTable"]>) => {
      let b = this.db.schema.createTable(LEVEL_TABLE[level]).ifNotExists();
      for (const c of columnsOf(level)) {
        b = c === LEVEL_KEY[level] ? b.addColumn(c, "text", (col) => col.primaryKey()) : b.addColumn(c, "text");
      }
      await extra(b).execute();
    };
    await make("PATIENT", (b) => b);
    await make("STUDY", (b) => b);
    await make("SERIES", (b) => b);
    await make("IMAGE", (b) => {
      let t = b.addColumn("path", "text", (c) => c.primaryKey());
      for (const r of REFERENCE_SEQUENCES) t = t.addColumn(r.column, "text");
      return t.addColumn("bytes", "integer").addColumn("mtime_ms", "integer").addColumn("transfer_syntax_uid", "text");
    });
    const s = this.db.schema;
    await s.createIndex("study_patient").ifNotExists().on("study").column("patient_id").execute();
    await s.createIndex("series_study").ifNotExists().on("series").column("study_uid").execute();
    await s.createIndex("instance_series").ifNotExists().on("instance").column("series_uid").execute();
    await s.createIndex("instance_sop").ifNotExists().on("instance").column("sop_instance_uid").execute();
  }

  /** Stored (relative, `/`-separated) form of a path under the folder. */
  private relativePath(path: string): string {
    const abs = isAbsolute(path) ? path : resolve(this.dir, path);
    return relative(this.dir, abs).split(sep).join("/");
  }

  /** Absolute path of a stored path. */
  absolutePath(stored: string): string {
    return join(this.dir, ...stored.split("/"));
  }

  /**
   * Records one file (typically one just stored by the SCP). `file` may be passed when the
   * caller already parsed it; otherwise the header is read.
   */
  async addInstance(path: string, file?: DicomFile): Promise<void> {
    const f = file ?? readDicomFile(path);
    const st = statSync(path);
    await this.db.transaction().execute(async (tx) => {
      await upsert(tx, this.relativePath(path), f, st.size, Math.floor(st.mtimeMs));
    });
  }

  /** Scans the folder: indexes new and changed files, forgets removed ones. */
  async indexFolder(): Promise<IndexReport> {
    const report: IndexReport = { scanned: 0, added: 0, updated: 0, unchanged: 0, removed: 0, failed: [] };
    const known = new Map<string, { bytes: number; mtime: number }>();
    for (const r of await this.db.selectFrom("instance").select(["path", "bytes", "mtime_ms"]).execute()) {
      known.set(String(r.path), { bytes: Number(r.bytes), mtime: Number(r.mtime_ms) });
    }
    const seen = new Set<string>();
    let batch: { rel: string; file: DicomFile; bytes: number; mtime: number }[] = [];
    const flush = async () => {
      if (!batch.length) return;
      const b = batch;
      batch = [];
      await this.db.transaction().execute(async (tx) => {
        for (const x of b) await upsert(tx, x.rel, x.file, x.bytes, x.mtime);
      });
    };
    for (const abs of walk(this.dir)) {
      report.scanned++;
      const rel = this.relativePath(abs);
      seen.add(rel);
      let st;
      try {
        st = statSync(abs);
      } catch (e) {
        report.failed.push({ path: abs, error: (e as Error).message });
        continue;
      }
      const mtime = Math.floor(st.mtimeMs);
      const prev = known.get(rel);
      if (prev && prev.bytes === st.size && prev.mtime === mtime) {
        report.unchanged++;
        continue;
      }
      let file: DicomFile;
      try {
        file = readDicomFile(abs);
        if (!file.dataset.string(0x00080018)) throw new Error("no SOP Instance UID");
      } catch (e) {
        report.failed.push({ path: abs, error: (e as Error).message });
        if (prev) known.delete(rel), seen.delete(rel); // a file that became unreadable is forgotten below
        continue;
      }
      if (prev) report.updated++;
      else report.added++;
      batch.push({ rel, file, bytes: st.size, mtime });
      if (batch.length >= 500) await flush();
    }
    await flush();
    const gone = [...known.keys()].filter((p) => !seen.has(p));
    if (gone.length) {
      await this.db.transaction().execute(async (tx) => {
        for (let i = 0; i < gone.length; i += 500) {
          await tx.deleteFrom("instance").where("path", "in", gone.slice(i, i + 500)).execute();
        }
        await prune(tx);
      });
      report.removed = gone.length;
    }
    return report;
  }

  /** Files of the given SOP Instance UIDs (one per UID; duplicates in the folder are collapsed). */
  async filesOf(sopInstanceUids: string[]): Promise<IndexedFile[]> {
    const out = new Map<string, IndexedFile>();
    for (let i = 0; i < sopInstanceUids.length; i += 500) {
      const rows = await this.db.selectFrom("instance")
        .select(["path", "sop_class_uid", "sop_instance_uid", "transfer_syntax_uid", "bytes"])
        .where("sop_instance_uid", "in", sopInstanceUids.slice(i, i + 500)).execute();
      for (const r of rows) {
        const uid = String(r.sop_instance_uid);
        if (!out.has(uid)) {
          out.set(uid, {
            path: this.absolutePath(String(r.path)),
            sopClassUid: String(r.sop_class_uid ?? ""),
            sopInstanceUid: uid,
            transferSyntaxUid: String(r.transfer_syntax_uid ?? ""),
            bytes: Number(r.bytes),
          });
        }
      }
    }
    return [...out.values()];
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

async function upsert(tx: Kysely<IndexDB>, rel: string, file: DicomFile, bytes: number, mtime: number): Promise<void> {
  const rows = rowsOf(file.dataset);
  rows.IMAGE.path = rel;
  rows.IMAGE.bytes = bytes;
  rows.IMAGE.mtime_ms = mtime;
  rows.IMAGE.transfer_syntax_uid = file.transferSyntaxUid;
  rows.STUDY.study_uid ??= "";
  rows.SERIES.series_uid ??= "";
  for (const level of ["PATIENT", "STUDY", "SERIES", "IMAGE"] as const) {
    const row = rows[level];
    const key = LEVEL_KEY[level];
    // Objects of one study disagree on which optional attributes they carry (a dose has no
    // StudyTime when the CT has one): a value once known is kept rather than erased by a null.
    const table = LEVEL_TABLE[level];
    const update: Record<string, unknown> = {};
    for (const col of Object.keys(row)) {
      if (col === key) continue;
      update[col] = level === "IMAGE" ? sql.ref(`excluded.${col}`) : sql`coalesce(${sql.ref(`excluded.${col}`)}, ${sql.ref(`${table}.${col}`)})`;
    }
    await tx.insertInto(table).values(row)
      // deno-lint-ignore no-explicit-any
      .onConflict((oc) => oc.column(key).doUpdateSet(update as any))
      .execute();
  }
}

async function prune(tx: Kysely<IndexDB>): Promise<void> {
  await tx.deleteFrom("series").where("series_uid", "not in", tx.selectFrom("instance").select("series_uid").where("series_uid", "is not", null)).execute();
  await tx.deleteFrom("study").where("study_uid", "not in", tx.selectFrom("series").select("study_uid").where("study_uid", "is not", null)).execute();
  await tx.deleteFrom("patient").where("patient_id", "not in", tx.selectFrom("study").select("patient_id").where("patient_id", "is not", null)).execute();
}

/** Opens the index of `dir` and brings it up to date; the caller closes it. */
export async function indexFolder(dir: string, opts: { dbPath?: string } = {}): Promise<{ index: FolderIndex; report: IndexReport }> {
  const index = await FolderIndex.open(dir, opts);
  try {
    return { index, report: await index.indexFolder() };
  } catch (e) {
    await index.close();
    throw e;
  }
}
