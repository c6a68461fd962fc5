/** `rtexport copy-files`: atomic, sha256-verified, resumable, parallel copies into a tree. */
import { Option } from "commander";
import { resolve } from "node:path";
import { defineCommand, errorMessage, FatalError, runMain, UsageError } from "../cli/mod.ts";
import { parsePositiveInt } from "../cli/peer.ts";
import { COPY_LAYOUTS, copyFiles } from "../lib/copy/copy_files.ts";
import { walkFiles } from "../lib/fs/walk.ts";
import { defaultLedgerUrl, Ledger } from "../lib/ledger/ledger.ts";
import { Progress } from "../cli/progress.ts";
import type { FileRecord, RtRecord } from "../lib/records/types.ts";
import { DatabaseUrlError, parseDatabaseUrl } from "../lib/sql/connect.ts";

async function* pathRecords(paths: string[]): AsyncGenerator<RtRecord> {
  for await (const p of walkFiles(paths)) yield { type: "file", path: typeof p === "string" ? p : (p as { path: string }).path };
}

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
  ],
  configure(cmd) {
    cmd.requiredOption("--to <dir>", "destination folder");
    cmd.addOption(new Option("--layout <layout>", "where files without a dest go").choices(COPY_LAYOUTS).default("seed"));
    cmd.option("--parallel <n>", "files copied at once", parsePositiveInt, 4);
    cmd.option("--ledger <url>", "ledger database (default: sqlite:<to>/.rtexport/ledger.sqlite)");
    cmd.option("--no-verify", "do not read each copy back before putting it in place");
    cmd.argument("[path...]", "files or folders to copy (instead of file records on stdin)");
  },
  human: {
    record(r: RtRecord) {
      if (r.type !== "file") return undefined;
      const c = r.copy as { status?: string } | undefined;
      return `${c?.status ?? ""}\t${(r as FileRecord).path}`;
    },
  },
  async run(ctx) {
    const o = ctx.options;
    if (o.ledger) {
      try {
        parseDatabaseUrl(o.ledger);
      } catch (e) {
        if (e instanceof DatabaseUrlError) throw new UsageError(e.message);
        throw e;
      }
    }
    const input = ctx.args.length ? pathRecords(ctx.args) : ctx.stdinRecords();
    if (!input) throw new UsageError("copy-files needs PATHs or file records on stdin");
    const to = resolve(ctx.io.cwd, o.to);
    let ledger: Ledger | undefined;
    try {
      ledger = await Ledger.open(o.ledger ?? defaultLedgerUrl(to), "copy-files");
    } catch (e) {
      throw new FatalError(errorMessage(e));
    }
    const progress = new Progress(ctx.io.stderr as { write(s: string): unknown; isTTY?: boolean });
    const patients = new Set<string>();
    try {
      for await (const r of copyFiles(input, {
        to, layout: o.layout, parallel: o.parallel, ledger, verify: o.verify,
        onProblem: (p) => {
          progress.clearLine();
          progress.update({ failed: 1 });
          ctx.reporter.failed(`Cannot copy ${p.item}: ${p.reason}`, { item: p.item });
        },
        onFile: (f) => {
          if (f.status === "identical" || f.status === "done-before" || f.status === "in-place") ctx.reporter.skipped();
          else ctx.reporter.done();
          progress.update({ files: 1, bytes: f.bytes });
        },
      })) {
        if (r.type === "file" && r.patientId && !patients.has(String(r.patientId))) {
          patients.add(String(r.patientId));
          progress.update({ patients: 1 });
        }
        await ctx.out.write(r);
        if (ctx.out.closed) break;
      }
      await ledger.finish(ctx.reporter.failures ? "partial" : "ok");
    } finally {
      await ledger.close();
    }
    ctx.log.info(`copy: ${progress.summary()}`);
  },
});

runMain(import.meta, main);
