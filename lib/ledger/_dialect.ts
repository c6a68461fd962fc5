// What differs between SQLite, PostgreSQL and SQL Server in the ledger's queries, in one place.
import { type AliasedRawBuilder, type Kysely, MssqlAdapter, PostgresAdapter, type RawBuilder, sql } from "kysely";
import type { SqlDialectName } from "../sql/connect.ts";

/**
 * The database server's clock in milliseconds since 1970, for leases: every machine of a
 * migration compares lease ends with the same clock, whatever its own says.
 */
export function dbNowMs(dialect: SqlDialectName): RawBuilder<number> {
  switch (dialect) {
    case "postgres":
      return sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`;
    case "mssql":
      return sql<number>`datediff_big(millisecond, '19700101', sysutcdatetime())`;
    default:
      return sql<number>`cast((julianday('now') - 2440587.5) * 86400000 as integer)`;
  }
}

/**
 * A table in a FROM clause, locked the way SQL Server needs for a queue: `updlock` (the row is
 * ours until the statement's transaction ends), `readpast` (rows others hold are skipped, as
 * PostgreSQL's SKIP LOCKED does), `rowlock`. Other dialects get the plain table.
 */
export function queueFrom<O, A extends string>(
  dialect: SqlDialectName, table: string, alias: A, hints = "updlock, readpast, rowlock",
): AliasedRawBuilder<O, A> {
  if (dialect === "mssql") return sql<O>`${sql.table(table)}`.as<A>(sql`${sql.id(alias)} with (${sql.raw(hints)})`);
  return sql<O>`${sql.table(table)}`.as<A>(alias);
}

/**
 * Runs `fn` in one transaction. On SQLite the transaction takes the write lock when it begins
 * (BEGIN IMMEDIATE): a deferred one that reads first and writes later fails at once, without
 * waiting, when another process wrote meanwhile. Several processes on one machine can then
 * share one SQLite ledger, one writer at a time. `fn` must use only the handle it is given.
 */
export async function writeTransaction<DB, T>(db: Kysely<DB>, dialect: SqlDialectName, fn: (tx: Kysely<DB>) => Promise<T>): Promise<T> {
  if (dialect !== "sqlite") return await db.transaction().execute(fn);
  return await db.connection().execute(async (c) => {
    await sql`begin immediate`.execute(c);
    try {
      const result = await fn(c);
      await sql`commit`.execute(c);
      return result;
    } catch (e) {
      await sql`rollback`.execute(c).catch(() => {});
      throw e;
    }
  });
}

/** Numbers come back from PostgreSQL's bigint columns as strings. */
export function num(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}

/** The column types of a dialect: keys that fit SQL Server's 900-byte index limit, long text, big integers. */
export function columnTypes(dialect: SqlDialectName): { key: RawBuilder<unknown>; long: RawBuilder<unknown> } {
  return {
    key: sql.raw(dialect === "mssql" ? "nvarchar(400)" : "varchar(1024)"),
    long: sql.raw(dialect === "mssql" ? "nvarchar(max)" : "text"),
  };
}

/** The dialect of an open kysely instance (from its adapter). */
export function dialectOf(db: Kysely<unknown>): SqlDialectName {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof PostgresAdapter) return "postgres";
  if (adapter instanceof MssqlAdapter) return "mssql";
  return "sqlite";
}
