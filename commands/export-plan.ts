/** `rtexport export-plan`: each plan with everything it references into the per-patient/per-plan tree. */
import { resolve } from "node:path";
import { checkDatabaseUrl, defineCommand, errorMessage, parsePositiveInt, runMain, runStage, UsageError } from "../cli/mod.ts";
import { addAuditOption, addPaceOptions, pacerFrom } from "../cli/pace.ts";
import { DEFAULT_MOVE_PORT } from "../lib/export/dicom_source.ts";
import { exportPlans } from "../lib/export/export.ts";
import { DEFAULT_ITEMS, ITEMS, parseItems } from "../lib/layout/tree.ts";
import { defaultLedgerUrl } from "../lib/ledger/ledger.ts";
import type { FileRecord, RtRecord } from "../lib/records/types.ts";

const collect = (v: string, prev: string[] = []) => [...prev, v];

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
  ],
  configure(cmd) {
    cmd.option("--out <dir>", "write the tree here (default: only resolve, for copy-files)");
    cmd.option("--items <list>", "what to export (comma-separated; repeatable)", collect);
    cmd.option("--include-unapproved", "also export plans whose approval is not APPROVED (an explicit authorization)");
    cmd.option("--db <url>", "catalog database, when the records do not carry a usable one (e.g. a password)");
    cmd.option("--vault <dir>", "storage vault, overriding the one on the records");
    cmd.option("--ledger <url>", "ledger database (default: sqlite:<out>/.rtexport/ledger.sqlite)");
    cmd.option("--parallel <n>", "files copied at once", parsePositiveInt, 4);
    cmd.option("--staging <dir>", "with a DICOM peer and no --out: where retrieved objects wait for copy-files (it removes each once copied)", ".rtexport-staging");
    cmd.option("--get", "with a DICOM peer: retrieve by C-GET (default C-MOVE to an in-process receiver)");
    cmd.option("--move-aet <ae>", "with a DICOM peer: C-MOVE destination AE title (default: the calling AE title)");
    cmd.option("--move-port <port>", "with a DICOM peer: port of the C-MOVE receiver", parsePositiveInt, DEFAULT_MOVE_PORT);
    addPaceOptions(cmd);
    addAuditOption(cmd);
  },
  human: {
    record(r: RtRecord) {
      if (r.type === "file") return `${(r as FileRecord).path}`;
      return undefined;
    },
  },
  run(ctx) {
    const o = ctx.options;
    let items;
    try {
      items = o.items ? parseItems(o.items) : DEFAULT_ITEMS;
    } catch (e) {
      throw new UsageError(errorMessage(e));
    }
    checkDatabaseUrl(o.db);
    checkDatabaseUrl(o.ledger);
    const input = ctx.stdinRecords();
    if (!input) throw new UsageError("export-plan reads patient and plan records on stdin (pipe list-patients into it)");
    const out = o.out ? resolve(ctx.io.cwd, o.out) : undefined;
    return runStage(ctx, {
      input,
      stage: exportPlans,
      options: {
        out, items, includeUnapproved: !!o.includeUnapproved, db: o.db, vault: o.vault, parallel: o.parallel,
        peer: ctx.peer?.host ? ctx.peer : undefined,
        retrieve: { mode: o.get ? "get" : "move", moveAet: o.moveAet, movePort: o.movePort, staging: resolve(ctx.io.cwd, o.staging) },
        pace: pacerFrom(o, ctx.io.env),
      },
      ledger: o.ledger ?? (out ? defaultLedgerUrl(out) : undefined),
      verb: "export",
      audit: {
        action: "export",
        source: ctx.peer?.host ? `${ctx.peer.calledAet}@${ctx.peer.host}:${ctx.peer.port}` : "the records' catalogs and folders",
        destination: out ?? "records for copy-files",
      },
    });
  },
});

runMain(import.meta, main);
