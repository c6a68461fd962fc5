/** `rtexport retrieve`: selective retrieval of a patient's plans from a Q/R peer (C-MOVE or C-GET). */
import { mkdirSync, rmSync } from "node:fs";

import { join, relative, resolve, sep } from "node:path";
import process from "node:process";
import type { Command } from "commander";
import { Option } from "commander";
import { defineCommand, errorMessage, ExitCode, FatalError, parseAeTitle, parsePort, parsePositiveInt, runMain, UsageError } from "../cli/mod.ts";
import { defaultLedgerUrl, Ledger } from "../lib/ledger/ledger.ts";
import { peerTimeouts, tlsFromFiles, type TlsOptions } from "../lib/net/mod.ts";
import type { FileRecord } from "../lib/records/types.ts";
import type { RetrieveSummary } from "../lib/retrieve/planner.ts";
import { retrieveFiles } from "../lib/retrieve/retrieve.ts";
import { addAuditOption, addPaceOptions, addRetryOptions, pacerFrom, retryPolicyFrom } from "../cli/pace.ts";
import { AuditTrail, LedgerAuditSink, SyslogSink } from "../lib/audit/mod.ts";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Passes the retrieved records through the anonymizer: each object is de-identified (default
 * profile, keyed UIDs and pseudonyms, `--new-patient-id/--new-patient-name` as the new identity)
 * into `outDir`; the summary record passes through as it is.
 */
async function* anonymized(
  retrieved: AsyncIterable<FileRecord | RetrieveSummary>,
  key: string | Uint8Array,
  outDir: string,
  o: { newPatientId?: string; newPatientName?: string },
  fail: (message: string) => void,
): AsyncGenerator<FileRecord | RetrieveSummary> {
  // The anonymizer (its profile tables) is loaded only with --anonymize: it would double retrieve's start-up.
  const [{ createAnonymizeContext }, { anonymizeFiles }] = await Promise.all([
    import("../lib/anonymize/anonymize.ts"),
    import("../lib/anonymize/files.ts"),
  ]);
  const ctx = createAnonymizeContext({ key, newPatientId: o.newPatientId, newPatientName: o.newPatientName });
  let summary: RetrieveSummary | undefined;
  async function* inputs() {
    for await (const r of retrieved) {
      if (r.type === "retrieve-summary") summary = r as RetrieveSummary;
      else yield { path: (r as FileRecord).path, record: r as FileRecord };
    }
  }
  for await (const res of anonymizeFiles(inputs(), ctx.options, { out: outDir }, ctx)) {
    if (res.ok) yield res.record;
    else fail(`Cannot anonymize object "${res.input.record?.sopInstanceUid ?? res.input.path}": ${res.message}`);
  }
  if (summary) yield summary;
}

/** The gap report, for stderr and the human view. */
export function formatSummary(s: RetrieveSummary): string[] {
  const lines: string[] = [];
  for (const p of s.plans) {
    const name = p.label !== undefined ? `"${p.label}"` : p.planUid;
    lines.push(
      `plan ${name}${p.approval ? ` (${p.approval})` : ""}: ${p.arrived} of ${p.expected} expected objects arrived`,
    );
    for (const g of p.missing) {
      const what = g.sopInstanceUid ? `${g.kind} ${g.sopInstanceUid}` : `${g.kind} series ${g.seriesUid}`;
      lines.push(`  missing ${what}${g.sopInstanceUid && g.seriesUid ? ` (series ${g.seriesUid})` : ""}: ${g.reason}`);
    }
  }
  for (const r of s.series ?? []) {
    lines.push(
      `series ${r.seriesUid}${r.modality ? ` (${r.modality})` : ""}: ${r.arrived}${
        r.expected !== undefined ? ` of ${r.expected}` : ""
      } instances arrived`,
    );
    for (const g of r.missing) lines.push(`  missing: ${g.reason}`);
  }
  for (const l of s.missingLabels) lines.push(`no plan labelled "${l}" found for patient "${s.patientId}"`);
  if (s.plans.length === 0 && s.missingLabels.length === 0 && !s.series) {
    lines.push(`no plan selected for patient "${s.patientId}"`);
  }
  lines.push(
    `${s.kept} objects written; ${s.inspectedAndDropped} fetched only to read their references, ${s.unexpected} unrequested dropped; ` +
      `${s.requests.find} C-FIND and ${s.requests.retrieve} retrieve requests${
        s.resilience ? ` (${s.resilience.retries} retried, ${s.resilience.fallbacks} asked for in parts)` : ""
      }; ${
        s.complete ? "complete" : "INCOMPLETE"
      }`,
  );
  return lines;
}

export const main = defineCommand({
  name: "retrieve",
  summary: "C-FIND and C-MOVE/C-GET from a Q/R peer, selective by plan",
  description: [
    "Finds the patient's RTPLAN instances (optionally only those with --plan LABEL, only approved ones),",
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
    "rtexport retrieve --peer aria --get --patient-id 123 --plan 'Prostate' --only-approved --out export/",
    "rtexport retrieve --peer aria --get --patient-id 123 --new-patient-id RES001 --new-patient-name Research^001 --out study/",
    "rtexport retrieve --peer remote-pacs --get --patient-id 123 --series 1.2.826.0.1.3680043.2.1125.1 --parallel 4 --out export/",
  ],
  peer: true,
  configure(cmd: Command) {
    cmd.addOption(new Option("--patient-id <id>", "PatientID (0010,0020) to retrieve").makeOptionMandatory());
    cmd.addOption(
      new Option("--plan <label>", "RT Plan Label to retrieve (repeatable; default: all plans)").argParser(collect),
    );
    cmd.addOption(new Option("--only-approved", "only plans whose Approval Status is APPROVED"));
    cmd.addOption(
      new Option("--series <uid>", "retrieve this whole series of the patient instead of plans (repeatable)").argParser(
        collect,
      ),
    );
    cmd.addOption(new Option("--all", "everything of the patient, not selected by plan: a request per study (a study the peer fails as a whole is asked for by series, a series by instance)"));
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
    cmd.addOption(new Option("--move-host <address>", "listen address of the receiving SCP").default("0.0.0.0"));
    cmd.addOption(new Option("--out <dir>", "output folder").makeOptionMandatory());
    cmd.addOption(new Option("--ledger <url>", "ledger database (default: sqlite:<out>/.rtexport/ledger.sqlite)"));
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
  },
  async run(ctx) {
    const o = ctx.options;
    const peer = ctx.peer!;
    let tls: TlsOptions | undefined;
    try {
      tls = tlsFromFiles(peer);
    } catch (e) {
      throw new UsageError(errorMessage(e));
    }
    if (o.series && (o.plan || o.onlyApproved)) {
      throw new UsageError("--series cannot be combined with --plan or --only-approved");
    }
    if (o.all && (o.plan || o.onlyApproved || o.series)) {
      throw new UsageError("--all cannot be combined with --plan, --only-approved or --series");
    }
    const pace = pacerFrom(o, ctx.io.env);
    try {
      mkdirSync(resolve(o.out as string), { recursive: true });
    } catch (e) {
      throw new UsageError(`Cannot create output folder "${o.out}": ${(e as Error).message}`);
    }
    const outDir = resolve(o.out as string);
    // --anonymize: objects are retrieved into a private staging folder and only their
    // de-identified versions are written under --out, so no identifying copy ever sits there.
    let anonymize: { key: string | Uint8Array; staging: string } | undefined;
    if (o.anonymize) {
      const { KeyError, resolveAnonymizationKey } = await import("../lib/anonymize/key.ts");
      try {
        anonymize = {
          key: resolveAnonymizationKey({ key: o.anonymizeKey, keyFile: o.anonymizeKeyFile }, { key: "--anonymize-key", keyFile: "--anonymize-key-file" }),
          staging: join(outDir, ".rtexport", `retrieve-staging-${process.pid}`),
        };
      } catch (e) {
        if (e instanceof KeyError) throw new UsageError(e.message);
        throw e;
      }
    } else if (o.anonymizeKey || o.anonymizeKeyFile) {
      throw new UsageError("--anonymize-key and --anonymize-key-file go with --anonymize");
    }
    let ledger: Ledger | undefined;
    try {
      ledger = await Ledger.open((o.ledger as string | undefined) ?? defaultLedgerUrl(outDir), "retrieve");
    } catch (e) {
      throw new FatalError((e as Error).message);
    }
    const source = `dicom:${peer.calledAet}@${peer.host}:${peer.port}`;
    let summary: RetrieveSummary | undefined;
    // The audit trail (until retrieve runs through runStage, which keeps it for every stage).
    const trail = new AuditTrail(
      { action: "retrieve", source: `${peer.calledAet}@${peer.host}:${peer.port}`, destination: outDir, anonymized: !!anonymize, runId: ledger.runId },
      [new LedgerAuditSink(ledger), ...(o.audit ? [new SyslogSink(o.audit as string)] : [])],
    );
    let fatal: string | undefined;
    try {
      const retrieved = retrieveFiles({
        host: peer.host,
        port: peer.port,
        callingAet: peer.callingAet,
        calledAet: peer.calledAet,
        patientId: o.patientId,
        plans: o.plan,
        onlyApproved: o.onlyApproved === true,
        series: o.series,
        all: o.all === true,
        retry: retryPolicyFrom(o),
        pace,
        signal: ctx.signal,
        onMessage: (level, text) => ctx.log[level](text),
        onPhase: (note) => {
          if (note) ctx.log.info(`retrieve ${note}`);
        },
        get: o.get === true,
        moveAet: o.moveAet,
        movePort: o.movePort,
        moveHost: o.moveHost,
        parallel: o.parallel as number,
        out: anonymize?.staging ?? outDir,
        // With --anonymize the new identity is the anonymizer's to set.
        rewrite: anonymize ? {} : {
          patientId: o.newPatientId as string | undefined,
          patientName: o.newPatientName as string | undefined,
        },
        maxPdu: peer.maxPdu,
        timeouts: peerTimeouts(peer),
        tls,
        onReceiver: (port) => {
          if (!o.get) ctx.log.info(`receiving C-MOVE objects as ${o.moveAet ?? peer.callingAet} on port ${port}`);
        },
        onError: (uid, message) => ctx.reporter.failed(`Cannot write object ${uid}: ${message}`),
      });
      const stream = anonymize
        ? anonymized(retrieved, anonymize.key, outDir, o, (m) => ctx.reporter.failed(m))
        : retrieved;
      for await (const r of stream) {
        if (r.type === "retrieve-summary") {
          summary = r as RetrieveSummary;
          for (const line of formatSummary(summary)) {
            if (summary.complete) ctx.log.info(line);
            else ctx.log.warn(line);
          }
          // Every gap is an item of the ledger, so `status` lists what did not arrive.
          for (const plan of summary.plans) {
            for (const g of plan.missing) {
              trail.onEvent({ type: "failed", stage: "retrieve", item: g.sopInstanceUid ?? g.seriesUid ?? g.kind, reason: `${g.kind}: ${g.reason}`, patientId: summary.patientId });
              await ledger.record({
                kind: "retrieval",
                key: `${summary.patientId}|${plan.planUid}|${g.sopInstanceUid ?? g.seriesUid ?? g.kind}`,
                status: "failed",
                patientId: summary.patientId,
                planKey: plan.planUid,
                source,
                error: `${g.kind}: ${g.reason}`,
              });
            }
          }
        } else {
          const f = r as FileRecord;
          trail.onEvent({ type: "done", stage: "retrieve", item: f.path, patientId: f.patientId, bytes: f.bytes });
          trail.onRecord(f);
          await ledger.queue({
            kind: "file",
            key: relative(outDir, f.path).split(sep).join("/"),
            status: "done",
            source,
            dest: f.path,
            bytes: f.bytes,
            sha256: f.sha256,
            patientId: f.patientId,
            planKey: f.planUid,
          });
        }
        if (!ctx.out.closed) await ctx.out.write(r as FileRecord);
      }
      await ledger.finish(!summary?.complete || ctx.reporter.failures > 0 ? "partial" : "ok");
    } catch (e) {
      fatal = errorMessage(e);
      throw e;
    } finally {
      await trail.finish(fatal).catch((e) => ctx.log.warn(`Cannot record the audit trail: ${errorMessage(e)}`));
      await ledger.close();
      if (anonymize) rmSync(anonymize.staging, { recursive: true, force: true });
    }
    if (!summary?.complete || ctx.reporter.failures > 0) return ExitCode.PARTIAL;
    return ExitCode.OK;
  },
});

runMain(import.meta, main);
