import { fileInputs, readFileRecord } from "../fs/scan.ts";
import type { WalkOptions } from "../fs/walk.ts";
import type { RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport } from "../stage/stage.ts";
import { summarizeObject } from "./summary.ts";
import { ReferenceTreeBuilder, treeRecords } from "./tree.ts";

/** Options of the show stage. */
export interface ShowOptions extends StageOptions, WalkOptions {}

/**
 * The show stage, what `rtexport show` runs: reads the DICOM header of every `file` record (a
 * string in the input is a path: a file, or a directory walked with `pattern`) and, once the
 * input has ended, yields one `plan` record per RTPLAN (RTSTRUCT, image series, doses, records,
 * RT images, registrations, what is missing), then one `unconnected` record per patient, patients
 * sorted by ID. Other records pass through as they come. Events: `done` per file read, `skipped`
 * (`not-dicom`) per file that is not DICOM, `failed` per unreadable or damaged file.
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
        builder.add(summary);
        return { patientId: summary.patientId };
      });
    }
    if (report.interrupted) return;
    yield* treeRecords(builder.build()) as Iterable<RtRecord>;
  } finally {
    report.finish();
  }
}
