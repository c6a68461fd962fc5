import { existsSync } from "node:fs";
import { Kysely, MssqlDialect, PostgresDialect } from "kysely";
import { openSqlite } from "../db/sqlite.ts";

export type SqlDialectName = "sqlite" | "postgres" | "mssql";

/** An open database: SQLite (built in), PostgreSQL (pg) or SQL Server (tedious). */
export interface SqlConnection<DB> {
  db: Kysely<DB>;
  dialect: SqlDialectName;
  /** The URL with any password removed, for messages. */
  display: string;
  close(): Promise<void>;
}

/** A database URL that cannot be used; callers turn it into a usage error. */
export class DatabaseUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatabaseUrlError";
  }
}

/** Parses `sqlite:PATH`, `postgres://user:pass@host:port/db` or `mssql://user:pass@host:port/db`. */
export function parseDatabaseUrl(url: string): { dialect: SqlDialectName; path?: string; url?: URL; display: string } {
  if (url.startsWith("sqlite:")) {
    const path = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    if (!path) throw new DatabaseUrlError(`Invalid database URL "${url}": sqlite: needs a file path, e.g. sqlite:catalog.db`);
    return { dialect: "sqlite", path, display: url };
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DatabaseUrlError(`Invalid database URL "${url}": expected sqlite:PATH, postgres://… or mssql://…`);
  }
  const display = u.password ? url.replace(`:${u.password}@`, ":***@") : url;
  if (u.protocol === "postgres:" || u.protocol === "postgresql:") {
    if (!u.hostname && !u.searchParams.get("host")) throw new DatabaseUrlError(`Invalid database URL "${display}": no host`);
    return { dialect: "postgres", url: u, display };
  }
  if (u.protocol === "mssql:" || u.protocol === "sqlserver:") {
    if (!u.hostname) throw new DatabaseUrlError(`Invalid database URL "${display}": no host`);
    if (!u.pathname || u.pathname === "/") throw new DatabaseUrlError(`Invalid database URL "${display}": no database name`);
    return { dialect: "mssql", url: u, display };
  }
  throw new DatabaseUrlError(`Invalid database URL "${display}": unsupported scheme "${u.protocol}" (use sqlite:, postgres: or mssql:)`);
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
