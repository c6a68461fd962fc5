/** `rtexport export-plan`: each plan with everything it references into the per-patient/per-plan tree. */
import { join, resolve } from "node:path";
import process from "node:process";
import { dicomPlanSource } from "../lib/export/dicom_source.ts";
import { defineCommand, errorMessage, FatalError, runMain, UsageError } from "../cli/mod.ts";
import { exportPlans } from "../lib/export/export.ts";
import { DEFAULT_ITEMS, ITEMS, parseItems } from "../lib/export/layout.ts";
import { defaultLedgerUrl, Ledger } from "../lib/ledger/ledger.ts";
import { Progress } from "../cli/progress.ts";
import type { FileRecord, RtRecord } from "../lib/records/types.ts";
import { DatabaseUrlError, parseDatabaseUrl } from "../lib/sql/connect.ts";
import { parsePositiveInt } from "../cli/peer.ts";

const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * Passes records through while reading ahead of the export (records are small), so that once the
 * input has ended the number of patients is known and the progress line can show an ETA.
 */
async function* countingPatients(input: AsyncIterable<RtRecord>, onTotal: (n: number) => void): AsyncGenerator<RtRecord> {
  const queue: RtRecord[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const patients = new Set<string>();
  void (async () => {
    try {
      for await (const r of input) {
        queue.push(r);
        if ((r.type === "patient" || r.type === "plan") && typeof r.patientId === "string") patients.add(r.patientId);
        wake?.();
      }
      onTotal(patients.size);
    } catch (e) {
      failure = e;
    } finally {
      ended = true;
      wake?.();
    }
  })();
  for (;;) {
    if (queue.length) {
      yield queue.shift()!;
      continue;
    }
    if (failure) throw failure;
    if (ended) return;
    await new Promise<void>((r) => (wake = r));
    wake = undefined;
  }
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
    cmd.option("--move-port <port>", "with a DICOM peer: port of the C-MOVE receiver", parsePositiveInt, 11113);
  },
  human: {
    record(r: RtRecord) {
      if (r.type === "file") return `${(r as FileRecord).path}`;
      return undefined;
    },
  },
  async run(ctx) {
    const o = ctx.options;
    let items;
    try {
      items = o.items ? parseItems(o.items) : DEFAULT_ITEMS;
    } catch (e) {
      throw new UsageError(errorMessage(e));
    }
    for (const url of [o.db, o.ledger].filter(Boolean)) {
      try {
        parseDatabaseUrl(url);
      } catch (e) {
        if (e instanceof DatabaseUrlError) throw new UsageError(e.message);
        throw e;
      }
    }
    const input = ctx.stdinRecords();
    if (!input) throw new UsageError("export-plan reads patient and plan records on stdin (pipe list-patients into it)");
    const out = o.out ? resolve(ctx.io.cwd, o.out) : undefined;
    const ledgerUrl = o.ledger ?? (out ? defaultLedgerUrl(out) : undefined);
    let ledger: Ledger | undefined;
    if (ledgerUrl) {
      try {
        ledger = await Ledger.open(ledgerUrl, "export-plan");
      } catch (e) {
        throw new FatalError(errorMessage(e));
      }
    }
    const progress = new Progress(ctx.io.stderr as { write(s: string): unknown; isTTY?: boolean });
    const patients = new Set<string>();
    let dicom: ReturnType<typeof dicomPlanSource> | undefined;
    if (ctx.peer?.host) {
      const peer = ctx.peer;
      dicom = dicomPlanSource(peer, {
        mode: o.get ? "get" : "move", moveAet: o.moveAet, movePort: o.movePort,
        stagingDir: out ? join(out, ".rtexport", `staging-${process.pid}`) : resolve(ctx.io.cwd, o.staging),
        keepStaged: !out,
      });
    }
    try {
      const stream = exportPlans(countingPatients(input, (n) => progress.update({ patientsTotal: n })), {
        out, items, includeUnapproved: !!o.includeUnapproved, db: o.db, vault: o.vault, ledger, parallel: o.parallel, dicom,
        onProblem: (p) => {
          progress.clearLine();
          progress.update({ failed: 1 });
          ctx.reporter.failed(`Cannot export ${p.item}: ${p.reason}`, { item: p.item });
        },
        onSkip: (p) => {
          ctx.reporter.skipped();
          progress.clearLine();
          ctx.log.warn(`Skipped ${p.item}: ${p.reason}`, { item: p.item });
        },
        onFile: (f) => {
          ctx.reporter.done();
          progress.update({ files: 1, bytes: f.bytes });
        },
      });
      for await (const r of stream) {
        if (r.type === "patient" || r.type === "plan") {
          const id = String(r.patientId);
          if (!patients.has(id)) {
            patients.add(id);
            progress.update({ patients: 1 });
          }
        }
        await ctx.out.write(r);
        if (ctx.out.closed) break;
      }
      await ledger?.finish(ctx.reporter.failures ? "partial" : "ok");
    } catch (e) {
      await ledger?.finish("failed").catch(() => {});
      throw new FatalError(errorMessage(e));
    } finally {
      await dicom?.close().catch(() => {});
      await ledger?.close();
    }
    ctx.log.info(`export: ${progress.summary()}`);
  },
});

runMain(import.meta, main);
