/**
 * The folder index: an SQLite database (through kysely) of the DICOM files under a folder, at
 * the four Query/Retrieve levels, so `serve` answers C-FIND/C-MOVE/C-GET without reading files.
 * Scans are incremental: a file whose size and mtime did not change is not read again.
 *
 * Studies and series are keyed by (PatientID, UID), as Orthanc keys them: an object that carries
 * another patient's Study Instance UID (an attack, or an anonymized copy that kept the original
 * UIDs) makes a study of its own under its own patient and never moves the first one. `serve`
 * refuses such an object before it gets here (`conflictOf`); files found in the folder are kept
 * apart and counted (`IndexReport.conflicts`).
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
  /** Studies or series whose UID is held under more than one PatientID (kept apart; see the module note). */
  conflicts: number;
}

/** What the index already holds for the UIDs of an object about to be stored. */
export interface IndexedInstance {
  path: string;
  patientId: string;
  studyUid: string;
  seriesUid: string;
}

/** Name of the index database inside the served folder (dot-files are never indexed). */
export const INDEX_FILE_NAME = ".rtexport-index.sqlite";

/** Bumped when the tables change; an index of another version is rebuilt from the files (it is a cache). */
const SCHEMA_VERSION = 3;

const LEVEL_TABLE: Record<QueryLevel, keyof IndexDB> = { PATIENT: "patient", STUDY: "study", SERIES: "series", IMAGE: "instance" };
/** Primary key of each level's table: studies and series are told apart by patient too. */
const LEVEL_KEY: Record<QueryLevel, string[]> = {
  PATIENT: ["patient_id"], STUDY: ["patient_id", "study_uid"], SERIES: ["patient_id", "series_uid"], IMAGE: ["path"],
};
/** Columns that link a row to its parent (and the patient, for the keys above). */
const PARENT_KEYS: Partial<Record<QueryLevel, string[]>> = {
  STUDY: ["patient_id"], SERIES: ["patient_id", "study_uid"], IMAGE: ["patient_id", "study_uid", "series_uid"],
};

function columnsOf(level: QueryLevel): string[] {
  const cols = INDEXED_ATTRIBUTES.filter((a) => a.level === level).map((a) => a.column);
  for (const parent of [...(PARENT_KEYS[level] ?? [])].reverse()) if (!cols.includes(parent)) cols.unshift(parent);
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
  rows.SERIES.patient_id = rows.PATIENT.patient_id;
  rows.SERIES.study_uid = rows.STUDY.study_uid;
  rows.IMAGE.patient_id = rows.PATIENT.patient_id;
  rows.IMAGE.study_uid = rows.STUDY.study_uid;
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
    const version = Number((await sql<{ user_version: number }>`pragma user_version`.execute(this.db)).rows[0]?.user_version ?? 0);
    if (version !== SCHEMA_VERSION) {
      // An index of an older layout (studies keyed by UID alone): dropped and rebuilt by the next scan.
      for (const t of ["instance", "series", "study", "patient"]) await this.db.schema.dropTable(t).ifExists().execute();
      await sql.raw(`pragma user_version = ${SCHEMA_VERSION}`).execute(this.db);
    }
    const make = async (level: QueryLevel, extra: (b: ReturnType<Kysely<IndexDB>["schema"]["createTable"]>) => ReturnType<Kysely<IndexDB>["schema"]["createTable"]>) => {
      let b = this.db.schema.createTable(LEVEL_TABLE[level]).ifNotExists();
      const key = LEVEL_KEY[level];
      for (const c of columnsOf(level)) {
        b = key.length === 1 && c === key[0] ? b.addColumn(c, "text", (col) => col.primaryKey()) : b.addColumn(c, "text");
      }
      if (key.length > 1) b = b.addPrimaryKeyConstraint(`${LEVEL_TABLE[level]}_key`, key as never);
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
    await s.createIndex("study_uid").ifNotExists().on("study").column("study_uid").execute();
    await s.createIndex("series_study").ifNotExists().on("series").columns(["study_uid", "patient_id"]).execute();
    await s.createIndex("series_uid").ifNotExists().on("series").column("series_uid").execute();
    await s.createIndex("instance_series").ifNotExists().on("instance").columns(["series_uid", "patient_id"]).execute();
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
    const report: IndexReport = { scanned: 0, added: 0, updated: 0, unchanged: 0, removed: 0, failed: [], conflicts: 0 };
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
    report.conflicts = await this.conflicts();
    return report;
  }

  /** Study and series UIDs held under more than one PatientID. */
  async conflicts(): Promise<number> {
    const r = await sql<{ n: number }>`select
      (select count(*) from (select study_uid from study where study_uid != '' group by study_uid having count(*) > 1)) +
      (select count(*) from (select series_uid from series where series_uid != '' group by series_uid having count(*) > 1)) as n`
      .execute(this.db);
    return Number(r.rows[0]?.n ?? 0);
  }

  /**
   * Why an object with these UIDs may not join the index without mixing patients, or undefined:
   * its study (or series) is held for another patient, or its series in another study. The text
   * names UIDs, never the other patient.
   */
  async conflictOf(ids: { patientId: string; studyUid?: string; seriesUid?: string }): Promise<string | undefined> {
    if (ids.studyUid) {
      const other = await this.db.selectFrom("study").select("patient_id").where("study_uid", "=", ids.studyUid)
        .where("patient_id", "!=", ids.patientId).limit(1).executeTakeFirst();
      if (other) return `Study Instance UID ${ids.studyUid} is already held for another patient`;
    }
    if (ids.seriesUid) {
      const other = await this.db.selectFrom("series").select(["patient_id", "study_uid"]).where("series_uid", "=", ids.seriesUid)
        .where((eb) => eb.or([eb("patient_id", "!=", ids.patientId), eb("study_uid", "!=", ids.studyUid ?? "")])).limit(1).executeTakeFirst();
      if (other) {
        return other.patient_id !== ids.patientId
          ? `Series Instance UID ${ids.seriesUid} is already held for another patient`
          : `Series Instance UID ${ids.seriesUid} is already held in study ${other.study_uid}`;
      }
    }
    return undefined;
  }

  /** Where the index holds an instance of this SOP Instance UID, if it does. */
  async instanceOf(sopInstanceUid: string): Promise<IndexedInstance | undefined> {
    const r = await this.db.selectFrom("instance").select(["path", "patient_id", "study_uid", "series_uid"])
      .where("sop_instance_uid", "=", sopInstanceUid).limit(1).executeTakeFirst();
    if (!r) return undefined;
    return { path: this.absolutePath(String(r.path)), patientId: String(r.patient_id ?? ""), studyUid: String(r.study_uid ?? ""), seriesUid: String(r.series_uid ?? "") };
  }

  /** The SOP Instance UID of the file indexed at `path`, if it is indexed. */
  async uidAt(path: string): Promise<string | undefined> {
    const r = await this.db.selectFrom("instance").select("sop_instance_uid").where("path", "=", this.relativePath(path)).executeTakeFirst();
    return r ? String(r.sop_instance_uid ?? "") : undefined;
  }

  /** Forgets the file at `path` (and the studies and series left empty). */
  async removeInstance(path: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom("instance").where("path", "=", this.relativePath(path)).execute();
      await prune(tx);
    });
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
  // Keys are never NULL (a NULL never joins): a missing UID is the empty one, at every level.
  rows.STUDY.study_uid ??= "";
  rows.SERIES.series_uid ??= "";
  rows.SERIES.study_uid = rows.IMAGE.study_uid = rows.STUDY.study_uid;
  rows.IMAGE.series_uid = rows.SERIES.series_uid;
  for (const level of ["PATIENT", "STUDY", "SERIES", "IMAGE"] as const) {
    const row = rows[level];
    const key = LEVEL_KEY[level];
    // Objects of one study disagree on which optional attributes they carry (a dose has no
    // StudyTime when the CT has one): a value once known is kept rather than erased by a null.
    const table = LEVEL_TABLE[level];
    const update: Record<string, unknown> = {};
    for (const col of Object.keys(row)) {
      if (key.includes(col)) continue;
      update[col] = level === "IMAGE" ? sql.ref(`excluded.${col}`) : sql`coalesce(${sql.ref(`excluded.${col}`)}, ${sql.ref(`${table}.${col}`)})`;
    }
    await tx.insertInto(table).values(row)
      // deno-lint-ignore no-explicit-any
      .onConflict((oc) => oc.columns(key as any).doUpdateSet(update as any))
      .execute();
  }
}

async function prune(tx: Kysely<IndexDB>): Promise<void> {
  await sql`delete from series where not exists (select 1 from instance i where i.series_uid = series.series_uid and i.patient_id = series.patient_id)`.execute(tx);
  await sql`delete from study where not exists (select 1 from series s where s.study_uid = study.study_uid and s.patient_id = study.patient_id)`.execute(tx);
  await sql`delete from patient where not exists (select 1 from study s where s.patient_id = patient.patient_id)`.execute(tx);
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
