/**
 * Kysely over the SQLite built into the runtime (`node:sqlite` in Node ≥ 22 and in Deno), so
 * the embedded database needs no native npm module. Kysely's own `SqliteDialect` is written
 * for better-sqlite3; `node:sqlite` differs in three ways this adapter bridges: parameters are
 * spread rather than passed as an array, statements do not say whether they return rows, and
 * booleans are not bindable.
 */
import { closeSync, existsSync, openSync, readSync } from "node:fs";
import process from "node:process";
import { Kysely, SqliteDialect, type SqliteDatabase, type SqliteStatement } from "kysely";

/** The part of `node:sqlite`'s DatabaseSync this module uses. */
interface DatabaseSyncLike {
  exec(sql: string): void;
  prepare(sql: string): StatementSyncLike;
  close(): void;
}
interface StatementSyncLike {
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  iterate(...params: unknown[]): IterableIterator<unknown>;
  columns(): unknown[];
}
type DatabaseSyncConstructor = new (path: string, options?: Record<string, unknown>) => DatabaseSyncLike;

let databaseSync: DatabaseSyncConstructor | undefined;

/**
 * Loads `node:sqlite` on first use. Node flags the module experimental and prints a warning on
 * load; users of a CLI should not see that line, so only that one warning is silenced.
 */
function loadDatabaseSync(): DatabaseSyncConstructor {
  if (databaseSync) return databaseSync;
  const original = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const message = typeof warning === "string" ? warning : warning?.message;
    if (/SQLite is an experimental feature/.test(String(message))) return;
    return (original as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    const getBuiltin = (process as unknown as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
    if (typeof getBuiltin !== "function") {
      throw new Error("Cannot open SQLite: this runtime has no node:sqlite (Node 22.5 or later, or Deno 2, is required)");
    }
    const mod = getBuiltin.call(process, "node:sqlite") as { DatabaseSync?: DatabaseSyncConstructor } | undefined;
    if (!mod?.DatabaseSync) throw new Error("Cannot open SQLite: node:sqlite is not available in this runtime");
    databaseSync = mod.DatabaseSync;
    return databaseSync;
  } finally {
    process.emitWarning = original;
  }
}

function bindable(params: ReadonlyArray<unknown>): unknown[] {
  return params.map((p) => (typeof p === "boolean" ? (p ? 1 : 0) : p instanceof Date ? p.toISOString() : p));
}

/** Wraps a `DatabaseSync` in the better-sqlite3 shape kysely's SqliteDialect drives, caching prepared statements. */
export function adaptDatabaseSync(db: DatabaseSyncLike, cacheSize = 200): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      const cached = cache.get(sql);
      if (cached) return cached;
      const stmt = db.prepare(sql);
      const isRollback = /^\s*rollback\b/i.test(sql);
      const adapted: SqliteStatement = {
        reader: stmt.columns().length > 0,
        all: (params) => stmt.all(...bindable(params)),
        run: (params) => {
          let r;
          try {
            r = stmt.run(...bindable(params));
          } catch (e) {
            // SQLite rolls a transaction back by itself on some errors (a full disk: SQLITE_FULL);
            // kysely's ROLLBACK then fails and its error would hide the real one, which follows.
            if (isRollback && /no transaction is active/.test((e as Error).message)) return { changes: 0, lastInsertRowid: 0 };
            throw e;
          }
          return { changes: r.changes, lastInsertRowid: r.lastInsertRowid };
        },
        iterate: (params) => stmt.iterate(...bindable(params)),
      };
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string);
      cache.set(sql, adapted);
      return adapted;
    },
  };
}

/** Options of {@link openSqlite}. */
export interface OpenSqliteOptions {
  /**
   * Milliseconds to wait for a lock held by another process (default 30000: a ledger shared by
   * several processes on a disk busy with their copies can hold a commit for seconds; waiting is
   * better than failing a run).
   */
  busyTimeoutMs?: number;
  /** Use write-ahead logging (default true for files; ignored for ":memory:" and read-only opens). */
  wal?: boolean;
  /**
   * Open for reading only: nothing is written to the file (no journal-mode switch), and a file
   * on a read-only volume or in a folder this user cannot write still opens (see {@link readOnlySqliteTarget}).
   */
  readOnly?: boolean;
}

/**
 * How a file is opened for reading only. SQLite reads a rollback-journal file under shared locks
 * and creates nothing; a write-ahead-log file needs its `-shm` index, which a read-only
 * connection creates when it is missing (and cannot create on a read-only volume). When a WAL
 * file has no `-shm`, no connection has it open, so it is read as immutable: no index, no locks,
 * no new file beside it. Exported for the tests.
 */
export function readOnlySqliteTarget(path: string): { filename: string; immutable: boolean } {
  let wal = false;
  try {
    const fd = openSync(path, "r");
    try {
      const header = new Uint8Array(20);
      // Bytes 18 and 19 of the header: the file format's write and read versions (2 = WAL).
      wal = readSync(fd, header, 0, 20, 0) === 20 && header[18] === 2;
    } finally {
      closeSync(fd);
    }
  } catch {
    // unreadable: DatabaseSync names the problem
  }
  if (!wal || existsSync(`${path}-shm`)) return { filename: path, immutable: false };
  return { filename: `file:${encodeURI(path).replace(/[?#]/g, encodeURIComponent)}?immutable=1`, immutable: true };
}

/**
 * Opens (creating when absent) an SQLite database file as a Kysely instance.
 *
 * @example
 * ```ts
 * const db = openSqlite<{ t: { a: number } }>(":memory:");
 * await db.schema.createTable("t").addColumn("a", "integer").execute();
 * await db.destroy();
 * ```
 */
export function openSqlite<DB>(path: string, options: OpenSqliteOptions = {}): Kysely<DB> {
  const DatabaseSync = loadDatabaseSync();
  let raw: DatabaseSyncLike;
  try {
    if (options.readOnly && path !== ":memory:") {
      const target = readOnlySqliteTarget(path);
      let opened: DatabaseSyncLike | undefined;
      try {
        opened = new DatabaseSync(target.filename, { readOnly: true });
        // A WAL file a writer has open: reading needs its -shm, which a read-only volume may refuse.
        if (!target.immutable) opened.prepare("select count(*) from sqlite_master").all();
      } catch (e) {
        if (target.immutable) throw e;
        try {
          opened?.close();
        } catch { /* already unusable */ }
        opened = new DatabaseSync(`file:${encodeURI(path).replace(/[?#]/g, encodeURIComponent)}?immutable=1`, { readOnly: true });
      }
      raw = opened;
    } else raw = new DatabaseSync(path);
  } catch (e) {
    throw new Error(`Cannot open SQLite database "${path}": ${(e as Error).message}`);
  }
  raw.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 30_000))}`);
  if (!options.readOnly) {
    if (path !== ":memory:" && options.wal !== false) raw.exec("PRAGMA journal_mode = WAL");
    raw.exec("PRAGMA synchronous = NORMAL");
    raw.exec("PRAGMA foreign_keys = ON");
  }
  return new Kysely<DB>({ dialect: new SqliteDialect({ database: adaptDatabaseSync(raw) }) });
}
