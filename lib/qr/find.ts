/**
 * Query/Retrieve over a {@link FolderIndex}: C-FIND matching at PATIENT/STUDY/SERIES/IMAGE level
 * in the Patient Root and Study Root models, and the instance selection of C-MOVE/C-GET.
 */
import { sql } from "kysely";
import { DataSet, textElement } from "../dicom/dataset.ts";
import { dictionaryVr } from "../dicom/dictionary.ts";
import { characterSet } from "../dicom/charset.ts";
import { isPrivateTag, type Tag } from "../dicom/tag.ts";
import {
  ATTRIBUTE_BY_TAG, COMPUTED_ATTRIBUTES, type IndexedAttribute, type QueryLevel, LEVELS, levelRank, REFERENCE_SEQUENCES,
} from "../index/attributes.ts";
import type { FolderIndex, IndexedFile, IndexRow } from "../index/index.ts";
import { isExactKey, matchValue, normalizeQueryValue } from "./match.ts";

/** Information model of a Q/R request: Patient Root or Study Root. */
export type QueryModel = "PATIENT" | "STUDY";

/** A request the SCP must refuse, with the DIMSE status to refuse it with. */
export class QueryError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = "QueryError";
    this.status = status;
  }
}

/** PS3.4 C.4.1.1.4: identifier does not match SOP class. */
export const STATUS_IDENTIFIER_MISMATCH = 0xa900;
/** PS3.4 C.4.1.1.4: unable to process. */
export const STATUS_UNABLE_TO_PROCESS = 0xc000;

const QUERY_RETRIEVE_LEVEL = 0x00080052;
const SPECIFIC_CHARACTER_SET = 0x00080005;
const REFERENCED_SOP_INSTANCE_UID = 0x00081155;

interface QueryKey {
  tag: Tag;
  vr: string;
  /** Decoded value ("" for universal matching). */
  value: string;
  attribute?: IndexedAttribute;
  sequence?: { column: string; uid: string };
}

/** The Query/Retrieve Level of an identifier, checked against the information model. */
export function queryLevel(identifier: DataSet, model: QueryModel): QueryLevel {
  const raw = identifier.string(QUERY_RETRIEVE_LEVEL)?.trim().toUpperCase();
  if (!raw) throw new QueryError("Query/Retrieve Level (0008,0052) is missing", STATUS_IDENTIFIER_MISMATCH);
  const level = raw as QueryLevel;
  if (!LEVELS.includes(level)) throw new QueryError(`Unknown Query/Retrieve Level "${raw}"`, STATUS_IDENTIFIER_MISMATCH);
  if (model === "STUDY" && level === "PATIENT") {
    throw new QueryError("PATIENT level is not part of the Study Root model", STATUS_IDENTIFIER_MISMATCH);
  }
  return level;
}

function keysOf(identifier: DataSet, level: QueryLevel): QueryKey[] {
  const keys: QueryKey[] = [];
  for (const el of identifier.sorted()) {
    const tag = el.tag;
    if (tag === QUERY_RETRIEVE_LEVEL || tag === SPECIFIC_CHARACTER_SET) continue;
    if ((tag & 0xffff) === 0 || (tag >>> 16) === 0x0002 || isPrivateTag(tag)) continue;
    const seq = REFERENCE_SEQUENCES.find((r) => r.tag === tag);
    if (seq) {
      const uid = el.items?.[0]?.string(REFERENCED_SOP_INSTANCE_UID) ?? "";
      keys.push({ tag, vr: "SQ", value: "", sequence: { column: seq.column, uid: level === "IMAGE" ? uid : "" } });
      continue;
    }
    const a = ATTRIBUTE_BY_TAG.get(tag);
    const vr = a?.vr ?? (el.vr && el.vr !== "UN" ? el.vr : dictionaryVr(tag));
    const value = el.vr === "SQ" ? "" : identifier.strings(tag).join("\\");
    // Keys below the requested level are not matched (PS3.4 C.4.1.2.1: they are returned empty).
    const usable = a && levelRank(a.level) <= levelRank(level) ? a : undefined;
    keys.push({ tag, vr, value: usable ? normalizeQueryValue(value, vr) : "", attribute: usable });
  }
  return keys;
}

const TABLES: Record<QueryLevel, string> = { PATIENT: "patient", STUDY: "study", SERIES: "series", IMAGE: "instance" };

/** Rows read from SQLite at a time: what one query holds at most besides its matches. */
const ROW_BATCH = 2000;

/** PS3.4 C.4.1.1.4: C-FIND Refused: Out of Resources. */
export const STATUS_FIND_OUT_OF_RESOURCES = 0xa700;

/** Default of `maxMatches`: C-FIND matches kept for one query. */
export const DEFAULT_MAX_FIND_MATCHES = 50_000;

// deno-lint-ignore no-explicit-any
type Query = any;

/** The tables down to `level`, joined (studies and series belong to one patient: the key is (PatientID, UID)). */
function joined(index: FolderIndex, level: QueryLevel): Query {
  let q: Query = index.db.selectFrom("patient");
  if (levelRank(level) >= 1) q = q.innerJoin("study", "study.patient_id", "patient.patient_id");
  if (levelRank(level) >= 2) {
    // deno-lint-ignore no-explicit-any
    q = q.innerJoin("series", (j: any) => j.onRef("series.study_uid", "=", "study.study_uid").onRef("series.patient_id", "=", "study.patient_id"));
  }
  if (levelRank(level) >= 3) {
    // deno-lint-ignore no-explicit-any
    q = q.innerJoin("instance", (j: any) => j.onRef("instance.series_uid", "=", "series.series_uid").onRef("instance.patient_id", "=", "series.patient_id"));
  }
  return q;
}

/**
 * Rows of the joined tables down to `level`, narrowed in SQL by exact keys, then matched in JS,
 * read in batches so that a query costs its matches, not the folder. More than `maxMatches`
 * matches: refused with 0xA700 (a peer cannot make the node hold the whole index).
 */
async function matchingRows(index: FolderIndex, level: QueryLevel, keys: QueryKey[], maxMatches = Infinity): Promise<IndexRow[]> {
  const deep = TABLES[level];
  const rowid = sql`${sql.ref(deep)}.rowid`;
  let base: Query = joined(index, level).selectAll(LEVELS.slice(0, levelRank(level) + 1).map((l) => TABLES[l])).select(rowid.as("_rowid"));
  for (const k of keys) {
    if (!k.attribute || !isExactKey(k.vr, k.value)) continue;
    const col = `${TABLES[k.attribute.level]}.${k.attribute.column}`;
    if (COMPUTED_ATTRIBUTES.includes(k.attribute)) continue;
    const values = k.vr === "UI" ? k.value.split("\\") : [k.value];
    base = base.where(col, "in", values);
  }
  const computed = keys.some((k) => k.attribute && COMPUTED_ATTRIBUTES.includes(k.attribute)) ? await aggregates(index, level) : undefined;
  const matches = (row: IndexRow) =>
    keys.every((k) => {
      if (k.sequence) {
        if (!k.sequence.uid) return true;
        return matchValue("UI", k.sequence.uid, row[k.sequence.column] as string | null);
      }
      if (!k.attribute) return true;
      const v = row[k.attribute.column];
      return matchValue(k.vr, k.value, v === null || v === undefined ? null : String(v));
    });
  const out: IndexRow[] = [];
  const seen = level === "IMAGE" ? new Set<string>() : undefined;
  let last: number | undefined;
  for (;;) {
    let q = base;
    if (last !== undefined) q = q.where(rowid, ">", last);
    const batch = (await q.orderBy(rowid).limit(ROW_BATCH).execute()) as IndexRow[];
    for (const row of batch) {
      if (computed) computed(row);
      if (!matches(row)) continue;
      if (seen) {
        const uid = String(row.sop_instance_uid);
        if (seen.has(uid)) continue;
        seen.add(uid);
      }
      delete row._rowid;
      out.push(row);
      if (out.length > maxMatches) {
        throw new QueryError(`More than ${maxMatches} matches: narrow the query`, STATUS_FIND_OUT_OF_RESOURCES);
      }
    }
    if (batch.length < ROW_BATCH) break;
    last = Number(batch[batch.length - 1]._rowid);
  }
  return out;
}

/** The computed keys of a level (counts, modalities, classes), as a function that fills them into a row. */
async function aggregates(index: FolderIndex, level: QueryLevel): Promise<((row: IndexRow) => void) | undefined> {
  if (level === "IMAGE") return undefined;
  const keyCols = level === "PATIENT" ? ["patient.patient_id"] : level === "STUDY" ? ["study.patient_id", "study.study_uid"] : ["series.patient_id", "series.series_uid"];
  const agg = await joined(index, "IMAGE")
    .select([
      ...keyCols.map((c, i) => sql<string>`${sql.ref(c)}`.as(`k${i}`)),
      sql<number>`count(distinct study.study_uid)`.as("n_studies"),
      sql<number>`count(distinct series.series_uid)`.as("n_series"),
      sql<number>`count(distinct instance.sop_instance_uid)`.as("n_instances"),
      sql<string>`group_concat(distinct series.modality)`.as("modalities"),
      sql<string>`group_concat(distinct instance.sop_class_uid)`.as("classes"),
    ])
    .groupBy(keyCols.map((c) => sql.ref(c)))
    .execute() as Record<string, unknown>[];
  const keyOf = (r: Record<string, unknown>, cols: string[]) => cols.map((c) => String(r[c] ?? "")).join("\u0000");
  const byKey = new Map(agg.map((a) => [keyOf(a, keyCols.map((_, i) => `k${i}`)), a]));
  const rowCols = level === "PATIENT" ? ["patient_id"] : level === "STUDY" ? ["patient_id", "study_uid"] : ["patient_id", "series_uid"];
  return (row) => {
    const a = byKey.get(keyOf(row, rowCols));
    const n = (x: unknown) => String(Number(x ?? 0));
    const list = (x: unknown) => (x ? String(x).split(",").filter(Boolean).sort().join("\\") : null);
    row.n_patient_studies = n(a?.n_studies);
    row.n_patient_series = n(a?.n_series);
    row.n_patient_instances = n(a?.n_instances);
    row.modalities_in_study = list(a?.modalities);
    row.sop_classes_in_study = list(a?.classes);
    row.n_study_series = n(a?.n_series);
    row.n_study_instances = n(a?.n_instances);
    row.n_series_instances = n(a?.n_instances);
  };
}

const element = textElement;

function responseOf(row: IndexRow, keys: QueryKey[], level: QueryLevel): DataSet {
  const ds = new DataSet({ littleEndian: true, explicitVR: true }, characterSet(["ISO_IR 192"]));
  let nonAscii = false;
  const put = (tag: Tag, vr: string, text: string) => {
    if (/[\u0080-\uffff]/.test(text)) nonAscii = true;
    ds.set(element(tag, vr, text));
  };
  put(QUERY_RETRIEVE_LEVEL, "CS", level);
  for (const k of keys) {
    if (k.sequence) {
      const uids = row[k.sequence.column] ? String(row[k.sequence.column]).split("\\") : [];
      const items = uids.map((uid) => {
        const item = new DataSet();
        item.set(element(REFERENCED_SOP_INSTANCE_UID, "UI", uid));
        return item;
      });
      ds.set({ tag: k.tag, vr: "SQ", items, offset: 0, length: 0 });
      continue;
    }
    const v = k.attribute ? row[k.attribute.column] : null;
    put(k.tag, k.vr === "SQ" ? "SQ" : k.vr, v === null || v === undefined ? "" : String(v));
  }
  // The level's unique key is always returned so the SCU can go one level down.
  const unique: Record<QueryLevel, [Tag, string]> = {
    PATIENT: [0x00100020, "patient_id"], STUDY: [0x0020000d, "study_uid"], SERIES: [0x0020000e, "series_uid"], IMAGE: [0x00080018, "sop_instance_uid"],
  };
  const [ut, uc] = unique[level];
  if (!ds.has(ut)) put(ut, ut === 0x00100020 ? "LO" : "UI", String(row[uc] ?? ""));
  if (nonAscii) put(SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 192");
  return ds;
}

/**
 * Answers a C-FIND identifier: one response data set per match, each carrying the requested
 * keys (empty when the index has no value for them). Throws {@link QueryError} for identifiers
 * the SCP must refuse, and with 0xA700 when more than `maxMatches` (default
 * {@link DEFAULT_MAX_FIND_MATCHES}) entities match.
 */
export async function findMatches(
  index: FolderIndex, identifier: DataSet, model: QueryModel, opts: { maxMatches?: number } = {},
): Promise<DataSet[]> {
  const level = queryLevel(identifier, model);
  const keys = keysOf(identifier, level);
  const rows = await matchingRows(index, level, keys, opts.maxMatches ?? DEFAULT_MAX_FIND_MATCHES);
  return rows.map((r) => responseOf(r, keys, level));
}

/** The instances a C-MOVE or C-GET identifier selects (every instance below the matched entities). */
export async function selectInstances(index: FolderIndex, identifier: DataSet, model: QueryModel): Promise<IndexedFile[]> {
  const level = queryLevel(identifier, model);
  const keys = keysOf(identifier, level).filter((k) => k.value !== "" || k.sequence?.uid);
  if (!keys.length) throw new QueryError(`The ${level} level retrieve identifier has no unique key`, STATUS_IDENTIFIER_MISMATCH);
  const rows = await matchingRows(index, "IMAGE", keys);
  return index.filesOf(rows.map((r) => String(r.sop_instance_uid)));
}
