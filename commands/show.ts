/** `rtexport show`: the RT reference tree of the files found, as DicomTools' show draws it. */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { defineCommand, runMain, UsageError } from "../cli/mod.ts";
import { scanDicomSync } from "../lib/fs/scan.ts";
import { isDicomFileRecord, type RtRecord } from "../lib/records/types.ts";
import { renderTree } from "../lib/rt/render.ts";
import { summarizeObject } from "../lib/rt/summary.ts";
import {
  type PatientTree, type ReferenceTree, ReferenceTreeBuilder, type ShowPlanRecord, treeRecords, type UnconnectedRecord,
} from "../lib/rt/tree.ts";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseFormat(value: string): "tree" | "flat" {
  if (value !== "tree" && value !== "flat") throw new InvalidArgumentError("expected tree or flat.");
  return value;
}

/** The human view is chosen per run (`--format`); main may run several times in one process (tests). */
let humanFormat: "tree" | "flat" = "tree";

/** Rebuilds the tree from the records show wrote (plans of a patient, then its unconnected record). */
function treeFromRecords(records: RtRecord[]): { tree: ReferenceTree; others: RtRecord[] } {
  const patients: PatientTree[] = [];
  const others: RtRecord[] = [];
  let plans: ShowPlanRecord[] = [];
  for (const r of records) {
    if (r.type === "plan" && Array.isArray(r.doses)) plans.push(r as unknown as ShowPlanRecord);
    else if (r.type === "unconnected") {
      const u = r as unknown as UnconnectedRecord;
      patients.push({ patientId: u.patientId, patientName: u.patientName, plans, unconnected: u });
      plans = [];
    } else others.push(r);
  }
  return { tree: { patients }, others };
}

export const main = defineCommand({
  name: "show",
  summary: "show the RT reference tree: plan, structure set, images, doses, records",
  usage: "[PATH...]",
  description: [
    "Reads the header of every file under PATH (files and directories, recursively; or `file` records from stdin) and shows, per patient, each RTPLAN with its RTSTRUCT and the image series it references (instances found / referenced), its RTDOSEs, treatment records, RT images and registrations, then what no plan references. A referenced object missing from the input is listed as MISSING.",
    "On a terminal: a tree (or --format flat). Piped or with --json: one `plan` record per plan and one `unconnected` record per patient. Other input records pass through unchanged.",
  ].join("\n\n"),
  examples: [
    "rtexport show export/",
    "rtexport show --format flat --pattern '*.dcm' X/Data",
    "rtexport show --json export/ | jq 'select(.type==\"plan\") | {label, machines, doses: (.doses|length)}'",
  ],
  configure(cmd: Command) {
    cmd.argument("[paths...]", "files and directories to read (default: file records from stdin)");
    cmd.option("--path <dir>", "a file or directory to read (same as PATH; DicomTools' flag)", collect);
    cmd.option("--pattern <glob>", "only files whose name matches (*.dcm, RP*.dcm; case-insensitive)");
    cmd.option("--format <format>", "human view: tree or flat", parseFormat, "tree");
  },
  human: {
    all(records) {
      const { tree, others } = treeFromRecords(records);
      return [...others.map((r) => JSON.stringify(r)), ...renderTree(tree, humanFormat)].join("\n");
    },
  },
  async run(ctx) {
    const { options, out, reporter } = ctx;
    humanFormat = options.format === "flat" ? "flat" : "tree";
    const paths: string[] = [...ctx.args, ...(options.path ?? [])];
    if (paths.length === 0 && !ctx.hasStdinRecords) {
      throw new UsageError("No input: give files or directories to read, or pipe file records on stdin");
    }
    const builder = new ReferenceTreeBuilder();
    const scanOpts = { pattern: options.pattern as string | undefined };
    const take = (roots: string[]) => {
      for (const r of scanDicomSync(roots, scanOpts)) {
        if (r.error !== undefined) reporter.failed(r.error, { item: r.path });
        else {
          let summary;
          try {
            summary = summarizeObject(r.file, r.path);
          } catch (e) {
            // A value that cannot be decoded fails this file only.
            reporter.failed(`Cannot read DICOM file "${r.path}": ${(e as Error).message}`, { item: r.path });
            continue;
          }
          builder.add(summary);
          reporter.done();
        }
      }
    };
    if (paths.length > 0) take(paths);
    else {
      for await (const rec of ctx.stdinRecords()!) {
        if (rec.type === "file" && typeof rec.path === "string") {
          if (isDicomFileRecord(rec)) take([rec.path]);
        } else {
          await out.write(rec);
          if (out.closed) return;
        }
      }
    }
    await out.writeAll(treeRecords(builder.build()) as Iterable<RtRecord>);
  },
});

runMain(import.meta, main);
