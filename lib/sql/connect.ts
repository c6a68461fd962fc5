import { existsSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { Kysely, MssqlDialect, PostgresDialect, sql } from "kysely";
import { openSqlite } from "../db/sqlite.ts";
import { databaseTimeoutMs } from "./timeout.ts";
import { DatabaseUrlError, parseDatabaseUrl, type SqlDialectName } from "./url.ts";

export { DatabaseUrlError, parseDatabaseUrl, type SqlDialectName };

/** How messages name each dialect. */
export const DIALECT_NAMES: Record<SqlDialectName, string> = { sqlite: "SQLite", postgres: "PostgreSQL", mssql: "SQL Server" };

/**
 * A database that cannot be opened or reached, in one line naming it (password hidden), its
 * dialect and the reason: `Cannot connect to database "postgres://rtx:***@db/x" (PostgreSQL):
 * connection refused`.
 */
export class DatabaseConnectError extends Error {
  /** The URL with any password hidden. */
  readonly display: string;
  readonly dialect: SqlDialectName;
  /** The reason alone, in words. */
  readonly reason: string;
  constructor(display: string, dialect: SqlDialectName, reason: string, options?: { cause?: unknown }) {
    const verb = dialect === "sqlite" ? "open" : "connect to";
    super(`Cannot ${verb} database "${display}" (${DIALECT_NAMES[dialect]}): ${reason}`, options);
    this.name = "DatabaseConnectError";
    this.display = display;
    this.dialect = dialect;
    this.reason = reason;
  }
}

/** The codes of an error and of the errors it wraps (pg: AggregateError of each address; tedious: ConnectionError with a cause). */
function codesOf(e: unknown, depth = 0): string[] {
  if (!e || typeof e !== "object" || depth > 4) return [];
  const x = e as { code?: unknown; errno?: unknown; cause?: unknown; errors?: unknown[] };
  const own = [x.code, x.errno].filter((c): c is string => typeof c === "string");
  return [...own, ...codesOf(x.cause, depth + 1), ...(Array.isArray(x.errors) ? x.errors.flatMap((i) => codesOf(i, depth + 1)) : [])];
}

/** Why a connection failed, in words (the drivers' own texts name neither the URL nor the fix). */
export function databaseFailureReason(e: unknown, timeoutMs: number): string {
  const codes = codesOf(e);
  const message = String((e as Error)?.message ?? e).split("\n")[0].trim();
  if (codes.includes("ECONNREFUSED") || /ECONNREFUSED/.test(message)) return "connection refused";
  if (codes.some((c) => c === "ENOTFOUND" || c === "EAI_AGAIN") || /getaddrinfo|ENOTFOUND/.test(message)) return "host not found";
  if (codes.some((c) => c === "EHOSTUNREACH" || c === "ENETUNREACH")) return "host unreachable";
  if (codes.includes("ETIMEDOUT") || codes.includes("ETIMEOUT") || /timeout|timed out/i.test(message)) {
    return `no answer within ${timeoutMs / 1000} s (--db-timeout changes the limit)`;
  }
  if (/file is not a database|file is encrypted/i.test(message)) return "not an SQLite database";
  if (/unable to open database file/i.test(message)) return "cannot open the file (a folder, or no permission)";
  if (/Could not connect \(sequence\)/.test(message)) return "connection refused";
  return message || String(e);
}

/** Resolves once a TCP connection to host:port was made (and closed); rejects with the socket's error or a timeout. */
function tcpReachable(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    });
  });
}

/** Rejects after `ms` with a timeout error (the connection attempt itself is left to the pool's own limit). */
async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

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
  /** How long connecting may take, in milliseconds (default: `--db-timeout`, 5 s). */
  connectTimeoutMs?: number;
}

/**
 * Opens a database from its URL and checks that it answers (one trivial query), so that a wrong
 * URL, an unreachable server or a file that is not a database fails here, at once, with a
 * {@linkcode DatabaseConnectError} naming it: never later, as a driver's bare `ECONNREFUSED`.
 */
export async function connectDatabase<DB>(url: string, opts: ConnectOptions = {}): Promise<SqlConnection<DB>> {
  const parsed = parseDatabaseUrl(url);
  const timeoutMs = opts.connectTimeoutMs ?? databaseTimeoutMs();
  const conn = await openDatabase<DB>(parsed, opts, timeoutMs);
  try {
    const probe = conn.dialect === "sqlite" ? sql`select count(*) as n from sqlite_master` : sql`select 1 as n`;
    await within(timeoutMs, probe.execute(conn.db));
  } catch (e) {
    await within(1000, conn.close()).catch(() => {});
    throw new DatabaseConnectError(parsed.display, parsed.dialect, databaseFailureReason(e, timeoutMs), { cause: e });
  }
  return conn;
}

async function openDatabase<DB>(
  parsed: ReturnType<typeof parseDatabaseUrl>, opts: ConnectOptions, timeoutMs: number,
): Promise<SqlConnection<DB>> {
  if (parsed.dialect === "sqlite") {
    if ((opts.mustExist || opts.readOnly) && parsed.path !== ":memory:" && !existsSync(parsed.path!)) {
      throw new DatabaseConnectError(parsed.display, "sqlite", "no such file");
    }
    if (parsed.path !== ":memory:" && statSync(parsed.path!, { throwIfNoEntry: false })?.isDirectory()) {
      throw new DatabaseConnectError(parsed.display, "sqlite", "it is a folder, not a database file");
    }
    let db: Kysely<DB>;
    try {
      db = openSqlite<DB>(parsed.path!, { readOnly: opts.readOnly });
    } catch (e) {
      throw new DatabaseConnectError(parsed.display, "sqlite", databaseFailureReason(e, timeoutMs), { cause: e });
    }
    return { db, dialect: "sqlite", display: parsed.display, close: () => db.destroy() };
  }
  if (parsed.dialect === "postgres") {
    const pg = await import("pg");
    const Pool = (pg.default ?? pg).Pool;
    const u = parsed.url!;
    const pool = new Pool({
      connectionString: u.toString(),
      max: opts.poolSize ?? 4,
      connectionTimeoutMillis: timeoutMs,
      ...(opts.readOnly ? { options: "-c default_transaction_read_only=on" } : {}),
    });
    // An idle client error must not crash the process; the next query reports it.
    pool.on("error", () => {});
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return { db, dialect: "postgres", display: parsed.display, close: () => db.destroy() };
  }
  // tedious retries a refused connection until its timeout and then says "Could not connect
  // (sequence)": a plain TCP connection first tells a refused or unknown server at once.
  try {
    await tcpReachable(parsed.url!.hostname, parsed.url!.port ? Number(parsed.url!.port) : 1433, timeoutMs);
  } catch (e) {
    throw new DatabaseConnectError(parsed.display, "mssql", databaseFailureReason(e, timeoutMs), { cause: e });
  }
  const db = new Kysely<DB>({ dialect: await mssqlDialect(parsed.url!, { ...opts, connectTimeoutMs: timeoutMs }) });
  return { db, dialect: "mssql", display: parsed.display, close: () => db.destroy() };
}

/** The SQL Server dialect (tedious + tarn); also used to compile queries in tests without a server. */
export async function mssqlDialect(u: URL, opts: ConnectOptions = {}): Promise<MssqlDialect> {
  const tedious = await import("tedious");
  const tarn = await import("tarn");
  const t = (tedious.default ?? tedious) as typeof import("tedious");
  const tn = (tarn.default ?? tarn) as typeof import("tarn");
  return new MssqlDialect({
    tarn: { ...tn, options: { min: 0, max: opts.poolSize ?? 4, acquireTimeoutMillis: (opts.connectTimeoutMs ?? databaseTimeoutMs()) + 1000 } },
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
            connectTimeout: opts.connectTimeoutMs ?? databaseTimeoutMs(),
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
