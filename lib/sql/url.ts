/** Database URLs (`sqlite:PATH`, `postgres://…`, `mssql://…`): parsed and checked without loading any driver. */
export type SqlDialectName = "sqlite" | "postgres" | "mssql";

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

