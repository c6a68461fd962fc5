/**
 * How long opening a database connection may take before it counts as unreachable (the
 * `--db-timeout` flag). A refused or unanswered SQL Server otherwise took tedious's 15 s, times
 * its retries; five seconds is enough for a database on the same network.
 */

/** Seconds a database connection may take by default. */
export const DEFAULT_DB_TIMEOUT_S = 5;

let timeoutMs = DEFAULT_DB_TIMEOUT_S * 1000;

/** Sets the time every database connection of this process may take (seconds). */
export function setDatabaseTimeout(seconds: number): void {
  if (!(seconds > 0)) throw new RangeError(`Invalid database timeout ${seconds}: expected a positive number of seconds`);
  timeoutMs = Math.round(seconds * 1000);
}

/** The time a database connection may take, in milliseconds. */
export function databaseTimeoutMs(): number {
  return timeoutMs;
}
