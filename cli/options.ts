/** Option parsing helpers several commands share. */
import { DatabaseUrlError, parseDatabaseUrl } from "../lib/sql/url.ts";
import { UsageError } from "./errors.ts";

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
