import { scanDicomSync, type ScanOptions } from "../fs/scan.ts";
import { summarizeObject } from "./summary.ts";
import { ReferenceTreeBuilder, type ShowPlanRecord, treeRecords, type UnconnectedRecord } from "./tree.ts";

/** Options for {@link showRecords}. */
export interface ShowOptions extends ScanOptions {
  /**
   * Called with each file that cannot be read (one line naming it and why). Without it, the first
   * such file throws, so that nothing is lost silently.
   */
  onError?: (path: string, message: string) => void;
}

/**
 * What `rtexport show` writes, as a library function: reads the DICOM headers under the given
 * paths (or `file` records) and yields one `plan` record per RTPLAN, then one `unconnected` record
 * per patient, patients sorted by ID.
 *
 * @example
 * ```ts
 * import { showRecords } from "./lib/rt/mod.ts";
 * for await (const r of showRecords(["export/"], { pattern: "*.dcm", onError: (_p, m) => console.error(m) })) {
 *   if (r.type === "plan") console.log(r.label, r.machines, r.doses.length, r.missing.length);
 * }
 * ```
 */
export async function* showRecords(
  inputs: Iterable<string | { path: string }> | AsyncIterable<string | { path: string }>,
  opts: ShowOptions = {},
): AsyncGenerator<ShowPlanRecord | UnconnectedRecord> {
  const builder = new ReferenceTreeBuilder();
  const fail = (path: string, message: string) => {
    if (opts.onError) opts.onError(path, message);
    else throw new Error(message);
  };
  for await (const input of inputs) {
    const path = typeof input === "string" ? input : input.path;
    for (const r of scanDicomSync([path], opts)) {
      if (r.error !== undefined) fail(r.path, r.error);
      else {
        try {
          builder.add(summarizeObject(r.file, r.path));
        } catch (e) {
          fail(r.path, `Cannot read DICOM file "${r.path}": ${(e as Error).message}`);
        }
      }
    }
  }
  yield* treeRecords(builder.build());
}
