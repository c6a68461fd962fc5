/** `rtexport search`: find DICOM files by tag values, as DicomTools' search does. */
import type { Command } from "commander";
import { defineCommand, runMain, runStage, UsageError } from "../cli/mod.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { parseTagExpression, type TagExpression, TagExpressionError } from "../lib/search/expression.ts";
import { type SearchFileRecord, searchFiles } from "../lib/search/search.ts";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function humanRecord(record: RtRecord): string | undefined {
  switch (record.type) {
    case "file": {
      const tags = (record as unknown as SearchFileRecord).tags ?? {};
      // One value per sequence item is kept in the record; a person reads each distinct value once.
      const parts = Object.entries(tags).map(([k, v]) => `${k}=${[...new Set(v)].join("\\")}`);
      return [record.path as string, ...parts].join("  ");
    }
    case "directory":
      return `${record.path}  (${record.files} file${record.files === 1 ? "" : "s"})`;
    case "stats": {
      const values = record.values as { value: string; count: number }[];
      const width = Math.max(5, ...values.map((v) => String(v.count).length));
      const lines = ["", `${record.tag}: ${values.length} distinct value${values.length === 1 ? "" : "s"}`];
      lines.push(`  ${"count".padStart(width)}  value`);
      for (const v of values) lines.push(`  ${String(v.count).padStart(width)}  ${v.value === "" ? "(empty)" : v.value}`);
      return lines.join("\n");
    }
    default:
      return JSON.stringify(record);
  }
}

export const main = defineCommand({
  name: "search",
  summary: "find DICOM files by tag values, with sequence paths and value statistics",
  usage: "[PATH...]",
  description: [
    "Reads the header of every file under PATH (files and directories, recursively; or `file` records from stdin) and lists those whose tags match every --tag expression.",
    "EXPR is TAG=VALUE, TAG=? (match when present, report the value) or TAG alone (same as =?). TAG is (gggg,eeee), ggggeeee or a keyword (PatientID); a sequence path joins tags with '/' ((300A,00B0)/(300A,00B2), BeamSequence/TreatmentMachineName) and looks in every item.",
    "VALUE uses DICOM matching: * and ? wild cards, case-sensitive except person names (PN); UID lists with \\; date and time ranges (20240101-20241231) for DA and TM; numbers compare as numbers.",
    "Files that are not DICOM (documents, images, rtexport's own .rtexport folder, which is never walked) are counted as skipped (named with -v); a damaged DICOM file is an error (exit 3).",
  ].join("\n\n"),
  examples: [
    `rtexport search --tag "(0010,0020)=Phantom-1" --tag "(0008,0060)=?" --pattern "*.dcm" --stats X/Data`,
    `rtexport search --tag "(300A,00B0)/(300A,00B2)=?" --pattern "RP*.dcm" --stats export/`,
    `rtexport search --tag Modality=RTDOSE --tag DoseSummationType=BEAM --dirs export/`,
  ],
  configure(cmd: Command) {
    cmd.argument("[paths...]", "files and directories to search (default: file records from stdin)");
    cmd.option("-t, --tag <expr>", "tag expression; repeat to AND several", collect);
    cmd.option("--path <dir>", "a file or directory to search (same as PATH; DicomTools' flag)", collect);
    cmd.option("--pattern <glob>", "only files whose name matches (*.dcm, RP*.dcm; case-insensitive)");
    cmd.option("--stats", "also report distinct values with counts per expression");
    cmd.option("--dirs", "report matching directories (with their count of matching files) instead of files");
  },
  human: { record: humanRecord },
  run(ctx) {
    const { options } = ctx;
    const tagTexts: string[] = options.tag ?? [];
    if (tagTexts.length === 0) throw new UsageError("Missing --tag: give at least one tag expression, e.g. --tag PatientID=?");
    let tags: TagExpression[];
    try {
      tags = tagTexts.map(parseTagExpression);
    } catch (e) {
      if (e instanceof TagExpressionError) throw new UsageError(e.message);
      throw e;
    }
    const paths: string[] = [...ctx.args, ...(options.path ?? [])];
    const input = paths.length > 0 ? pathRecords(paths, options.pattern ? { pattern: options.pattern } : {}) : ctx.stdinRecords();
    if (!input) throw new UsageError("No input: give files or directories to search, or pipe file records on stdin");
    return runStage(ctx, { input, stage: searchFiles, options: { tags, stats: options.stats, dirs: options.dirs }, verb: "read" });
  },
});

runMain(import.meta, main);
