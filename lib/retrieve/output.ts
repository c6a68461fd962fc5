/**
 * Writes the kept objects of a retrieve into the output tree (atomically: staging files are
 * renamed into place, rewritten copies go through a temporary file) and describes each one as
 * a `file` record.
 */
import { mkdirSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { readDicomFile } from "../dicom/reader.ts";
import { encodeFile } from "../dicom/writer.ts";
import type { DataSet } from "../dicom/dataset.ts";
import { sha256File } from "../fs/hash.ts";
import { seriesPath } from "../layout/series.ts";
import type { FileRecord } from "../records/types.ts";
import type { ArrivedObject } from "./arrivals.ts";

export interface PatientRewrite {
  patientId?: string;
  patientName?: string;
}

function setText(ds: DataSet, tag: number, vr: string, text: string): void {
  let bytes = ds.charset.encode(text, vr === "PN");
  if (bytes.length % 2) bytes = Uint8Array.from([...bytes, 0x20]);
  ds.set({ tag, vr, value: bytes, offset: 0, length: bytes.length });
}

/**
 * Rewrites PatientID and/or PatientName of a Part 10 file into `dest` (all other elements,
 * the meta header and the transfer syntax unchanged).
 */
export function rewritePatient(src: string, dest: string, rewrite: PatientRewrite): void {
  const f = readDicomFile(src, { full: true });
  if (rewrite.patientId !== undefined) setText(f.dataset, 0x00100020, "LO", rewrite.patientId);
  if (rewrite.patientName !== undefined) setText(f.dataset, 0x00100010, "PN", rewrite.patientName);
  const tmp = `${dest}.${process.pid}.tmp`;
  writeFileSync(tmp, encodeFile(f.dataset, { meta: f.meta, transferSyntaxUid: f.transferSyntaxUid }));
  renameSync(tmp, dest);
}

/** Runs `write`; when it fails because the folder is missing, creates it and runs it again (one mkdir per folder, not per file). */
function inFolder(dir: string, write: () => void): void {
  try {
    write();
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT") throw e;
    mkdirSync(dir, { recursive: true });
    write();
  }
}

/** Moves (or rewrites) one kept object into `outDir`; returns its `file` record. */
export function placeObject(o: ArrivedObject, outDir: string, planUid: string | undefined, rewrite: PatientRewrite = {}): FileRecord {
  const patientId = rewrite.patientId ?? o.dataset.string(0x00100020) ?? "";
  const dest = join(outDir, seriesPath({ patientId, studyUid: o.studyUid, seriesUid: o.seriesUid, sopInstanceUid: o.sopInstanceUid }));
  const dir = dirname(dest);
  let sha256: string;
  let bytes: number;
  if (rewrite.patientId !== undefined || rewrite.patientName !== undefined) {
    inFolder(dir, () => rewritePatient(o.path, dest, rewrite));
    unlinkSync(o.path);
    sha256 = sha256File(dest);
    bytes = statSync(dest).size;
  } else {
    sha256 = o.sha256 ?? sha256File(o.path); // hashed after it arrived (ArrivalStore): its bytes have not changed since
    bytes = o.bytes;
    inFolder(dir, () => renameSync(o.path, dest)); // a rename keeps the bytes just hashed
  }
  o.path = dest;
  o.placed = true;
  const record: FileRecord = {
    type: "file",
    path: dest,
    bytes,
    sha256,
    category: "dicom",
    sopClassUid: o.sopClassUid,
    sopInstanceUid: o.sopInstanceUid,
    modality: o.modality,
    patientId,
    studyUid: o.studyUid,
    seriesUid: o.seriesUid,
    transferSyntaxUid: o.transferSyntaxUid,
  };
  if (planUid) record.planUid = planUid;
  return record;
}
