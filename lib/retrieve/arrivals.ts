/**
 * Objects received during a retrieve (by C-MOVE into the in-process SCP, or by C-GET on the
 * query association), kept in a staging folder until the planner decides which ones belong to
 * the selected plans.
 */
import { mkdirSync, renameSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type { DataSet } from "../dicom/dataset.ts";
import { readDicomFile } from "../dicom/reader.ts";

/** What the network layer hands over for each received object (a temporary Part 10 file). */
export interface IncomingFile {
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  size: number;
}

export interface ArrivedObject {
  /** Staging path (a complete Part 10 file). */
  path: string;
  bytes: number;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  studyUid: string;
  seriesUid: string;
  modality: string;
  /** The header (bulk data not read). */
  dataset: DataSet;
}

const STATUS_SUCCESS = 0x0000;
/** PS3.4 B.2.3: Error — cannot understand. */
const STATUS_CANNOT_UNDERSTAND = 0xc000;

export class ArrivalStore {
  readonly dir: string;
  private readonly objects = new Map<string, ArrivedObject>();
  private counter = 0;
  /** Objects that could not be read (reported, not kept). */
  readonly rejected: { sopInstanceUid: string; error: string }[] = [];

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  /** Takes a received file (moves it into staging); the returned status answers the C-STORE. */
  accept(file: IncomingFile): { status: number; errorComment?: string } {
    const dest = join(this.dir, `${(this.counter++).toString(36).padStart(6, "0")}.dcm`);
    try {
      renameSync(file.path, dest);
      const f = readDicomFile(dest);
      const ds = f.dataset;
      const uid = ds.string(0x00080018) ?? file.sopInstanceUid;
      const previous = this.objects.get(uid);
      if (previous) unlinkQuiet(previous.path); // a second copy of the same object replaces the first
      this.objects.set(uid, {
        path: dest,
        bytes: f.size,
        sopClassUid: ds.string(0x00080016) ?? file.sopClassUid,
        sopInstanceUid: uid,
        transferSyntaxUid: f.transferSyntaxUid,
        studyUid: ds.string(0x0020000d) ?? "",
        seriesUid: ds.string(0x0020000e) ?? "",
        modality: ds.string(0x00080060) ?? "",
        dataset: ds,
      });
      return { status: STATUS_SUCCESS };
    } catch (e) {
      unlinkQuiet(dest);
      const error = (e as Error).message;
      this.rejected.push({ sopInstanceUid: file.sopInstanceUid, error });
      return { status: STATUS_CANNOT_UNDERSTAND, errorComment: error.slice(0, 64) };
    }
  }

  has(sopInstanceUid: string): boolean {
    return this.objects.has(sopInstanceUid);
  }

  get(sopInstanceUid: string): ArrivedObject | undefined {
    return this.objects.get(sopInstanceUid);
  }

  all(): ArrivedObject[] {
    return [...this.objects.values()];
  }

  inSeries(seriesUid: string): ArrivedObject[] {
    return this.all().filter((o) => o.seriesUid === seriesUid);
  }

  /** Drops an object that turned out not to belong to the selection. */
  discard(sopInstanceUid: string): void {
    const o = this.objects.get(sopInstanceUid);
    if (!o) return;
    unlinkQuiet(o.path);
    this.objects.delete(sopInstanceUid);
  }

  /** Removes the staging folder and whatever is left in it. */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch { /* already gone */ }
}
