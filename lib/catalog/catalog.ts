import type { Kysely } from "kysely";
import type { PatientRecord, PlanRecord } from "../records/types.ts";
import { connectDatabase, type SqlConnection } from "../sql/connect.ts";
import { DEFAULT_PHANTOM_PATTERNS, isPhantom, type ListFilter } from "../sources/filter.ts";

/**
 * The catalog views rtexport reads. A site maps its planning system's schema onto these once
 * (CREATE VIEW … AS SELECT …); docs/catalog.md has the definitions and a worked example.
 */
export interface CatalogPatientRow {
  patient_id: string | null;
  family_name: string | null;
  given_name: string | null;
  birth_date: string | null;
  sex: string | null;
  /** 1 for phantom records (excluded unless asked for). */
  is_phantom: number | null;
  updated_at: string | null;
}
export interface CatalogPlanRow {
  plan_id: string | null;
  patient_id: string | null;
  plan_uid: string | null;
  label: string | null;
  name: string | null;
  /** Deliverable, Authorized, Disallowed, Under Treatment, Discontinued, Completed, … */
  status: string | null;
  /** CLINICAL, PHYSICIAN (contour only), QA, LOT_SIMULATION, SETUP */
  plan_type: string | null;
  approval: string | null;
  /** Treatment machine names separated by a backslash. */
  machines: string | null;
  updated_at: string | null;
}
export interface CatalogFileRow {
  file_id: string | null;
  patient_id: string | null;
  /** NULL for patient-level files (image series, photo, patient documents). */
  plan_id: string | null;
  category: string | null;
  /** Path relative to the storage vault, `/` or `\` separated. */
  vault_path: string | null;
  sop_instance_uid: string | null;
  modality: string | null;
  sha256: string | null;
  bytes: number | null;
  updated_at: string | null;
}
export interface CatalogSchema {
  rtx_patients: CatalogPatientRow;
  rtx_plans: CatalogPlanRow;
  rtx_files: CatalogFileRow;
}

export const DEFAULT_STATUSES = ["Deliverable", "Authorized", "Disallowed", "Under Treatment", "Discontinued", "Completed"];

/** Plan types left out unless a flag includes them (seed 000 §2.1). */
export const EXCLUDED_PLAN_TYPES: Record<string, string> = {
  PHYSICIAN: "physician (contour-only) plan",
  QA: "QA plan",
  LOT_SIMULATION: "LOT simulation plan",
  SETUP: "setup/alignment plan",
};

/** Which patients and plans `list-patients --from catalog` reads (the filters every source takes). */
export type CatalogFilter = ListFilter;

/** A catalog row that cannot be used, reported by name rather than dropped. */
export interface CatalogProblem {
  what: string;
  reason: string;
}

export class Catalog {
  readonly conn: SqlConnection<CatalogSchema>;
  readonly vault: string | undefined;
  private constructor(conn: SqlConnection<CatalogSchema>, vault: string | undefined) {
    this.conn = conn;
    this.vault = vault;
  }

  get db(): Kysely<CatalogSchema> {
    return this.conn.db;
  }

  static async open(url: string, vault?: string): Promise<Catalog> {
    return new Catalog(await connectDatabase<CatalogSchema>(url, { readOnly: true }), vault);
  }

  async close(): Promise<void> {
    await this.conn.close();
  }

  /** The `source` string put on records: the URL with any password removed. */
  get source(): string {
    return this.conn.display;
  }

  /**
   * Patients with their plans, filtered as `list-patients` documents. Yields each patient record
   * followed by its plan records; rows that cannot be used come out as problems.
   */
  async *list(filter: CatalogFilter): AsyncGenerator<PatientRecord | PlanRecord | { type: "problem"; problem: CatalogProblem }> {
    const patients = await patientsQuery(this.db, filter).execute();
    const statuses = new Set((filter.statuses ?? DEFAULT_STATUSES).map((s) => s.toLowerCase()));
    const includeTypes = new Set((filter.includePlanTypes ?? []).map((t) => t.toUpperCase()));
    const since = filter.since ? Date.parse(filter.since) : undefined;
    const after = (t: string | null) => since === undefined || (t !== null && Date.parse(t) > since);
    const seen = new Set<string>();
    for (const p of patients) {
      if (!p.patient_id) {
        yield { type: "problem", problem: { what: `patient row (name "${p.family_name ?? ""}")`, reason: "patient_id is NULL" } };
        continue;
      }
      seen.add(p.patient_id);
      const phantom = !!p.is_phantom ||
        isPhantom({ patientId: p.patient_id, family: p.family_name ?? undefined, given: p.given_name ?? undefined }, filter.phantomPatterns ?? DEFAULT_PHANTOM_PATTERNS);
      if (phantom && !filter.includePhantoms) continue;
      const plans = await plansQuery(this.db, p.patient_id).execute();
      const kept: PlanRecord[] = [];
      for (const row of plans) {
        if (!row.plan_id) {
          yield { type: "problem", problem: { what: `plan of patient ${p.patient_id}`, reason: "plan_id is NULL" } };
          continue;
        }
        const type = (row.plan_type ?? "CLINICAL").toUpperCase();
        if (type in EXCLUDED_PLAN_TYPES && !includeTypes.has(type)) continue;
        if (!statuses.has((row.status ?? "").toLowerCase())) continue;
        if (!after(row.updated_at) && !after(p.updated_at)) continue;
        kept.push(planRecord(row, p.patient_id, this.source, this.vault));
      }
      if (since !== undefined && !after(p.updated_at) && kept.length === 0) continue;
      yield patientRecord(p, this.source, this.vault, kept.length);
      for (const plan of kept) yield plan;
    }
    for (const id of filter.patientIds ?? []) {
      if (!seen.has(id)) yield { type: "problem", problem: { what: `patient ${id}`, reason: "not in the catalog" } };
    }
  }

  /** The files of a plan (planId given) or the patient-level files (planId null). */
  async files(patientId: string, planId: string | null): Promise<CatalogFileRow[]> {
    return await filesQuery(this.db, patientId, planId).execute();
  }
}

/** The queries the catalog runs, exported so tests can compile them for every dialect. */
export function patientsQuery(db: Kysely<CatalogSchema>, filter: CatalogFilter) {
  let q = db.selectFrom("rtx_patients").selectAll().orderBy("patient_id");
  if (filter.patientIds?.length) q = q.where("patient_id", "in", filter.patientIds);
  return q;
}
export function plansQuery(db: Kysely<CatalogSchema>, patientId: string) {
  return db.selectFrom("rtx_plans").selectAll().where("patient_id", "=", patientId).orderBy("plan_id");
}
export function filesQuery(db: Kysely<CatalogSchema>, patientId: string, planId: string | null) {
  const q = db.selectFrom("rtx_files").selectAll().where("patient_id", "=", patientId);
  return (planId === null ? q.where("plan_id", "is", null) : q.where("plan_id", "=", planId)).orderBy("vault_path");
}

function patientRecord(p: CatalogPatientRow, source: string, vault: string | undefined, plans: number): PatientRecord {
  const rec: PatientRecord = {
    type: "patient",
    patientId: p.patient_id!,
    name: { family: p.family_name ?? "", given: p.given_name ?? "" },
    source,
    plans,
  };
  if (p.birth_date) rec.birthDate = p.birth_date;
  if (p.sex) rec.sex = p.sex;
  if (vault) rec.vault = vault;
  return rec;
}

function planRecord(row: CatalogPlanRow, patientId: string, source: string, vault: string | undefined): PlanRecord {
  const rec: PlanRecord = {
    type: "plan",
    patientId,
    planId: row.plan_id!,
    label: row.label ?? row.plan_id!,
    source,
  };
  if (row.plan_uid) rec.planUid = row.plan_uid;
  if (row.name) rec.name = row.name;
  if (row.status) rec.status = row.status;
  if (row.approval) rec.approval = row.approval;
  rec.machines = (row.machines ?? "").split(/[\\,]/).map((m) => m.trim()).filter(Boolean);
  if (row.plan_type) rec.planType = row.plan_type;
  if (row.updated_at) rec.updatedAt = row.updated_at;
  if (vault) rec.vault = vault;
  return rec;
}

/** Creates the three views as plain tables (for the demo clinic and tests). */
export async function createCatalogTables(db: Kysely<CatalogSchema>): Promise<void> {
  await db.schema.createTable("rtx_patients").ifNotExists()
    .addColumn("patient_id", "text").addColumn("family_name", "text").addColumn("given_name", "text")
    .addColumn("birth_date", "text").addColumn("sex", "text").addColumn("is_phantom", "integer")
    .addColumn("updated_at", "text").execute();
  await db.schema.createTable("rtx_plans").ifNotExists()
    .addColumn("plan_id", "text").addColumn("patient_id", "text").addColumn("plan_uid", "text")
    .addColumn("label", "text").addColumn("name", "text").addColumn("status", "text").addColumn("plan_type", "text")
    .addColumn("approval", "text").addColumn("machines", "text").addColumn("updated_at", "text").execute();
  await db.schema.createTable("rtx_files").ifNotExists()
    .addColumn("file_id", "text").addColumn("patient_id", "text").addColumn("plan_id", "text")
    .addColumn("category", "text").addColumn("vault_path", "text").addColumn("sop_instance_uid", "text")
    .addColumn("modality", "text").addColumn("sha256", "text").addColumn("bytes", "bigint")
    .addColumn("updated_at", "text").execute();
}
