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

/** Opens a database from its URL. SQLite opens at once; PostgreSQL and SQL Server connect on first query. */
export async function connectDatabase<DB>(url: string, opts: { mustExist?: boolean } = {}): Promise<SqlConnection<DB>> {
  const parsed = parseDatabaseUrl(url);
  if (parsed.dialect === "sqlite") {
    if (opts.mustExist && parsed.path !== ":memory:" && !existsSync(parsed.path!)) {
      throw new Error(`Cannot open database "${parsed.display}": no such file`);
    }
    const db = openSqlite<DB>(parsed.path!);
    return { db, dialect: "sqlite", display: parsed.display, close: () => db.destroy() };
  }
  if (parsed.dialect === "postgres") {
    const pg = await import("pg");
    const Pool = (pg.default ?? pg).Pool;
    const u = parsed.url!;
    const pool = new Pool({
      connectionString: u.toString(),
      max: 4,
      connectionTimeoutMillis: 10_000,
    });
    // An idle client error must not crash the process; the next query reports it.
    pool.on("error", () => {});
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return { db, dialect: "postgres", display: parsed.display, close: () => db.destroy() };
  }
  const db = new Kysely<DB>({ dialect: await mssqlDialect(parsed.url!) });
  return { db, dialect: "mssql", display: parsed.display, close: () => db.destroy() };
}

/** The SQL Server dialect (tedious + tarn); also used to compile queries in tests without a server. */
export async function mssqlDialect(u: URL): Promise<MssqlDialect> {
  const tedious = await import("tedious");
  const tarn = await import("tarn");
  const t = (tedious.default ?? tedious) as typeof import("tedious");
  const tn = (tarn.default ?? tarn) as typeof import("tarn");
  return new MssqlDialect({
    tarn: { ...tn, options: { min: 0, max: 4 } },
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
          },
          authentication: {
            type: "default",
            options: { userName: decodeURIComponent(u.username), password: decodeURIComponent(u.password) },
          },
        }),
    },
  });
}
