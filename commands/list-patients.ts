/** `rtexport list-patients`: patients and their plans from a catalog database, a folder or a Q/R peer. */
import { Option } from "commander";
import { resolve } from "node:path";
import { DEFAULT_STATUSES } from "../lib/catalog/catalog.ts";
import { addDatabaseTimeoutOption, collect, defineCommand, errorMessage, FatalError, runMain, UsageError } from "../cli/mod.ts";
import type { PatientRecord, PlanRecord, RtRecord } from "../lib/records/types.ts";
import { DatabaseUrlError, parseDatabaseUrl } from "../lib/sql/connect.ts";
import { type ListProblem, listPatients, type ListSource } from "../lib/sources/list.ts";
import { checkListFilter, DEFAULT_PHANTOM_PATTERNS, type ListFilter, ListFilterError } from "../lib/sources/filter.ts";


function parseSince(value: string): string {
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(t)) throw new UsageError(`Invalid --since "${value}": expected a date like 2024-01-31`);
  return value;
}

export const main = defineCommand({
  name: "list-patients",
  summary: "list patients and their plans from a catalog database, a folder or a Q/R peer",
  usage: "[PATH...]",
  description: [
    "Emits one `patient` record per patient, each followed by its `plan` records.",
    "Plans of the statuses Deliverable, Authorized, Disallowed, Under Treatment, Discontinued and Completed",
    "are listed; physician (contour-only), QA, LOT simulation and setup plans, phantom records and plans whose",
    "approval is not APPROVED are left out unless a flag includes them (--include-unapproved is the same flag",
    "as export-plan's and retrieve's).",
    "",
    "Each source applies the filters from what it carries (docs/export.md, \"Filters per source\"): a catalog",
    "from its columns; a folder and a Q/R peer from DICOM: QA plans by Plan Intent (VERIFICATION, MACHINE_QA,",
    "QA), setup plans by their beams (folder only), phantoms by Quality Control Subject or --phantom-pattern,",
    "--since by the objects' dates (folder) or Study Date (peer). A filter a source cannot apply (--status,",
    "--include-physician and --include-lot on a folder or peer; --include-setup on a peer) is a usage error.",
  ].join("\n"),
  peer: "optional",
  examples: [
    "rtexport list-patients --from catalog --db sqlite:clinic/catalog.db --vault clinic/vault",
    "rtexport list-patients --from folder /data/old-export --patient 12345",
    "rtexport list-patients --from catalog --db sqlite:clinic/catalog.db --vault clinic/vault --patient 12345 --plan P-0042",
    "rtexport list-patients --from dicom --host aria --port 105 --called-aet VMSDBD --since 2024-01-01",
    "rtexport list-patients --from folder /data/old-export --since 2024-06-01 --include-qa --phantom-pattern 'QA*' --phantom-pattern '*PHANTOM*'",
  ],
  configure(cmd) {
    cmd.addOption(new Option("--from <source>", "where to list from").choices(["catalog", "folder", "dicom"]).default("catalog"));
    cmd.option("--db <url>", "catalog database: sqlite:PATH, postgres://user:pass@host/db or mssql://user:pass@host/db");
    addDatabaseTimeoutOption(cmd);
    cmd.option("--vault <dir>", "the storage vault the catalog's file paths are relative to");
    cmd.option("--patient <id>", "only this patient (repeatable; default all)", collect);
    cmd.option("--plan <id>", "only the plan with this plan ID, UID or label, and its patient (repeatable; default all)", collect);
    cmd.option("--since <date>", "only patients or plans updated after this date (ISO 8601)", parseSince);
    cmd.option("--status <status>", `plan statuses to list (repeatable; default: ${DEFAULT_STATUSES.join(", ")})`, collect);
    cmd.option("--include-unapproved", "also list plans whose approval is not APPROVED (an explicit authorization; export-plan and retrieve take the same flag)");
    cmd.option("--include-physician", "also list physician (contour-only) plans");
    cmd.option("--include-qa", "also list QA plans");
    cmd.option("--include-lot", "also list LOT simulation plans");
    cmd.option("--include-setup", "also list setup/alignment plans");
    cmd.option("--include-phantom", "also list phantom records");
    cmd.option(
      "--phantom-pattern <glob>",
      `patient ID or name of phantom records (repeatable; *, ?, case-insensitive; default ${DEFAULT_PHANTOM_PATTERNS.join(", ")}; '' for none; a list in rtexport.json)`,
      collect,
    );
    cmd.argument("[path...]", "folders to list (--from folder)");
  },
  human: {
    record(r: RtRecord) {
      if (r.type === "patient") {
        const p = r as PatientRecord;
        return `${p.patientId}  ${[p.name?.family, p.name?.given].filter(Boolean).join(", ")}  (${p.plans ?? "?"} plan(s))`;
      }
      if (r.type === "plan") {
        const p = r as PlanRecord;
        return `  └ ${p.label ?? p.planUid}  ${p.status ?? ""} ${p.approval ?? ""} ${(p.machines ?? []).join(", ")}`.trimEnd();
      }
      return undefined;
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const includePlanTypes = [
      o.includePhysician && "PHYSICIAN", o.includeQa && "QA", o.includeLot && "LOT_SIMULATION", o.includeSetup && "SETUP",
    ].filter(Boolean) as string[];
    let unapproved = 0;
    const filter: ListFilter = {
      patientIds: o.patient, since: o.since, statuses: o.status, includePlanTypes, includePhantoms: !!o.includePhantom, phantomPatterns: o.phantomPattern,
      includeUnapproved: !!o.includeUnapproved, onUnapproved: () => void unapproved++, plans: o.plan,
    };
    try {
      checkListFilter(o.from, filter);
    } catch (e) {
      if (!(e instanceof ListFilterError)) throw e;
      const flag = e.filter === "statuses" ? "--status" : `--include-${{ PHYSICIAN: "physician", LOT_SIMULATION: "lot", SETUP: "setup" }[e.planType ?? ""] ?? "?"}`;
      throw new UsageError(`${flag} cannot be used with --from ${o.from}: ${/^[A-Z][a-z]/.test(e.message) ? e.message.charAt(0).toLowerCase() + e.message.slice(1) : e.message}`);
    }
    let patients = 0;
    const emit = async (r: RtRecord) => {
      if (r.type === "patient") patients++;
      await ctx.out.write(r);
    };
    let source: ListSource;
    if (o.from === "catalog") {
      if (!o.db) throw new UsageError("list-patients --from catalog needs --db URL (sqlite:PATH, postgres://… or mssql://…)");
      try {
        parseDatabaseUrl(o.db);
      } catch (e) {
        if (e instanceof DatabaseUrlError) throw new UsageError(e.message);
        throw e;
      }
      // Absolute paths on the records, so a later stage may run elsewhere.
      const db = o.db.startsWith("sqlite:") && o.db !== "sqlite::memory:" ? `sqlite:${resolve(ctx.io.cwd, o.db.slice(7))}` : o.db;
      source = { from: "catalog", db, vault: o.vault ? resolve(ctx.io.cwd, o.vault) : undefined };
    } else if (o.from === "folder") {
      if (ctx.args.length === 0) throw new UsageError("list-patients --from folder needs at least one PATH");
      source = { from: "folder", paths: ctx.args.map((p) => resolve(ctx.io.cwd, p)) };
    } else {
      if (!ctx.peer?.host) throw new UsageError("list-patients --from dicom needs --host (or --peer NAME)");
      source = { from: "dicom", peer: ctx.peer };
    }
    try {
      for await (const r of listPatients(source, filter)) {
        if (ctx.out.closed) break;
        if (r.type === "problem") {
          const { what, reason } = (r as ListProblem).problem;
          ctx.reporter.failed(`Cannot list ${what}: ${reason}`, { item: what });
          continue;
        }
        await emit(r);
      }
    } catch (e) {
      throw new FatalError(errorMessage(e));
    }
    ctx.reporter.done(patients);
    const left = unapproved ? `; ${unapproved} plan(s) not approved left out (--include-unapproved lists them)` : "";
    ctx.log.info(`${patients} patient(s) listed${left}`);
  },
});

runMain(import.meta, main);
