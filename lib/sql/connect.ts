import { existsSync } from "node:fs";
import { Kysely, MssqlDialect, PostgresDialect } from "kysely";
import { openSqlite } from "../db/sqlite.ts";
import { DatabaseUrlError, parseDatabaseUrl, type SqlDialectName } from "./url.ts";

export { DatabaseUrlError, parseDatabaseUrl, type SqlDialectName };

/** An open database: SQLite (built in), PostgreSQL (pg) or SQL Server (tedious). */
export interface SqlConnection<DB> {
  db: Kysely<DB>;
  dialect: SqlDialectName;
  /** The URL with any password removed, for messages. */
  display: string;
  close(): Promise<void>;
}

/** Options of {@link connectDatabase}. */
export interface ConnectOptions {
  /** Refuse to create an SQLite file that is not there. */
  mustExist?: boolean;
  /**
   * Read only: an SQLite file is opened without any write (its bytes never change, a read-only
   * file or volume works); PostgreSQL sessions default to read-only transactions; SQL Server
   * connections declare a read-only intent. Implies `mustExist`.
   */
  readOnly?: boolean;
  /** Connections a PostgreSQL or SQL Server pool may hold (default 4). */
  poolSize?: number;
}

/** Opens a database from its URL. SQLite opens at once; PostgreSQL and SQL Server connect on first query. */
export async function connectDatabase<DB>(url: string, opts: ConnectOptions = {}): Promise<SqlConnection<DB>> {
  const parsed = parseDatabaseUrl(url);
  if (parsed.dialect === "sqlite") {
    if ((opts.mustExist || opts.readOnly) && parsed.path !== ":memory:" && !existsSync(parsed.path!)) {
      throw new Error(`Cannot open database "${parsed.display}": no such file`);
    }
    const db = openSqlite<DB>(parsed.path!, { readOnly: opts.readOnly });
    return { db, dialect: "sqlite", display: parsed.display, close: () => db.destroy() };
  }
  if (parsed.dialect === "postgres") {
    const pg = await import("pg");
    const Pool = (pg.default ?? pg).Pool;
    const u = parsed.url!;
    const pool = new Pool({
      connectionString: u.toString(),
      max: opts.poolSize ?? 4,
      connectionTimeoutMillis: 10_000,
      ...(opts.readOnly ? { options: "-c default_transaction_read_only=on" } : {}),
    });
    // An idle client error must not crash the process; the next query reports it.
    pool.on("error", () => {});
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return { db, dialect: "postgres", display: parsed.display, close: () => db.destroy() };
  }
  const db = new Kysely<DB>({ dialect: await mssqlDialect(parsed.url!, opts) });
  return { db, dialect: "mssql", display: parsed.display, close: () => db.destroy() };
}

/** The SQL Server dialect (tedious + tarn); also used to compile queries in tests without a server. */
export async function mssqlDialect(u: URL, opts: ConnectOptions = {}): Promise<MssqlDialect> {
  const tedious = await import("tedious");
  const tarn = await import("tarn");
  const t = (tedious.default ?? tedious) as typeof import("tedious");
  const tn = (tarn.default ?? tarn) as typeof import("tarn");
  return new MssqlDialect({
    tarn: { ...tn, options: { min: 0, max: opts.poolSize ?? 4 } },
    tedious: {
      ...t,
      connectionFactory: () =>
        new t.Connection({
          server: u.hostname,
          options: {
            port: u.port ? Number(u.port) : 1433,
            database: decodeURIComponent(u.pathname.slice(1)),
            encrypt: u.searchParams.get("encrypt") !== "false",
            trustServerCertificate: u.searchParams.get("trustServerCertificate") === "true",
            connectTimeout: 15_000,
            readOnlyIntent: opts.readOnly === true,
          },
          authentication: {
            type: "default",
            options: { userName: decodeURIComponent(u.username), password: decodeURIComponent(u.password) },
          },
        }),
    },
  });
}
