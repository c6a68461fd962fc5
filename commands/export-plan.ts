/** `rtexport export-plan`: each plan with everything it references into the per-patient/per-plan tree. */
import { InvalidArgumentError } from "commander";
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { addAnonymizeOptions, type AnonymizeOptionSpec, anonymizeOptionsFrom, anonymizeOptionsGiven } from "../cli/anonymize_options.ts";
import { addDatabaseTimeoutOption, checkDatabaseUrl, collect, defineCommand, errorMessage, ExitCode, parsePositiveInt, runMain, runStage, UsageError } from "../cli/mod.ts";
import { addClaimOptions, claimJob, claimLedgerOptions } from "../cli/claim_options.ts";
import { addAuditOption, addPaceOptions, addRetryOptions, pacerFrom, retryPolicyFrom } from "../cli/pace.ts";
import type { AnonymizeOptions } from "../lib/anonymize/anonymize.ts";
import { removeStale } from "../lib/fs/stale.ts";
import { DEFAULT_MOVE_PORT } from "../lib/export/dicom_source.ts";
import { exportPlans } from "../lib/export/export.ts";
import { cleanStaging } from "../lib/export/staging.ts";
import { DEFAULT_ITEMS, type Item, ITEMS, parseItems } from "../lib/layout/tree.ts";
import { defaultJournalDirs } from "../lib/ledger/journal.ts";
import { defaultLedgerUrl } from "../lib/ledger/ledger.ts";
import type { FileRecord, RtRecord } from "../lib/records/types.ts";
import type { StageOptions } from "../lib/stage/stage.ts";


function parseName(value: string): string {
  const name = value.trim();
  // deno-lint-ignore no-control-regex
  if (name === "" || /[\x00-\x1f\x7f]/.test(name)) throw new InvalidArgumentError("expected the name of the person who authorized the export.");
  return name;
}

/** The de-identification options, as `anonymize` has them; the key flags are --anonymize-key* (--key is TLS's). */
const ANONYMIZE_OPTIONS: AnonymizeOptionSpec = { keyFlags: "anonymize-key", headingPrefix: "With --anonymize, " };

/** Items that are DICOM: the only ones de-identification can write (a PDF or a plan file could carry anything). */
const DICOM_ITEMS: readonly Item[] = ["patient-dicom", "rt-objects"];

/**
 * The tree files an object shared by plans (a structure set, a registration) in each plan's
 * folder; de-identified and named by its UID it is one file: the copies after the first (same
 * SOP Instance UID, same bytes) are left out. A different object with the same UID goes on, and
 * the anonymize stage reports the clash.
 */
async function* once(records: AsyncIterable<RtRecord>): AsyncGenerator<RtRecord> {
  const seen = new Map<string, unknown>();
  for await (const r of records) {
    if (r.type === "file" && typeof r.sopInstanceUid === "string") {
      if (seen.has(r.sopInstanceUid) && seen.get(r.sopInstanceUid) === r.sha256 && r.sha256 !== undefined) continue;
      if (!seen.has(r.sopInstanceUid)) seen.set(r.sopInstanceUid, r.sha256);
    }
    yield r;
  }
}

/**
 * export-plan --anonymize: the export runs into a private staging folder under --out (objects
 * from a peer are staged there too) and the anonymize stage writes only de-identified copies
 * under --out (uid layout: no name, ID or folder name of the source in any path); patient and
 * plan records leave with the new identity. The staging folder goes when the run ends, and a
 * killed run's at the next start.
 */
function exportAnonymized(
  exportOptions: Parameters<typeof exportPlans>[1] & { out: string }, anonymize: AnonymizeOptions,
) {
  return async function* (input: AsyncIterable<RtRecord>, stage: StageOptions): AsyncGenerator<RtRecord> {
    const { anonymizeRecords } = await import("../lib/anonymize/stage.ts");
    const out = exportOptions.out;
    const work = join(out, ".rtexport");
    removeStale(work, /^export-staging-(\d+)$/);
    const staging = join(work, `export-staging-${process.pid}`);
    try {
      // The export's ledger rows would name the patients' folders: only the anonymized outputs are recorded.
      const exported = exportPlans(input, {
        ...exportOptions, out: staging, retrieve: exportOptions.retrieve && { ...exportOptions.retrieve, staging: join(staging, ".peer") },
        signal: stage.signal, onEvent: stage.onEvent,
      });
      yield* anonymizeRecords(once(exported), { ...anonymize, ...stage, out, layout: "uid" });
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  };
}

export const main = defineCommand({
  name: "export-plan",
  summary: "export each plan with everything it references into the per-patient/per-plan tree",
  description: [
    "Reads `patient` and `plan` records (from list-patients) on stdin. A patient record alone means all of",
    "its plans. With --out the tree is written (Last_First_MRN/DICOM/…, Last_First_MRN/<Plan>/{DICOM,",
    "Documents,Fraction_Files,Live_Images,Logs,Plan_Files,Screenshots}) and `file` records point into it;",
    "without --out, `file` records point at the source and carry `dest` (the tree path) for copy-files.",
    `Items (--items, comma-separated or repeated): ${Object.keys(ITEMS).join(", ")}, all.`,
    `Default items: ${DEFAULT_ITEMS.join(", ")}.`,
  ].join("\n"),
  peer: "optional",
  examples: [
    "rtexport list-patients --from catalog --db sqlite:catalog.db --vault vault | rtexport export-plan --out export",
    "rtexport list-patients --from dicom --peer aria | rtexport export-plan --peer aria --get --out export",
    "rtexport list-patients --from catalog --db sqlite:catalog.db --vault vault | rtexport export-plan --host 127.0.0.1 --port 11112 --called-aet RTEXPORT-SCP --get --out export",
    "rtexport list-patients --from folder old/ | rtexport export-plan | rtexport copy-files --to export",
    "rtexport list-patients --from dicom --peer aria | rtexport export-plan --peer aria --get --to export | rtexport copy-files --to export",
    "rtexport list-patients --from dicom --peer aria | rtexport export-plan --peer aria --get --workers 4 --out export",
    "rtexport list-patients --from dicom --peer aria | rtexport export-plan --peer aria --move-port 11113 --workers 4 --out export  # one receiver for the 4 workers",
    "rtexport list-patients --from catalog --db sqlite:catalog.db | rtexport export-plan --out /mnt/shared/export --ledger postgres://rtx@db/migration  # on every machine",
    "rtexport list-patients --from catalog --db sqlite:catalog.db | rtexport export-plan --out export --verify",
    "rtexport list-patients --from catalog --db sqlite:catalog.db --vault vault | rtexport export-plan --out research --anonymize --anonymize-key-file site.key --preset rt-research",
  ],
  configure(cmd) {
    cmd.option("--out <dir>", "write the tree here (default: only resolve, for copy-files)");
    cmd.option("--items <list>", "what to export (comma-separated; repeatable)", collect);
    cmd.option("--include-unapproved", "also export plans whose approval is not APPROVED (an explicit authorization)");
    cmd.option("--authorized-by <name>", "export plans whose approval is not APPROVED on the authorization of this person, recorded in the ledger for each such plan", parseName);
    cmd.option("--db <url>", "catalog database, when the records do not carry a usable one (e.g. a password)");
    cmd.option("--vault <dir>", "storage vault, overriding the one on the records");
    cmd.option("--ledger <url>", "ledger database (default: sqlite:<out>/.rtexport/ledger.sqlite)");
    addDatabaseTimeoutOption(cmd);
    cmd.option("--parallel <n>", "files copied at once (per worker)", parsePositiveInt, 4);
    addClaimOptions(cmd, { job: "export-plan", items: "patients", verb: "exported" });
    cmd.option("--verify", "rehash files an earlier run exported before counting them as done: changed ones are reported, missing ones exported again");
    cmd.option("--staging <dir>", "with a DICOM peer and no --out: where retrieved objects wait for copy-files (it removes each once copied)", ".rtexport-staging");
    cmd.option(
      "--to <dir>",
      "with a DICOM peer and no --out: the folder copy-files --to writes; what copy-files has copied there (its ledger says so) is not retrieved again (--ledger then names copy-files's ledger, if it is not the default)",
    );
    cmd.option("--get", "with a DICOM peer: retrieve by C-GET (default C-MOVE to an in-process receiver)");
    cmd.option("--move-aet <ae>", "with a DICOM peer: C-MOVE destination AE title (default: the calling AE title)");
    cmd.option("--move-port <port>", "with a DICOM peer: port of the C-MOVE receiver", parsePositiveInt, DEFAULT_MOVE_PORT);
    cmd.option(
      "--anonymize",
      "write only de-identified copies under --out (PS3.15 Annex E, keyed UIDs, uid layout; the options below, as `anonymize` takes them); DICOM items only; one worker; no ledger unless --ledger (outside --out)",
    );
    addAnonymizeOptions(cmd, ANONYMIZE_OPTIONS);
    addRetryOptions(cmd);
    addPaceOptions(cmd);
    addAuditOption(cmd);
  },
  human: {
    record(r: RtRecord) {
      if (r.type === "file") return `${(r as FileRecord).path}`;
      return undefined;
    },
    detail: true,
  },
  async run(ctx) {
    const o = ctx.options;
    let items;
    try {
      items = o.items ? parseItems(o.items) : DEFAULT_ITEMS;
    } catch (e) {
      throw new UsageError(errorMessage(e));
    }
    const stray = o.anonymize ? undefined : anonymizeOptionsGiven(o, ANONYMIZE_OPTIONS);
    if (stray) throw new UsageError(`${stray} and the other de-identification options go with --anonymize`);
    if (o.anonymize) {
      if (!o.out) throw new UsageError("--anonymize needs --out: the de-identified copies are written there");
      if (o.workers > 1) throw new UsageError("--anonymize runs one worker (--workers 1)");
      const other = o.items ? items.filter((i) => !DICOM_ITEMS.includes(i)) : [];
      if (other.length > 0) throw new UsageError(`--anonymize writes DICOM only: ${other.join(", ")} cannot be de-identified (leave them out of --items)`);
      items = items.filter((i) => DICOM_ITEMS.includes(i));
    }
    if (o.to && o.out) throw new UsageError("--to goes without --out: with --out export-plan writes the tree itself");
    // With --to the pipeline's copy-files owns the ledger's items; export-plan claims nothing, so
    // workers here (or on other machines) would each retrieve everything.
    if (o.to && o.workers > 1) {
      throw new UsageError("--to exports one patient at a time (--workers 1): for several workers or machines, export with --out into the shared tree");
    }
    checkDatabaseUrl(o.db);
    checkDatabaseUrl(o.ledger);
    const input = ctx.stdinRecords();
    if (!input) throw new UsageError("export-plan reads patient and plan records on stdin (pipe list-patients into it)");
    const out = o.out ? resolve(ctx.io.cwd, o.out) : undefined;
    const workers: number = o.workers;
    const peer = ctx.peer?.host ? ctx.peer : undefined;
    if (o.anonymize) {
      const anonymize = await anonymizeOptionsFrom(o, ANONYMIZE_OPTIONS);
      return await runStage(ctx, {
        input,
        stage: exportAnonymized({
          out: out!, items, includeUnapproved: !!o.includeUnapproved, authorizedBy: o.authorizedBy, db: o.db, vault: o.vault, parallel: o.parallel, peer,
          retrieve: { mode: o.get ? "get" : "move", moveAet: o.moveAet, movePort: o.movePort, retry: retryPolicyFrom(o) }, pace: pacerFrom(o, ctx.io.env),
        }, anonymize),
        options: {},
        ledger: o.ledger,
        verb: "export",
        audit: {
          action: "export",
          source: peer ? `${peer.calledAet}@${peer.host}:${peer.port}` : "the records' catalogs and folders",
          destination: out!,
          anonymized: true,
        },
      });
    }
    // With --to, the ledger is copy-files's: read for what it copied, written only with hand-off rows.
    const to = o.to ? resolve(ctx.io.cwd, o.to) : undefined;
    const ledger: string | undefined = o.ledger ?? (out ? defaultLedgerUrl(out) : to ? defaultLedgerUrl(to) : undefined);
    if (peer && !out && !to) {
      ctx.log.info("Without --to, a rerun retrieves every object again: give --to with copy-files's --to folder to retrieve only what it has not copied");
    }
    // Objects staged by processes that are gone (killed runs) are removed before and after the run:
    // after a run that completed the job, only the staging of workers still alive can remain.
    const stagingRoot = out ? join(out, ".rtexport") : resolve(ctx.io.cwd, o.staging);
    const clean = () => cleanStaging(stagingRoot, ledger).catch((e) => ctx.log.warn(`Cannot clean the staging folder "${stagingRoot}": ${errorMessage(e)}`));
    if (peer) await clean();
    const code = await runStage(ctx, {
      input,
      stage: to ? (records, opts) => exportPlans(records, { ...opts, ledger: undefined, handoff: opts.ledger && { tree: to, ledger: opts.ledger } }) : exportPlans,
      options: {
        out, items, includeUnapproved: !!o.includeUnapproved, authorizedBy: o.authorizedBy, db: o.db, vault: o.vault, parallel: o.parallel, peer,
        retrieve: { mode: o.get ? "get" : "move", moveAet: o.moveAet, movePort: o.movePort, staging: stagingRoot, retry: retryPolicyFrom(o) },
        workers, job: claimJob(o, ctx.optionSource("job") !== "default", out ?? to ?? "stdout"), verify: !!o.verify, pace: pacerFrom(o, ctx.io.env),
      },
      ledger,
      ledgerOptions: {
        ...claimLedgerOptions(o),
        journalDirs: (out ?? to) && ledger ? defaultJournalDirs(ledger, [join((out ?? to)!, ".rtexport")]) : undefined,
      },
      verb: "export",
      audit: {
        action: "export",
        source: peer ? `${peer.calledAet}@${peer.host}:${peer.port}` : "the records' catalogs and folders",
        destination: out ?? (to ? `${to} (by copy-files)` : "records for copy-files"),
      },
    });
    if (peer && code === ExitCode.OK) await clean();
    return code;
  },
});

runMain(import.meta, main);
