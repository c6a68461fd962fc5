/**
 * The work-claiming options, defined once for every command that claims its work in a ledger
 * (export-plan, copy-files, push, anonymize): `--workers`, `--job`, `--lease`. Processes on any
 * number of machines started with the same input, `--job` and `--ledger` split the work.
 */
import { createHash } from "node:crypto";
import type { Command } from "commander";
import type { LedgerOpenOptions } from "../lib/ledger/ledger.ts";
import { parsePositiveInt } from "./peer.ts";

/** What a command says of its own work items. */
export interface ClaimOptionSpec {
  /** The default job name: the command's own, so two commands sharing a ledger never share a job. */
  job: string;
  /** The item, plural, for the help ("patients"). */
  items: string;
  /** What one worker does at once, for --workers's help ("exported", "copied"). */
  verb: string;
}

/**
 * Adds `--workers N`, `--job NAME` and `--lease SECONDS`.
 *
 * @example
 * ```ts
 * addClaimOptions(cmd, { job: "copy-files", items: "patients", verb: "copied" });
 * ```
 */
export function addClaimOptions(cmd: Command, spec: ClaimOptionSpec): void {
  cmd.option(
    "--workers <n>",
    `${spec.items} ${spec.verb} at once in this process, each claimed in the ledger (processes on other machines with the same input and --ledger share the work)`,
    parsePositiveInt,
    1,
  );
  cmd.option(
    "--job <name>",
    `the ledger job this run's workers share (default: "${spec.job} to " and where the run writes, so runs with other destinations never share items; give the same name on machines that mount the destination at other paths)`,
    spec.job,
  );
  cmd.option(
    "--lease <seconds>",
    `how long a claimed item (one of the ${spec.items}) stays this worker's without a heartbeat; a dead worker's items are taken over after it`,
    parsePositiveInt,
    60,
  );
}

/** How the ledger of a claiming run is opened: its lease, and a connection per claimer beside the run's own. */
export function claimLedgerOptions(o: Record<string, unknown>): Pick<LedgerOpenOptions, "leaseMs" | "poolSize"> {
  return { leaseMs: Number(o.lease) * 1000, poolSize: Number(o.workers) + 3 };
}

/**
 * Whether a file command (copy-files, push, anonymize) claims its work: with a server ledger
 * (PostgreSQL, SQL Server: several machines may share it), with `--workers` above 1, or when
 * `--job` is given. With a SQLite ledger and one worker it streams as it always did (records go
 * on as they arrive: `export-plan | push` starts with the first object).
 */
export function claimsWanted(o: Record<string, unknown>, ledger: string | undefined, jobGiven: boolean): boolean {
  if (!ledger) return false;
  return Number(o.workers) > 1 || jobGiven || !/^sqlite:/i.test(ledger);
}

/**
 * The ledger job of a claiming run: `--job` as given, or by default the command and where the run
 * writes (`copy-files to /mnt/export`, `push to PACS@10.0.0.5:104`). Items carry only their input
 * records, and each worker writes them where its own options say: two runs sharing a ledger with
 * other destinations must never share a job, or each would do the other's items into its own
 * destination. Long destinations are shortened and end with a hash of the whole.
 *
 * @example
 * ```ts
 * claimJob({ job: "copy-files" }, false, "/mnt/export"); // "copy-files to /mnt/export"
 * claimJob({ job: "migration-2026" }, true, "/mnt/export"); // "migration-2026"
 * ```
 */
export function claimJob(o: Record<string, unknown>, given: boolean, destination: string): string {
  const job = String(o.job);
  if (given) return job;
  const d = destination.length <= 160
    ? destination
    : `…${destination.slice(-120)}#${createHash("sha256").update(destination).digest("hex").slice(0, 12)}`;
  return `${job} to ${d}`;
}
