/**
 * The ledger's schema, versioned. Each migration runs once per database, in order, inside one
 * transaction that holds a database-wide lock: `pg_advisory_xact_lock` on PostgreSQL,
 * `sp_getapplock` on SQL Server, the write lock (BEGIN IMMEDIATE) on SQLite. Any number of
 * processes may open an empty database at once: one creates the schema, the others wait for it
 * and find it done. (Plain CREATE TABLE IF NOT EXISTS from several sessions at once fails on
 * PostgreSQL with `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`.)
 *
 * Version 1 is the schema ledgers had before versioning (its tables are created only when
 * absent, so an older ledger upgrades in place); version 2 adds work claims, leases and workers.
 */
import { type Kysely, sql } from "kysely";
import type { SqlDialectName } from "../sql/connect.ts";
import { columnTypes, writeTransaction } from "./_dialect.ts";

/** The schema version this code writes. */
export const LEDGER_SCHEMA_VERSION = 3;

/** An arbitrary constant: the advisory lock every rtexport process takes to migrate a PostgreSQL ledger. */
const PG_LOCK_KEY = 7_227_101_417;

interface Migration {
  version: number;
  name: string;
  // deno-lint-ignore no-explicit-any -- migrations see the schema as it was, not the current types
  up(db: Kysely<any>, dialect: SqlDialectName, existing: Set<string>): Promise<void>;
}

// deno-lint-ignore no-explicit-any -- every version of the schema
type AnyDb = Kysely<any>;

/** The CREATE TABLE statements of version 1 for a dialect (exported so tests can compile them for each). */
export function ledgerTables(db: AnyDb, dialect: SqlDialectName) {
  const { key, long } = columnTypes(dialect);
  return [
    ["rtx_ledger_runs", db.schema.createTable("rtx_ledger_runs")
      .addColumn("id", "varchar(64)", (c) => c.primaryKey())
      .addColumn("command", "varchar(64)", (c) => c.notNull())
      .addColumn("host", "varchar(255)", (c) => c.notNull())
      .addColumn("started_at", "varchar(32)", (c) => c.notNull())
      .addColumn("finished_at", "varchar(32)")
      .addColumn("outcome", "varchar(32)")],
    ["rtx_ledger_items", db.schema.createTable("rtx_ledger_items")
      .addColumn("kind", "varchar(16)", (c) => c.notNull())
      .addColumn("key", key, (c) => c.notNull())
      .addColumn("status", "varchar(16)", (c) => c.notNull())
      .addColumn("patient_id", "varchar(255)")
      .addColumn("plan_key", long)
      .addColumn("source", long)
      .addColumn("dest", long)
      .addColumn("bytes", "bigint")
      .addColumn("sha256", "varchar(64)")
      .addColumn("error", long)
      .addColumn("run_id", "varchar(64)", (c) => c.notNull())
      .addColumn("updated_at", "varchar(32)", (c) => c.notNull())
      .addPrimaryKeyConstraint("rtx_ledger_items_pk", ["kind", "key"])],
    ["rtx_ledger_folders", db.schema.createTable("rtx_ledger_folders")
      .addColumn("patient_key", key, (c) => c.primaryKey())
      .addColumn("folder", long, (c) => c.notNull())],
  ] as const;
}

/** The statements of version 2 (exported so tests can compile them for each dialect). */
export function ledgerV2Statements(db: AnyDb, dialect: SqlDialectName) {
  const { key, long } = columnTypes(dialect);
  const add = (table: string, column: string, type: string) => db.schema.alterTable(table).addColumn(column, sql.raw(type));
  return [
    // Runs are the workers: their process, the job and pass they work on, a lease their heartbeat
    // renews (ms on the database's clock), and what they did.
    add("rtx_ledger_runs", "pid", "integer"),
    add("rtx_ledger_runs", "job", "varchar(255)"),
    add("rtx_ledger_runs", "pass", "varchar(64)"),
    add("rtx_ledger_runs", "workers", "integer"),
    add("rtx_ledger_runs", "lease_until", "bigint"),
    add("rtx_ledger_runs", "heartbeat_ms", "bigint"),
    add("rtx_ledger_runs", "started_ms", "bigint"),
    add("rtx_ledger_runs", "items_done", "integer"),
    add("rtx_ledger_runs", "items_failed", "integer"),
    add("rtx_ledger_runs", "files", "bigint"),
    add("rtx_ledger_runs", "bytes", "bigint"),
    add("rtx_ledger_runs", "taken_over", "integer"),
    // What the source was when it was exported: a source that changed since is exported again.
    add("rtx_ledger_items", "source_bytes", "bigint"),
    add("rtx_ledger_items", "source_mtime_ms", "bigint"),
    // A folder's name in lower case, unique: two machines cannot give two patients one folder.
    db.schema.alterTable("rtx_ledger_folders").addColumn("folder_key", key),
    db.updateTable("rtx_ledger_folders").set({ folder_key: sql`lower(${sql.ref("folder")})` }),
    db.schema.createIndex("rtx_ledger_folders_folder_key").unique().on("rtx_ledger_folders").column("folder_key"),
    // A job (one command line shared by its workers) and its current pass.
    db.schema.createTable("rtx_ledger_jobs")
      .addColumn("job", key, (c) => c.primaryKey())
      .addColumn("pass", "varchar(64)", (c) => c.notNull())
      .addColumn("updated_at", "varchar(32)", (c) => c.notNull()),
    // The work queue: one row per item of a job, claimed with a lease.
    db.schema.createTable("rtx_ledger_work")
      .addColumn("id", "varchar(64)", (c) => c.primaryKey())
      .addColumn("job", "varchar(255)", (c) => c.notNull())
      .addColumn("kind", "varchar(16)", (c) => c.notNull())
      .addColumn("key", long, (c) => c.notNull())
      .addColumn("patient_id", "varchar(255)")
      .addColumn("seq", "bigint", (c) => c.notNull())
      .addColumn("pass", "varchar(64)", (c) => c.notNull())
      .addColumn("status", "varchar(16)", (c) => c.notNull())
      .addColumn("owner", "varchar(64)")
      .addColumn("previous_owner", "varchar(64)")
      .addColumn("lease_until", "bigint")
      .addColumn("attempts", "integer", (c) => c.notNull())
      .addColumn("payload", long)
      .addColumn("files", "bigint")
      .addColumn("bytes", "bigint")
      .addColumn("error", long)
      .addColumn("updated_at", "varchar(32)", (c) => c.notNull()),
    db.schema.createIndex("rtx_ledger_work_queue").on("rtx_ledger_work").columns(["job", "pass", "status", "seq"]),
    db.schema.createIndex("rtx_ledger_work_owner").on("rtx_ledger_work").column("owner"),
  ] as const;
}

/** The statements of version 3: the audit trail (exported so tests can compile them for each dialect). */
export function ledgerV3Statements(db: AnyDb, dialect: SqlDialectName) {
  const { long } = columnTypes(dialect);
  return [
    db.schema.createTable("rtx_ledger_audit")
      .addColumn("id", "varchar(64)", (c) => c.primaryKey())
      .addColumn("run_id", "varchar(64)", (c) => c.notNull())
      .addColumn("at", "varchar(40)", (c) => c.notNull())
      .addColumn("action", "varchar(16)", (c) => c.notNull())
      .addColumn("user_name", "varchar(255)", (c) => c.notNull())
      .addColumn("host", "varchar(255)", (c) => c.notNull())
      .addColumn("patient_id", "varchar(255)")
      .addColumn("studies", long, (c) => c.notNull())
      .addColumn("objects", "integer", (c) => c.notNull())
      .addColumn("failed", "integer", (c) => c.notNull())
      .addColumn("bytes", "bigint", (c) => c.notNull())
      .addColumn("source", long, (c) => c.notNull())
      .addColumn("dest", long, (c) => c.notNull())
      .addColumn("outcome", "varchar(32)", (c) => c.notNull())
      .addColumn("outcome_text", long),
    db.schema.createIndex("rtx_ledger_audit_patient").on("rtx_ledger_audit").column("patient_id"),
  ] as const;
}

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "runs, items, folders",
    async up(db, dialect, existing) {
      for (const [name, builder] of ledgerTables(db, dialect)) if (!existing.has(name)) await builder.execute();
    },
  },
  {
    version: 2,
    name: "work claims with leases, workers, source size and time, unique folders",
    async up(db, dialect) {
      for (const statement of ledgerV2Statements(db, dialect)) await statement.execute();
    },
  },
  {
    version: 3,
    name: "audit trail: one event per patient and run",
    async up(db, dialect) {
      for (const statement of ledgerV3Statements(db, dialect)) await statement.execute();
    },
  },
];

/** The version a ledger database is at (0: no ledger yet). Reads only. */
export async function ledgerSchemaVersion(db: AnyDb): Promise<number> {
  const tables = new Set((await db.introspection.getTables()).map((t) => t.name));
  if (!tables.has("rtx_ledger_schema")) return tables.has("rtx_ledger_items") ? 1 : 0;
  const r = await db.selectFrom("rtx_ledger_schema").select((eb) => eb.fn.max("version").as("v")).executeTakeFirst();
  return Number(r?.v ?? 0);
}

/**
 * Brings a ledger database to {@link LEDGER_SCHEMA_VERSION}; returns the versions before and after.
 * Safe to call from many processes at once. A database written by a newer rtexport is refused.
 */
export async function migrateLedger(db: AnyDb, dialect: SqlDialectName): Promise<{ from: number; to: number }> {
  // Most opens find the schema current: one query, no lock.
  const seen = await currentVersion(db);
  if (seen === LEDGER_SCHEMA_VERSION) return { from: seen, to: seen };
  if (seen !== undefined && seen > LEDGER_SCHEMA_VERSION) throw newerError(seen);
  return await writeTransaction(db, dialect, async (tx) => {
    if (dialect === "postgres") await sql`select pg_advisory_xact_lock(${sql.lit(PG_LOCK_KEY)})`.execute(tx);
    if (dialect === "mssql") {
      await sql`exec sp_getapplock @Resource = 'rtx_ledger_schema', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 120000`.execute(tx);
    }
    const existing = new Set((await tx.introspection.getTables()).map((t) => t.name));
    if (!existing.has("rtx_ledger_schema")) {
      await tx.schema.createTable("rtx_ledger_schema")
        .addColumn("version", "integer", (c) => c.primaryKey())
        .addColumn("name", "varchar(255)", (c) => c.notNull())
        .addColumn("applied_at", "varchar(32)", (c) => c.notNull())
        .execute();
    }
    const from = existing.has("rtx_ledger_schema") ? ((await currentVersion(tx)) ?? 0) : 0;
    if (from > LEDGER_SCHEMA_VERSION) throw newerError(from);
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      await m.up(tx, dialect, existing);
      await tx.insertInto("rtx_ledger_schema").values({ version: m.version, name: m.name, applied_at: new Date().toISOString() }).execute();
    }
    return { from, to: LEDGER_SCHEMA_VERSION };
  });
}

async function currentVersion(db: AnyDb): Promise<number | undefined> {
  try {
    const r = await db.selectFrom("rtx_ledger_schema").select((eb) => eb.fn.max("version").as("v")).executeTakeFirst();
    return Number(r?.v ?? 0);
  } catch {
    return undefined; // no schema table yet
  }
}

function newerError(version: number): Error {
  return new Error(`the ledger's schema is version ${version}, newer than this rtexport knows (${LEDGER_SCHEMA_VERSION}); use a newer rtexport`);
}
