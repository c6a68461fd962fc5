/** `rtexport search`: find DICOM files by tag values, as DicomTools' search does. */
import { dirname } from "node:path";
import type { Command } from "commander";
import { defineCommand, runMain, UsageError } from "../cli/mod.ts";
import { scanDicomSync, scanFile } from "../lib/fs/scan.ts";
import { isDicomFileRecord, type RtRecord } from "../lib/records/types.ts";
import { parseTagExpression, type TagExpression, TagExpressionError } from "../lib/search/expression.ts";
import { type SearchFileRecord, searchFile, ValueStats } from "../lib/search/search.ts";

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
  async run(ctx) {
    const { options, out, reporter } = ctx;
    const tagTexts: string[] = options.tag ?? [];
    if (tagTexts.length === 0) throw new UsageError("Missing --tag: give at least one tag expression, e.g. --tag PatientID=?");
    let exprs: TagExpression[];
    try {
      exprs = tagTexts.map(parseTagExpression);
    } catch (e) {
      if (e instanceof TagExpressionError) throw new UsageError(e.message);
      throw e;
    }
    const paths: string[] = [...ctx.args, ...(options.path ?? [])];
    if (paths.length === 0 && !ctx.hasStdinRecords) {
      throw new UsageError("No input: give files or directories to search, or pipe file records on stdin");
    }
    const stats = options.stats ? new ValueStats(exprs.map((e) => e.key)) : undefined;
    const dirs = options.dirs ? new Map<string, number>() : undefined;
    const scanOpts = { pattern: options.pattern as string | undefined };

    const onMatch = async (record: SearchFileRecord | RtRecord, tags: Record<string, string[]>, path: string) => {
      reporter.done();
      stats?.add(tags);
      if (dirs) {
        const d = dirname(path);
        dirs.set(d, (dirs.get(d) ?? 0) + 1);
      } else await out.write(record as RtRecord);
    };

    if (paths.length > 0) {
      for (const r of scanDicomSync(paths, scanOpts)) {
        if (r.error !== undefined) {
          reporter.failed(r.error, { item: r.path });
          continue;
        }
        const res = searchFile(r.path, r.file, exprs);
        if (!res) continue;
        if (res.error !== undefined) reporter.failed(res.error, { item: res.path });
        else await onMatch(res.record, res.record.tags, res.path);
        if (out.closed) return;
      }
    } else {
      for await (const rec of ctx.stdinRecords()!) {
        if (rec.type !== "file" || typeof rec.path !== "string") {
          if (!dirs) await out.write(rec);
        } else if (!isDicomFileRecord(rec)) {
          // Non-DICOM files (documents, plan files) cannot match a tag: they leave the stream.
        } else {
          for (const r of scanDicomSync([rec.path], scanOpts)) {
            const scanned = r.error === undefined ? r : scanFile(r.path);
            if (scanned.error !== undefined) {
              reporter.failed(scanned.error, { item: scanned.path });
              continue;
            }
            const res = searchFile(scanned.path, scanned.file, exprs);
            if (!res) continue;
            if (res.error !== undefined) reporter.failed(res.error, { item: res.path });
            else {
              // Results ride on the record that came in: its fields are kept, DICOM ones filled in.
              const merged = r.path === rec.path ? { ...res.record, ...rec, tags: res.record.tags } : res.record;
              await onMatch(merged, res.record.tags, res.path);
            }
          }
        }
        if (out.closed) return;
      }
    }
    if (dirs) {
      for (const [path, files] of [...dirs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        await out.write({ type: "directory", path, files });
      }
    }
    if (stats) for (const s of stats.records()) await out.write(s);
  },
});

runMain(import.meta, main);
