import { fileInputs, readFileRecord } from "../fs/scan.ts";
import type { WalkOptions } from "../fs/walk.ts";
import type { RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport } from "../stage/stage.ts";
import { summarizeObject } from "./summary.ts";
import { ReferenceTreeBuilder, treeRecords, type UidConflict } from "./tree.ts";

/** The warning for one SOP Instance UID met twice with different content. */
function conflictText(c: UidConflict): string {
  const where = c.otherPatient
    ? "another patient's object: each is shown under its patient"
    : "the first is shown, the second left out";
  return `SOP Instance UID ${c.sopInstanceUid} is in "${c.first ?? "?"}" and in "${c.second ?? "?"}" with different content (${where})`;
}

/** Options of the show stage. */
export interface ShowOptions extends StageOptions, WalkOptions {}

/**
 * The show stage, what `rtexport show` runs: reads the DICOM header of every `file` record (a
 * string in the input is a path: a file, or a directory walked with `pattern`) and, once the
 * input has ended, yields one `plan` record per RTPLAN (RTSTRUCT, image series, doses, records,
 * RT images, registrations, what is missing), then one `unconnected` record per patient, patients
 * sorted by ID. Other records pass through as they come. Events: `done` per file read, `skipped`
 * (`not-dicom`) per file that is not DICOM, `failed` per unreadable or damaged file; a `warn`
 * message naming both files when an SOP Instance UID comes again with other content (objects are
 * keyed by patient and UID, so one of another patient is still shown, under its patient), and
 * one naming a file whose meta header disagrees with its data set (the data set's UIDs are used).
 *
 * @example
 * ```ts
 * import { showRecords } from "./mod.ts";
 * const problems: string[] = [];
 * const onEvent = (e: StageEvent) => e.type === "failed" && problems.push(e.reason);
 * for await (const r of showRecords(["export/"], { pattern: "*.dcm", onEvent })) {
 *   if (r.type === "plan") console.log(r.label, r.machines, (r.missing as unknown[]).length);
 * }
 * ```
 */
export async function* showRecords(
  input: AsyncIterable<RtRecord | string> | Iterable<RtRecord | string>,
  options: ShowOptions = {},
): AsyncGenerator<RtRecord> {
  const report = new StageReport("show", options);
  try {
    const builder = new ReferenceTreeBuilder();
    for await (const record of fileInputs(input, options)) {
      if (record.type !== "file" || typeof record.path !== "string") {
        yield record;
        continue;
      }
      readFileRecord(record, report, (file, path) => {
        const summary = summarizeObject(file, path);
        const conflict = builder.add(summary);
        if (conflict) report.message("warn", conflictText(conflict), path);
        return { patientId: summary.patientId };
      });
    }
    if (report.interrupted) return;
    yield* treeRecords(builder.build()) as Iterable<RtRecord>;
  } finally {
    report.finish();
  }
}
