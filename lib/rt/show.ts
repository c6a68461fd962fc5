import { closeSync, openSync, readSync } from "node:fs";
import { fileInputs, readFileRecord } from "../fs/scan.ts";
import type { WalkOptions } from "../fs/walk.ts";
import type { RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport } from "../stage/stage.ts";
import { summarizeObject } from "./summary.ts";
import { ReferenceTreeBuilder, treeRecords } from "./tree.ts";

/** Where an object was first seen, to tell a second copy from another object with its UID. */
interface Sighting {
  patientId: string;
  path: string;
  datasetOffset: number;
  size: number;
  transferSyntaxUid: string;
}

/** True when two files hold the same data set, byte for byte (meta headers may differ). */
function sameDataSet(a: Sighting, b: Sighting): boolean {
  if (a.transferSyntaxUid !== b.transferSyntaxUid || a.size - a.datasetOffset !== b.size - b.datasetOffset) return false;
  let fa: number | undefined, fb: number | undefined;
  try {
    fa = openSync(a.path, "r");
    fb = openSync(b.path, "r");
    const ba = new Uint8Array(1 << 16), bb = new Uint8Array(1 << 16);
    for (let done = 0; done < a.size - a.datasetOffset;) {
      const na = readSync(fa, ba, 0, ba.length, a.datasetOffset + done);
      const nb = readSync(fb, bb, 0, bb.length, b.datasetOffset + done);
      if (na !== nb || na === 0) return na === nb && na === 0;
      for (let i = 0; i < na; i++) if (ba[i] !== bb[i]) return false;
      done += na;
    }
    return true;
  } catch {
    return false;
  } finally {
    if (fa !== undefined) closeSync(fa);
    if (fb !== undefined) closeSync(fb);
  }
}

/**
 * The warning for a second file with the SOP Instance UID of one seen before, or undefined when
 * it is a copy of the same object (same patient, same data set).
 */
function uidWarning(uid: string, first: Sighting, here: Sighting): string | undefined {
  const samePatient = first.patientId === here.patientId;
  if (samePatient && sameDataSet(first, here)) return undefined;
  return samePatient
    ? `SOP Instance UID ${uid} is in "${first.path}" and in "${here.path}" with different content: the first is shown, check which one is right`
    : `SOP Instance UID ${uid} is in "${first.path}" and in "${here.path}", which belong to different patients: each is shown under its own patient`;
}

/** Options of the show stage. */
export interface ShowOptions extends StageOptions, WalkOptions {}

/**
 * The show stage, what `rtexport show` runs: reads the DICOM header of every `file` record (a
 * string in the input is a path: a file, or a directory walked with `pattern`) and, once the
 * input has ended, yields one `plan` record per RTPLAN (RTSTRUCT, image series, doses, records,
 * RT images, registrations, what is missing), then one `unconnected` record per patient, patients
 * sorted by ID. Other records pass through as they come. Events: `done` per file read, `skipped`
 * (`not-dicom`) per file that is not DICOM, `failed` per unreadable or damaged file, a `warn`
 * message per file whose SOP Instance UID another file has with other content or another patient.
 *
 * Objects are keyed by (patient, UID), so patients never mix: objects of twelve patients in one
 * series each go to their own patient, and a plan UID two patients share is shown under both.
 * Objects are classified by SOP Class UID, by Modality only when the SOP class is absent.
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
    // Every SOP Instance UID seen, with the first file that had it (a path per file: bounded by the input).
    const seen = new Map<string, Sighting>();
    const warned = new Set<string>();
    for await (const record of fileInputs(input, options)) {
      if (record.type !== "file" || typeof record.path !== "string") {
        yield record;
        continue;
      }
      readFileRecord(record, report, (file, path) => {
        const summary = summarizeObject(file, path);
        const uid = summary.sopInstanceUid;
        if (uid) {
          const here: Sighting = {
            patientId: summary.patientId ?? "", path, datasetOffset: file.datasetOffset, size: file.size, transferSyntaxUid: file.transferSyntaxUid,
          };
          const first = seen.get(uid);
          if (!first) seen.set(uid, here);
          else if (first.path !== path && !warned.has(`${uid}\u0000${path}`)) {
            warned.add(`${uid}\u0000${path}`);
            const warning = uidWarning(uid, first, here);
            if (warning) report.message("warn", warning, `file "${path}"`);
          }
        }
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
