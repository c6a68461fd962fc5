/** `rtexport retrieve`: a patient, its selected plans, or series and instances by UID from a Q/R peer (C-MOVE or C-GET). */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { addDatabaseTimeoutOption, checkDatabaseUrl, defineCommand, errorMessage, parseAeTitle, parsePort, parsePositiveInt, runMain, runStage, UsageError } from "../cli/mod.ts";
import { addAnonymizeOptions, type AnonymizeOptionSpec, anonymizeOptionsFrom, anonymizeOptionsGiven } from "../cli/anonymize_options.ts";
import { defaultLedgerUrl } from "../lib/ledger/ledger.ts";
import type { FileRecord, RtRecord } from "../lib/records/types.ts";
import { type AllowEntry, parseAllowEntry, tlsFromFiles } from "../lib/net/mod.ts";
import { DEFAULT_MAX_FIND_RESULTS } from "../lib/retrieve/session.ts";
import { retrieveRecords } from "../lib/retrieve/stage.ts";
import { addAuditOption, addPaceOptions, addRetryOptions, pacerFrom, retryPolicyFrom } from "../cli/pace.ts";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function collectAllow(value: string, previous: AllowEntry[] | undefined): AllowEntry[] {
  try {
    return [...(previous ?? []), parseAllowEntry(value)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^Invalid allow entry "[^"]*": /, "") + ".");
  }
}

/** Retrieve reads no records: its work is named by the options. */
async function* nothing(): AsyncGenerator<RtRecord> {}

/** The de-identification options, as `anonymize` has them; the key flags are --anonymize-key* (--key is TLS's). */
const ANONYMIZE_OPTIONS: AnonymizeOptionSpec = { keyFlags: "anonymize-key", identity: false, headingPrefix: "With --anonymize, " };

export const main = defineCommand({
  name: "retrieve",
  summary: "C-FIND and C-MOVE/C-GET from a Q/R peer: a whole patient, selected plans, series or instances",
  description: [
    "Without a filter, retrieves the whole patient: every series of every study (C-FIND at STUDY and SERIES",
    "level), each counted against what the peer holds, plans of any approval. With --plan LABEL and/or",
    "--only-approved, only the selected RTPLANs (approved ones; unapproved too with --include-unapproved),",
    "then what they reference (structure set, its image series, the RTDOSEs, treatment records and RT images that reference the plan) and the registrations that relate the plan's images",
    "to other series, with those series: never a whole study. --series UID and --sop UID retrieve those.",
    "Every query and retrieve names the patient (PatientID), and an object of another patient that arrives",
    "is dropped and reported by its UID, never written. C-MOVE to an in-process storage SCP by default (the",
    "peer must know --move-aet at this host and --move-port); C-GET with --get (objects come back on the",
    "same association); --move-dest AE sends them to a third AE instead (nothing is written here; the",
    "peer's sub-operation counts are reported per request). Files are written atomically to",
    "OUT/<PatientID>/<Study>/<Series>/<SOP>.dcm, one `file` record each; then expected and arrived",
    "objects are compared per plan or series (stderr, and a `retrieve-summary` record).",
    "Exit status 3 when anything expected is missing or any sub-operation failed.",
  ].join(" "),
  examples: [
    "rtexport retrieve --host pacs --port 104 --aec ORTHANC --aet RTEXPORT --move-port 11113 --patient-id 123 --out export/",
    "rtexport retrieve --peer aria --get --patient-id 123 --plan 'Prostate' --out export/",
    "rtexport retrieve --peer aria --get --patient-id 123 --plan 'Boost' --include-unapproved --out export/",
    "rtexport retrieve --peer aria --get --patient-id 123 --new-patient-id RES001 --new-patient-name Research^001 --out study/",
    "rtexport retrieve --peer remote-pacs --get --patient-id 123 --series 1.2.826.0.1.3680043.2.1125.1 --parallel 4 --out export/",
    "rtexport retrieve --peer aria --patient-id 123 --sop 1.2.246.352.71.5.881350300088.376.20180503215858 --move-dest VMSFD-OUT",
  ],
  peer: true,
  configure(cmd: Command) {
    cmd.addOption(new Option("--patient-id <id>", "PatientID (0010,0020) to retrieve").makeOptionMandatory());
    cmd.addOption(
      new Option("--plan <label>", "RT Plan Label to retrieve (repeatable; default: all plans)").argParser(collect),
    );
    cmd.addOption(new Option("--include-unapproved", "with --plan: also plans whose Approval Status is not APPROVED (an explicit authorization; default: approved plans only; the whole patient has them all)"));
    cmd.addOption(new Option("--only-approved", "only plans whose Approval Status is APPROVED: with --plan the default; without it, every approved plan instead of the whole patient"));
    cmd.addOption(
      new Option("--series <uid>", "retrieve this whole series of the patient instead of plans (repeatable)").argParser(
        collect,
      ),
    );
    cmd.addOption(
      new Option("--sop <uid>", "retrieve this instance of the patient by SOP Instance UID instead of plans (repeatable)").argParser(collect),
    );
    cmd.addOption(new Option("--get", "use C-GET instead of C-MOVE"));
    cmd.option(
      "--parallel <n>",
      "retrieve a large series over n associations at once (its instances listed by C-FIND, asked for in n parts by UID list; a peer that refuses UID lists gets one request)",
      parsePositiveInt,
      1,
    );
    cmd.addOption(
      new Option("--move-aet <ae>", "C-MOVE destination AE title (default: the calling AE title)").argParser(
        parseAeTitle,
      ),
    );
    cmd.addOption(
      new Option("--move-port <port>", "port of the receiving SCP for C-MOVE").argParser(parsePort).default(11113),
    );
    cmd.addOption(
      new Option(
        "--move-dest <ae>",
        "C-MOVE to this third AE title the peer knows (a file service, a PACS) instead of here: no receiver, nothing written, the peer's sub-operation counts reported per request (not with --get, --plan, --only-approved)",
      ).argParser(parseAeTitle),
    );
    cmd.addOption(
      new Option("--move-host <address>", "listen address of the receiving SCP (default: the local address of the connection to the peer)"),
    );
    cmd.addOption(
      new Option(
        "--move-from <AE[@address[/bits]]>",
        "caller the receiving SCP accepts C-MOVE sub-operations from (repeatable; default: the peer's AE title from the peer's address)",
      ).argParser(collectAllow),
    );
    cmd.addOption(
      new Option("--max-find-results <n>", "C-FIND matches kept per query; a peer that sends more fails the query").argParser(parsePositiveInt)
        .default(DEFAULT_MAX_FIND_RESULTS),
    );
    cmd.addOption(new Option("--out <dir>", "output folder (required unless --move-dest)"));
    cmd.addOption(new Option("--ledger <url>", "ledger database (default: sqlite:<out>/.rtexport/ledger.sqlite)"));
    addDatabaseTimeoutOption(cmd);
    cmd.addOption(
      new Option(
        "--anonymize",
        "de-identify what arrives (PS3.15 Annex E, keyed UIDs; the options below, as `anonymize` takes them) before it is written under --out; needs --anonymize-key or --anonymize-key-file",
      ),
    );
    cmd.addOption(new Option("--new-patient-id <id>", "write this PatientID into the copies (with --anonymize: for every patient not in --map)"));
    cmd.addOption(
      new Option("--new-patient-name <name>", "write this PatientName into the copies (DICOM PN, e.g. Family^Given)"),
    );
    addAnonymizeOptions(cmd, ANONYMIZE_OPTIONS);
    addRetryOptions(cmd);
    addPaceOptions(cmd);
    addAuditOption(cmd);
  },
  human: {
    record(r) {
      if (r.type === "file") return (r as FileRecord).path;
      if (r.type === "retrieve-summary") return undefined; // already on stderr
      return JSON.stringify(r);
    },
    detail: true,
  },
  async run(ctx) {
    const o = ctx.options;
    let tls;
    try {
      tls = tlsFromFiles(ctx.peer!);
    } catch (e) {
      throw new UsageError(errorMessage(e));
    }
    if (!o.get && !o.moveDest && tls && !(tls.cert && tls.key)) {
      throw new UsageError("C-MOVE with --tls receives over TLS: give --cert and --key for the receiving SCP, or use --get");
    }
    if ((o.series || o.sop) && (o.plan || o.onlyApproved || o.includeUnapproved)) {
      throw new UsageError(`${o.series ? "--series" : "--sop"} cannot be combined with --plan, --include-unapproved or --only-approved`);
    }
    if (o.moveDest) {
      // The plans and structure sets must be read to follow their references: they have to arrive here.
      const clash = [
        [o.get, "--get"], [o.plan, "--plan"], [o.onlyApproved, "--only-approved"], [o.includeUnapproved, "--include-unapproved"], [o.anonymize, "--anonymize"],
        [o.newPatientId !== undefined, "--new-patient-id"], [o.newPatientName !== undefined, "--new-patient-name"], [o.parallel > 1, "--parallel"],
      ].find(([on]) => on);
      if (clash) throw new UsageError(`--move-dest cannot be combined with ${clash[1]}: the objects go to "${o.moveDest}" and never arrive here`);
    } else if (!o.out) {
      throw new UsageError("--out is required (unless --move-dest sends the objects to another AE)");
    }
    if (o.onlyApproved && o.includeUnapproved) throw new UsageError("Give either --include-unapproved or --only-approved, not both");
    checkDatabaseUrl(o.ledger);
    const out = o.out ? resolve(ctx.io.cwd, o.out as string) : undefined;
    if (out) {
      try {
        mkdirSync(out, { recursive: true });
      } catch (e) {
        throw new UsageError(`Cannot create output folder "${o.out}": ${(e as Error).message}`);
      }
    }
    // The profile tables are loaded only with --anonymize (start-up time).
    const anonymize = o.anonymize ? await anonymizeOptionsFrom(o, ANONYMIZE_OPTIONS) : undefined;
    const stray = o.anonymize ? undefined : anonymizeOptionsGiven(o, ANONYMIZE_OPTIONS);
    if (stray) throw new UsageError(`${stray} and the other de-identification options go with --anonymize`);
    return await runStage(ctx, {
      input: nothing(),
      stage: retrieveRecords,
      options: {
        peer: ctx.peer!,
        patientId: o.patientId,
        plans: o.plan,
        includeUnapproved: o.includeUnapproved === true,
        onlyApproved: o.onlyApproved === true ? true : undefined,
        series: o.series,
        sops: o.sop,
        retry: retryPolicyFrom(o),
        pace: pacerFrom(o, ctx.io.env),
        get: o.get === true,
        moveAet: o.moveAet,
        moveDest: o.moveDest,
        movePort: o.movePort,
        moveHost: o.moveHost,
        moveFrom: o.moveFrom,
        maxFindResults: o.maxFindResults,
        parallel: o.parallel,
        out,
        rewrite: { patientId: o.newPatientId, patientName: o.newPatientName },
        anonymize,
      },
      ledger: (o.ledger as string | undefined) ?? (out ? defaultLedgerUrl(out) : undefined),
      verb: o.moveDest ? "move" : "retrieve",
      // With --move-dest the items are the C-MOVE requests (the objects never arrive here).
      noun: o.moveDest ? "requests" : "objects",
      audit: { action: "retrieve", source: `${ctx.peer!.calledAet}@${ctx.peer!.host}:${ctx.peer!.port}`, destination: o.moveDest ?? out!, anonymized: anonymize !== undefined },
    });
  },
});

runMain(import.meta, main);
