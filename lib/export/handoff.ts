/**
 * `export-plan --to T | copy-files --to T` with a DICOM peer: what export-plan handed to copy-files,
 * remembered in the tree's ledger, so that a rerun retrieves only what copy-files does not have.
 *
 * When every object of a retrieval group (a plan's RT objects, a patient's series) has gone out
 * as a record, export-plan writes `handoff` rows in the ledger copy-files writes: one per object
 * (key `<group> <tree path>`, `plan_key` the group, `dest` the tree path, `source` its SOP
 * Instance UID, `bytes` its size) and one for the group (key the group, `source` the number of
 * objects), in one transaction. A hand-off is export-plan's word only: a record that went out but
 * was never copied (copy-files killed in the pipe) must be retrieved again. So a later run skips a
 * group's retrieval only when copy-files's own `file` row of every object says done, at the size
 * handed, and the tree has the file at that size.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { hashFile } from "../copy/copy.ts";
import { DICOM_CATEGORY } from "../dicom/file_record.ts";
import { readDicomFile } from "../dicom/reader.ts";
import { headerOf } from "../layout/record_path.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { FileRecord } from "../records/types.ts";

/** The tree `copy-files --to` writes and its ledger (`ExportPlanOptions.handoff`). */
export interface HandoffTarget {
  /** The folder copy-files writes (its `--to`). */
  tree: string;
  /** The ledger copy-files writes (by default `sqlite:<tree>/.rtexport/ledger.sqlite`). */
  ledger: Ledger;
}

/**
 * Records that the retrieved objects of `group` went out whole as `records` (each with its `dest`).
 * Rows of an earlier hand-off of the group stay, but only this one's (by run) count.
 */
export async function recordHandoff(target: HandoffTarget, group: string, patientId: string, records: FileRecord[]): Promise<void> {
  const members = records.filter((r) => typeof r.dest === "string");
  await target.ledger.recordMany([
    ...members.map((r) => ({
      kind: "handoff" as const, key: `${group} ${r.dest}`, status: "done" as const, patientId, planKey: group, dest: String(r.dest),
      source: r.sopInstanceUid, bytes: r.bytes,
    })),
    // The group says how many objects it had: a list cut short (rows the database refused) is never taken for the whole.
    { kind: "handoff", key: group, status: "done", patientId, source: String(members.length) },
  ], { journalOnFailure: false }); // not an outcome to keep: without it, a rerun retrieves the group again
}

/**
 * The `done-before` records of a group whose every object copy-files has copied into the tree
 * (its ledger says done at the size handed, and the file is there at that size), or undefined when
 * one is missing, changed or was never handed over whole: then the group is retrieved again.
 * Records carry the ledger's hash as `ledgerSha256`, or with `verify` the hash of the tree's file
 * (a file whose hash differs from the ledger's is told to `onChanged`, and the group is retrieved
 * again).
 */
export async function copiedBefore(
  target: HandoffTarget, group: string, verify = false,
  onChanged?: (path: string, now: string, recorded: string, patientId: string | undefined) => void,
): Promise<FileRecord[] | undefined> {
  const { ledger, tree } = target;
  const head = await ledger.get("handoff", group);
  if (head?.status !== "done" || !/^\d+$/.test(head.source ?? "")) return undefined;
  const members = await ledger.db.selectFrom("rtx_ledger_items").select(["dest", "bytes", "patient_id"])
    .where("kind", "=", "handoff").where("plan_key", "=", group).where("run_id", "=", head.run_id).where("dest", "is not", null)
    .orderBy("key").execute();
  if (members.length !== Number(head.source)) return undefined;
  const records: FileRecord[] = [];
  let changed = false;
  for (const m of members) {
    const dest = m.dest!;
    const copied = await ledger.get("file", dest);
    if (copied?.status !== "done" || !copied.sha256 || m.bytes === null || Number(copied.bytes) !== Number(m.bytes)) return undefined;
    const path = join(tree, dest);
    const s = await stat(path).catch(() => undefined);
    if (!s?.isFile() || s.size !== Number(copied.bytes)) return undefined;
    const hash = verify ? { sha256: (await hashFile(path)).sha256 } : { ledgerSha256: copied.sha256 };
    if (verify && hash.sha256 !== copied.sha256) {
      // Each changed file is told of (copy-files keeps a file it has done: it would not say so);
      // the group is retrieved again for the rest.
      onChanged?.(path, hash.sha256!, copied.sha256, m.patient_id ?? undefined);
      changed = true;
      continue;
    }
    const rec: FileRecord = {
      type: "file", path, dest, bytes: s.size, ...hash, category: DICOM_CATEGORY, patientId: m.patient_id ?? undefined, copy: "done-before",
    };
    try {
      Object.assign(rec, headerOf(readDicomFile(path)).fields, { patientId: rec.patientId });
    } catch {
      return undefined; // not what was copied: retrieved again, and copy-files reports what it finds
    }
    records.push(rec);
  }
  return changed ? undefined : records;
}
