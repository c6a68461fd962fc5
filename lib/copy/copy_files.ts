import { stat, unlink } from "node:fs/promises";
import { basename, join, relative, resolve, sep } from "node:path";
import { readDicomFile } from "../dicom/reader.ts";
import { RT_MODALITIES } from "../dicom/rt.ts";
import { patientFolderName, personNameParts, sanitizeName } from "../layout/sanitize.ts";
import type { FileRecord, RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport, untilAborted } from "../stage/stage.ts";
import { mapOrdered } from "../util/pool.ts";
import { copyFileVerified } from "./copy.ts";

export type CopyLayout = "seed" | "flat" | "series";
export const COPY_LAYOUTS: CopyLayout[] = ["seed", "flat", "series"];

/** Options of the copy stage. */
export interface CopyFilesOptions extends StageOptions {
  to: string;
  /** Where files without a `dest` go (default seed). */
  layout?: CopyLayout;
  /** Files copied at once (default 4). */
  parallel?: number;
  /** Read each copy back and compare its hash before it is put in place (default true). */
  verify?: boolean;
}


/** The tree path of a file record that carries no `dest`, for the chosen layout. */
export function layoutPath(rec: FileRecord, layout: CopyLayout): string {
  const name = sanitizeName(basename(rec.path), { maxBytes: 128 });
  if (layout === "flat") return name;
  let info: { patientId?: string; patientName?: string; study?: string; series?: string; sop?: string; modality?: string; planLabel?: string } = {
    patientId: rec.patientId, study: rec.studyUid, series: rec.seriesUid, sop: rec.sopInstanceUid, modality: rec.modality,
    planLabel: typeof rec.planLabel === "string" ? rec.planLabel : undefined,
  };
  if (!info.patientId || !info.series || layout === "seed") {
    // Most files of a vault are not DICOM: their parse error is expected, so it is made
    // without a stack trace (capturing one cost ~14 µs per file, 1/10 of a small file's copy).
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      const d = readDicomFile(rec.path).dataset;
      info = {
        patientId: d.string("PatientID") ?? info.patientId, patientName: d.string("PatientName"),
        study: d.string("StudyInstanceUID") ?? info.study, series: d.string("SeriesInstanceUID") ?? info.series,
        sop: d.string("SOPInstanceUID") ?? info.sop, modality: d.string("Modality") ?? info.modality,
        planLabel: info.planLabel ?? (d.string("Modality") === "RTPLAN" ? d.string("RTPlanLabel") : undefined),
      };
    } catch {
      // not DICOM: it keeps its name under the patient (seed) or a Misc folder
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
  }
  const file = info.sop ? `${sanitizeName(info.sop)}.dcm` : name;
  if (layout === "series") {
    if (!info.patientId || !info.study || !info.series) return join("Misc", name);
    return join(sanitizeName(info.patientId), sanitizeName(info.study), sanitizeName(info.series), file);
  }
  if (!info.patientId) return join("Misc", name);
  const pn = personNameParts(info.patientName);
  const patient = patientFolderName({ family: pn.family, given: pn.given, patientId: info.patientId });
  const modality = info.modality ?? "OT";
  if (RT_MODALITIES.has(modality)) {
    return join(patient, info.planLabel ? sanitizeName(info.planLabel) : "RT", "DICOM", file);
  }
  return join(patient, "DICOM", sanitizeName(`${modality}_${info.series ?? "series"}`), file);
}

/** A staged file (retrieved by export-plan for this pipeline) is consumed once its copy is in place. */
async function consumeStaged(f: FileRecord, src: string): Promise<void> {
  if (f.staged === true) await unlink(src).catch(() => {});
}

/** Copy outcomes that mean the file was already there: skipped, not done again. */
const ALREADY_THERE: Record<string, "already-done" | "identical" | undefined> = {
  "done-before": "already-done",
  identical: "identical",
  "in-place": "identical",
};

/**
 * The copy stage: copies every `file` record's file into `to` (at its `dest` when the record has
 * one, else where the layout puts it), atomically and verified; other records pass through.
 * Each file record comes out pointing at the copy, with `copy: {status, from}`; outcomes go to
 * the ledger and the event sink.
 *
 * @example
 * ```ts
 * for await (const r of copyFiles(pathRecords(["incoming/"]), { to: "backup", layout: "series" })) console.log(r.path);
 * ```
 */
export async function* copyFiles(input: AsyncIterable<RtRecord>, opts: CopyFilesOptions): AsyncGenerator<RtRecord> {
  const report = new StageReport("copy-files", opts);
  const to = resolve(opts.to);
  const layout = opts.layout ?? "seed";
  try {
    // What earlier runs finished, read once (up to 200,000 keys, ~30 MB): only those items need a
    // look-up in the ledger. A larger ledger is asked item by item.
    const doneBefore = await opts.ledger?.keysIfAtMost("file", "done", 200_000);
    const results = mapOrdered(untilAborted(input, opts.signal), opts.parallel ?? 4, (rec) => copyOne(rec, to, layout, doneBefore, opts));
    for await (const r of results) {
      const c = r.copy as { status: string; error?: string; from?: string } | undefined;
      if (r.type === "file" && c) {
        const item = `file "${c.from ?? r.path}"`;
        const fields = { bytes: Number(r.bytes ?? 0), patientId: typeof r.patientId === "string" ? r.patientId : undefined };
        const already = ALREADY_THERE[c.status];
        if (c.status === "failed" || c.status === "conflict") report.failed(item, c.error ?? c.status, fields);
        else if (already) report.skipped(item, already, c.status === "done-before" ? "copied by an earlier run" : "the same file is already there", fields);
        else report.done(item, fields);
      }
      yield r;
    }
  } finally {
    report.finish();
  }
}

/** Copies one record's file (or passes a record that is not a file through). */
async function copyOne(rec: RtRecord, to: string, layout: CopyLayout, doneBefore: Set<string> | undefined, opts: CopyFilesOptions): Promise<RtRecord> {
  if (rec.type !== "file" || typeof rec.path !== "string") return rec;
  const f = rec as FileRecord;
  const src = resolve(f.path);
  if (typeof f.error === "string") return { ...rec, copy: { status: "failed", from: src, error: f.error } };
  const dest = typeof f.dest === "string" ? f.dest : layoutPath(f, layout);
  const target = resolve(to, dest);
  if (target !== to && !target.startsWith(to + sep)) {
    return { ...rec, copy: { status: "failed", error: `destination "${dest}" leaves the target folder` } };
  }
  if (src === target) return { ...rec, copy: { status: "in-place" } };
  const key = relative(to, target).split(sep).join("/");
  try {
    const known = !doneBefore || doneBefore.has(key) ? await opts.ledger?.get("file", key) : undefined;
    if (known?.status === "done" && known.sha256 && (!f.sha256 || f.sha256 === known.sha256)) {
      const s = await stat(target).catch(() => undefined);
      if (s && s.size === Number(known.bytes)) {
        await consumeStaged(f, src);
        const { staged: _staged, ...rest } = rec;
        return { ...rest, path: target, bytes: s.size, sha256: known.sha256, copy: { status: "done-before", from: src } };
      }
    }
    const o = await copyFileVerified(src, target, { expectedSha256: typeof f.sha256 === "string" ? f.sha256 : undefined, verify: opts.verify });
    if (o.status === "conflict") {
      const error = `a different file is already at "${target}" (sha256 ${o.existingSha256}); not overwritten`;
      await opts.ledger?.queue({ kind: "file", key, status: "failed", source: src, dest: key, error });
      return { ...rec, copy: { status: "conflict", from: src, to: target, error } };
    }
    await opts.ledger?.queue({ kind: "file", key, status: "done", source: src, dest: key, bytes: o.bytes, sha256: o.sha256, patientId: f.patientId });
    await consumeStaged(f, src);
    const { staged: _staged, ...rest } = rec;
    return { ...rest, path: target, bytes: o.bytes, sha256: o.sha256, copy: { status: o.status, from: src } };
  } catch (e) {
    const error = (e as NodeJS.ErrnoException).code === "ENOENT" ? `Cannot copy "${src}": no such file` : (e as Error).message;
    await opts.ledger?.queue({ kind: "file", key, status: "failed", source: src, dest: key, error }).catch(() => {});
    return { ...rec, copy: { status: "failed", from: src, error } };
  }
}
