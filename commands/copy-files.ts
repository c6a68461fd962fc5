/** `rtexport copy-files`: atomic, sha256-verified, resumable, parallel copies into a tree. */
import { Option } from "commander";
import { resolve } from "node:path";
import { addDatabaseTimeoutOption, checkDatabaseUrl, defineCommand, parsePositiveInt, runMain, runStage, UsageError } from "../cli/mod.ts";
import { addClaimOptions, claimJob, claimLedgerOptions, claimsWanted } from "../cli/claim_options.ts";
import { addAuditOption } from "../cli/pace.ts";
import { COPY_LAYOUTS, copyFiles } from "../lib/copy/copy_files.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import { claimedStage } from "../lib/ledger/claimed_stage.ts";
import { defaultLedgerUrl } from "../lib/ledger/ledger.ts";
import type { FileRecord, RtRecord } from "../lib/records/types.ts";

export const main = defineCommand({
  name: "copy-files",
  summary: "copy files into a tree: atomic, verified by hash, resumable, parallel",
  usage: "[PATH...]",
  description: [
    "Copies each `file` record's file (or each file under PATH) into --to: at the record's `dest` when it has",
    "one (export-plan sets it), else where --layout puts it. Each copy is written to a temporary file,",
    "flushed, read back and hashed, then linked into place; a file already there with the same content is",
    "skipped, a different one is never overwritten (reported as a conflict). Modification times are kept.",
    "Layouts: seed (Last_First_MRN/DICOM/<Modality>_<Series>/…, Last_First_MRN/<Plan>/DICOM/…), flat, series",
    "(<PatientID>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm).",
  ].join("\n"),
  examples: [
    "rtexport list-patients --from catalog --db sqlite:catalog.db --vault vault | rtexport export-plan | rtexport copy-files --to export",
    "rtexport copy-files --to /mnt/archive --layout series /data/incoming",
    "rtexport copy-files --to /mnt/shared/archive --ledger postgres://rtx@db/migration --workers 2 /mnt/shared/incoming  # on every machine",
  ],
  configure(cmd) {
    cmd.requiredOption("--to <dir>", "destination folder");
    cmd.addOption(new Option("--layout <layout>", "where files without a dest go").choices(COPY_LAYOUTS).default("seed"));
    cmd.option("--parallel <n>", "files copied at once (per worker)", parsePositiveInt, 4);
    cmd.option("--ledger <url>", "ledger database (default: sqlite:<to>/.rtexport/ledger.sqlite)");
    addDatabaseTimeoutOption(cmd);
    addClaimOptions(cmd, { job: "copy-files", items: "patients", verb: "copied" });
    cmd.option("--no-verify", "do not read each copy back before putting it in place");
    cmd.option("--pattern <glob>", "in directories given, only files whose name matches (*.dcm, RP*.dcm; case-insensitive)");
    cmd.argument("[path...]", "files or folders to copy (instead of file records on stdin)");
    addAuditOption(cmd);
  },
  human: {
    record(r: RtRecord) {
      if (r.type !== "file") return undefined;
      const c = r.copy as { status?: string } | undefined;
      return `${c?.status ?? ""}\t${(r as FileRecord).path}`;
    },
    detail: true,
  },
  run(ctx) {
    const o = ctx.options;
    checkDatabaseUrl(o.ledger);
    const input = ctx.args.length ? pathRecords(ctx.args, o.pattern ? { pattern: o.pattern } : {}) : ctx.stdinRecords();
    if (!input) throw new UsageError("copy-files needs PATHs or file records on stdin");
    const to = resolve(ctx.io.cwd, o.to);
    // With a shared ledger (or --workers, --job) each patient's files are a work item claimed in it.
    const ledger: string = o.ledger ?? defaultLedgerUrl(to);
    const jobGiven = ctx.optionSource("job") !== "default";
    const claims = claimsWanted(o, ledger, jobGiven);
    return runStage(ctx, {
      input,
      stage: claims ? claimedStage(copyFiles, { name: "copy-files", job: claimJob(o, jobGiven, to), workers: o.workers }) : copyFiles,
      options: { to, layout: o.layout, parallel: o.parallel, verify: o.verify },
      ledger,
      ledgerOptions: claims ? claimLedgerOptions(o) : undefined,
      verb: "copy",
      audit: { action: "copy", source: ctx.args.length ? ctx.args.join(", ") : "stdin", destination: to },
    });
  },
});

runMain(import.meta, main);
