/** `rtexport anonymize`: de-identify DICOM files per PS3.15 Annex E, keeping RT references intact. */
import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { addAnonymizeOptions, anonymizeOptionsFrom } from "../cli/anonymize_options.ts";
import { addDatabaseTimeoutOption, checkDatabaseUrl, type CommandContext, defineCommand, runMain, runStage, UsageError } from "../cli/mod.ts";
import { addClaimOptions, claimJob, claimLedgerOptions, claimsWanted } from "../cli/claim_options.ts";
import { addAuditOption } from "../cli/pace.ts";
import { createAnonymizeContext } from "../lib/anonymize/anonymize.ts";
import { anonymizeRecords } from "../lib/anonymize/stage.ts";
import { claimedStage } from "../lib/ledger/claimed_stage.ts";
import { pathRecords } from "../lib/fs/walk.ts";

const OPTION_SPEC = { keyFlags: "key" } as const;

function configure(cmd: Command): void {
  cmd.argument("[path...]", "DICOM files or directories (default: file records on stdin)");
  const out = "Output:";
  const add = (group: string, o: Option) => cmd.addOption(o.helpGroup(group));
  addAnonymizeOptions(cmd, OPTION_SPEC);
  add(out, new Option("--write-map <file.csv>", "write the mapping used (PHI: store it safely)"));
  add(out, new Option("-o, --out <dir>", "output directory"));
  add(out, new Option("--in-place", "overwrite the input files instead of writing to --out"));
  add(out, new Option("--pattern <glob>", "in directories given, only files whose name matches (*.dcm, RP*.dcm; case-insensitive)"));
  // Accepted for scripts written for the pipelined writer; files are now written one at a time (faster, measured).
  add(out, new Option("--concurrency <n>", "no effect: files are anonymized and written one at a time").default("1").hideHelp());
  add(out, new Option("--layout <layout>", "uid: <patient>/<series UID>/<SOP UID>.dcm; mirror: input paths (may carry PHI)").choices(["uid", "mirror"]).default("uid"));
  add(out, new Option("--ledger <url>", "record each file's outcome in a ledger (sqlite:FILE, postgres://…; keep it outside --out: it lists input paths); a rerun with it skips files already done"));
  add(out, new Option("--force", "with --ledger: anonymize every file again, also those an earlier run wrote"));
  addDatabaseTimeoutOption(cmd);
  addClaimOptions(cmd, { job: "anonymize", items: "patients", verb: "anonymized" });
  addAuditOption(cmd);
}

async function run(c: CommandContext): Promise<number> {
  const o = c.options;
  const options = await anonymizeOptionsFrom(o, OPTION_SPEC);
  if (o.inPlace && o.out) throw new UsageError("Give either --out or --in-place, not both");
  if (!o.inPlace && !o.out) throw new UsageError("An output directory is required: give --out DIR (or --in-place to overwrite the inputs)");
  if (o.inPlace && o.layout !== "uid" && c.optionSource("layout") === "cli") throw new UsageError("--layout has no effect with --in-place");
  checkDatabaseUrl(o.ledger);
  const concurrency = Number(o.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new UsageError(`Invalid value for --concurrency: "${o.concurrency}" (expected 1 to 64)`);
  }
  const input = c.args.length > 0 ? pathRecords(c.args, o.pattern ? { pattern: o.pattern } : {}) : c.stdinRecords();
  if (!input) throw new UsageError("No input: give files or directories, or pipe file records on stdin");
  const jobGiven = c.optionSource("job") !== "default";
  if (!o.ledger && (o.workers > 1 || c.optionSource("job") === "cli")) throw new UsageError("--workers and --job claim work in a ledger: give --ledger");
  // With a shared ledger (or --workers, --job) each patient's files are a work item claimed in it,
  // named in the ledger by a hash of the patient ID. One context for all items: one mapping, and
  // --write-map written with every patient this process did.
  const claims = claimsWanted(o, o.ledger, jobGiven);
  const context = claims ? createAnonymizeContext(options) : undefined;
  return await runStage(c, {
    input,
    stage: claims
      ? claimedStage(anonymizeRecords, {
        name: "anonymize", job: claimJob(o, jobGiven, o.inPlace ? "files in place" : resolve(c.io.cwd, String(o.out))), workers: o.workers, hidePatients: true, itemOptions: (opts) => ({ ...opts, context }) })
      : anonymizeRecords,
    options: { ...options, out: o.out, inPlace: o.inPlace === true, layout: o.layout, roots: c.args, concurrency, writeMap: o.writeMap, force: o.force === true },
    ledger: o.ledger,
    ledgerOptions: claims ? claimLedgerOptions(o) : undefined,
    verb: "anonymize",
    audit: { action: "anonymize", source: c.args.length ? c.args.join(", ") : "stdin", destination: o.inPlace ? "in place" : String(o.out), anonymized: true },
  });
}

export const main = defineCommand({
  name: "anonymize",
  summary: "de-identify DICOM files (PS3.15 Annex E) with consistent UID and date remapping",
  usage: "[path...]",
  description: [
    "Applies the Basic Application Level Confidentiality Profile (every row of PS3.15 Table E.1-1) and the",
    "options chosen. UIDs become 2.25.<HMAC-SHA-256(key, uid)>, so references between plans, structure",
    "sets, doses and images still resolve; patients without a --map entry get a keyed pseudonym. Pixel",
    "data is copied as bytes. Objects that may show identifying text in their pixels are refused unless",
    "--allow-burned-in. Each output is written atomically and described by a file record.",
  ].join(" "),
  examples: [
    "rtexport anonymize --key-file site.key --out anon/ export/Smith_John_123/",
    "rtexport anonymize --key-file site.key --out anon/ --retain-dates modified --clean-descriptors --map ids.csv in/",
    "rtexport anonymize --key-file site.key --out anon/ --preset rt-research -v in/",
    "rtexport list-patients … | rtexport export-plan … | rtexport anonymize --key-file site.key --out anon/ | rtexport push …",
    "rtexport anonymize --key-file site.key --out /mnt/shared/anon --ledger postgres://rtx@db/research --workers 2 /mnt/shared/export/  # on every machine",
  ],
  configure,
  human: {
    record: (r) => (r.type === "file" ? `${r.path}` : undefined),
    detail: true,
  },
  run,
});

runMain(import.meta, main);
