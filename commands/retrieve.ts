/** `rtexport retrieve`: selective retrieval of a patient's plans from a Q/R peer (C-MOVE or C-GET). */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { addDatabaseTimeoutOption, checkDatabaseUrl, defineCommand, errorMessage, parseAeTitle, parsePort, parsePositiveInt, runMain, runStage, UsageError } from "../cli/mod.ts";
import { defaultLedgerUrl } from "../lib/ledger/ledger.ts";
import type { FileRecord, RtRecord } from "../lib/records/types.ts";
import { type AllowEntry, parseAllowEntry, tlsFromFiles } from "../lib/net/mod.ts";
import { DEFAULT_MAX_FIND_RESULTS } from "../lib/retrieve/session.ts";
import { retrieveRecords } from "../lib/retrieve/stage.ts";

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

export const main = defineCommand({
  name: "retrieve",
  summary: "C-FIND and C-MOVE/C-GET from a Q/R peer, selective by plan",
  description: [
    "Finds the patient's approved RTPLAN instances (optionally only those with --plan LABEL; unapproved ones too with --include-unapproved),",
    "retrieves only those, reads their references and then retrieves only the referenced structure set,",
    "the image series it was drawn on, and the RTDOSEs, treatment records and RT images that reference the",
    "plan: never a whole study. C-MOVE to an in-process storage SCP by default (the peer must know",
    "--move-aet at this host and --move-port); C-GET with --get (objects come back on the same association).",
    "Files are written atomically to OUT/<PatientID>/<Study>/<Series>/<SOP>.dcm, one `file` record each;",
    "then expected and arrived objects are compared per plan (stderr, and a `retrieve-summary` record).",
    "Exit status 3 when anything expected is missing.",
  ].join(" "),
  examples: [
    "rtexport retrieve --host pacs --port 104 --aec ORTHANC --aet RTEXPORT --move-port 11113 --patient-id 123 --out export/",
    "rtexport retrieve --peer aria --get --patient-id 123 --plan 'Prostate' --out export/",
    "rtexport retrieve --peer aria --get --patient-id 123 --include-unapproved --out export/",
    "rtexport retrieve --peer aria --get --patient-id 123 --new-patient-id RES001 --new-patient-name Research^001 --out study/",
    "rtexport retrieve --peer remote-pacs --get --patient-id 123 --series 1.2.826.0.1.3680043.2.1125.1 --parallel 4 --out export/",
  ],
  peer: true,
  configure(cmd: Command) {
    cmd.addOption(new Option("--patient-id <id>", "PatientID (0010,0020) to retrieve").makeOptionMandatory());
    cmd.addOption(
      new Option("--plan <label>", "RT Plan Label to retrieve (repeatable; default: all plans)").argParser(collect),
    );
    cmd.addOption(new Option("--include-unapproved", "also plans whose Approval Status is not APPROVED (an explicit authorization; default: approved plans only)"));
    cmd.addOption(new Option("--only-approved", "only plans whose Approval Status is APPROVED (the default; kept for scripts)"));
    cmd.addOption(
      new Option("--series <uid>", "retrieve this whole series of the patient instead of plans (repeatable)").argParser(
        collect,
      ),
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
    cmd.addOption(new Option("--out <dir>", "output folder").makeOptionMandatory());
    cmd.addOption(new Option("--ledger <url>", "ledger database (default: sqlite:<out>/.rtexport/ledger.sqlite)"));
    addDatabaseTimeoutOption(cmd);
    cmd.addOption(
      new Option(
        "--anonymize",
        "de-identify what arrives (PS3.15 Annex E default profile, keyed UIDs) before it is written under --out; needs --anonymize-key or --anonymize-key-file",
      ),
    );
    cmd.addOption(new Option("--anonymize-key <secret>", "with --anonymize: the anonymization key (at least 16 bytes)"));
    cmd.addOption(new Option("--anonymize-key-file <file>", "with --anonymize: read the anonymization key from this file"));
    cmd.addOption(new Option("--new-patient-id <id>", "write this PatientID into the copies"));
    cmd.addOption(
      new Option("--new-patient-name <name>", "write this PatientName into the copies (DICOM PN, e.g. Family^Given)"),
    );
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
    if (!o.get && tls && !(tls.cert && tls.key)) {
      throw new UsageError("C-MOVE with --tls receives over TLS: give --cert and --key for the receiving SCP, or use --get");
    }
    if (o.series && (o.plan || o.onlyApproved || o.includeUnapproved)) {
      throw new UsageError("--series cannot be combined with --plan, --include-unapproved or --only-approved");
    }
    if (o.onlyApproved && o.includeUnapproved) throw new UsageError("Give either --include-unapproved or --only-approved, not both");
    checkDatabaseUrl(o.ledger);
    const out = resolve(ctx.io.cwd, o.out as string);
    try {
      mkdirSync(out, { recursive: true });
    } catch (e) {
      throw new UsageError(`Cannot create output folder "${o.out}": ${(e as Error).message}`);
    }
    let anonymize: { key: string | Uint8Array; newPatientId?: string; newPatientName?: string } | undefined;
    if (o.anonymize) {
      // Loaded only with --anonymize, as the anonymizer itself is (start-up time).
      const { KeyError, resolveAnonymizationKey } = await import("../lib/anonymize/key.ts");
      try {
        const key = resolveAnonymizationKey({ key: o.anonymizeKey, keyFile: o.anonymizeKeyFile }, { key: "--anonymize-key", keyFile: "--anonymize-key-file" });
        anonymize = { key, newPatientId: o.newPatientId, newPatientName: o.newPatientName };
      } catch (e) {
        if (e instanceof KeyError) throw new UsageError(e.message);
        throw e;
      }
    } else if (o.anonymizeKey || o.anonymizeKeyFile) {
      throw new UsageError("--anonymize-key and --anonymize-key-file go with --anonymize");
    }
    return await runStage(ctx, {
      input: nothing(),
      stage: retrieveRecords,
      options: {
        peer: ctx.peer!,
        patientId: o.patientId,
        plans: o.plan,
        includeUnapproved: o.includeUnapproved === true,
        series: o.series,
        get: o.get === true,
        moveAet: o.moveAet,
        movePort: o.movePort,
        moveHost: o.moveHost,
        moveFrom: o.moveFrom,
        maxFindResults: o.maxFindResults,
        parallel: o.parallel,
        out,
        rewrite: { patientId: o.newPatientId, patientName: o.newPatientName },
        anonymize,
      },
      ledger: (o.ledger as string | undefined) ?? defaultLedgerUrl(out),
      verb: "retrieve",
      noun: "objects",
    });
  },
});

runMain(import.meta, main);
