/** `rtexport show`: the RT reference tree of the files found, as DicomTools' show draws it. */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { defineCommand, runMain, runStage, UsageError } from "../cli/mod.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { renderTree } from "../lib/rt/render.ts";
import { showRecords } from "../lib/rt/show.ts";
import type { PatientTree, ReferenceTree, ShowPlanRecord, UnconnectedRecord } from "../lib/rt/tree.ts";

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
    "Files that are not DICOM (documents, images, rtexport's own .rtexport folder, which is never walked) are counted as skipped (named with -v); a damaged DICOM file is an error (exit 3).",
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
  run(ctx) {
    const { options } = ctx;
    humanFormat = options.format === "flat" ? "flat" : "tree";
    const paths: string[] = [...ctx.args, ...(options.path ?? [])];
    const input = paths.length > 0 ? pathRecords(paths, options.pattern ? { pattern: options.pattern } : {}) : ctx.stdinRecords();
    if (!input) throw new UsageError("No input: give files or directories to read, or pipe file records on stdin");
    return runStage(ctx, { input, stage: showRecords, options: {}, verb: "read" });
  },
});

runMain(import.meta, main);
