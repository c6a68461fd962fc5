/** Option parsing helpers several commands share. */
import { type Command, InvalidArgumentError, Option } from "commander";
import { DEFAULT_DB_TIMEOUT_S } from "../lib/sql/timeout.ts";
import { DatabaseUrlError, parseDatabaseUrl } from "../lib/sql/url.ts";
import { UsageError } from "./errors.ts";

/**
 * Adds `--db-timeout SECONDS`, how long connecting to a database (`--db`, `--ledger`) may take
 * before the command gives up with one line naming it; defineCommand applies it.
 */
export function addDatabaseTimeoutOption(cmd: Command): void {
  cmd.addOption(
    new Option("--db-timeout <seconds>", "how long connecting to a database (--db, --ledger) may take before it counts as unreachable")
      .argParser((value: string) => {
        const n = Number(value);
        if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0)) throw new InvalidArgumentError("expected a positive number of seconds.");
        return n;
      })
      .default(DEFAULT_DB_TIMEOUT_S),
  );
}

/** commander argument parser for a repeatable option: collects every value in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Checks a `--db`/`--ledger` URL's form before anything is opened (a usage error names it). */
export function checkDatabaseUrl(url: string | undefined): void {
  if (!url) return;
  try {
    parseDatabaseUrl(url);
  } catch (e) {
    if (e instanceof DatabaseUrlError) throw new UsageError(e.message);
    throw e;
  }
}
