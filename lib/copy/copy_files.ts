import { stat, unlink } from "node:fs/promises";
import { relative, resolve, sep } from "node:path";
import { type DicomHeader, inspectHeader, type Layout, LAYOUTS, recordPath } from "../layout/record_path.ts";
import type { FileRecord, RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport, untilAborted, withTotal } from "../stage/stage.ts";
import { mapOrdered } from "../util/pool.ts";
import { copyFileVerified } from "./copy.ts";

/** Where `copyFiles` puts a file record that has no `dest` (see lib/layout/record_path.ts). */
export type CopyLayout = Layout;
export const COPY_LAYOUTS: CopyLayout[] = LAYOUTS;

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

/** The record with the header's `file` fields it lacks (what it already says is kept). */
function describe(f: FileRecord, header: DicomHeader): FileRecord {
  const out: Record<string, unknown> = { ...f };
  for (const [k, v] of Object.entries(header.fields)) if (out[k] === undefined) out[k] = v;
  return out as FileRecord;
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
    const doneBefore = await opts.ledger?.keysIfAtMost("file", "done", 200_000, { patientId: opts.patientScope });
    // Records are small: read ahead, they tell the total (for the progress line's ETA) as soon as the input ends.
    let total = 0;
    const counted = withTotal(untilAborted(input, opts.signal), (r) => {
      if (r.type === "file") total++;
    }, () => report.progress({ items: total }));
    const results = mapOrdered(untilAborted(counted, opts.signal), opts.parallel ?? 4, (rec) => copyOne(rec, to, layout, doneBefore, opts));
    for await (const r of results) {
      const c = r.copy as { status: string; error?: string; from?: string } | undefined;
      // Abandoned when the run was stopped: not done, not failed, nothing at the destination.
      if (c?.status === "interrupted") continue;
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
  const src = resolve(rec.path);
  if (typeof rec.error === "string") return { ...rec, copy: { status: "failed", from: src, error: rec.error } };
  // A record that does not say what its file is learns it here, so a DICOM file comes out with the
  // same category and fields as on every other route; the seed layout needs the header anyway.
  const hasDest = typeof rec.dest === "string";
  let header: DicomHeader | null | undefined;
  let dest: string;
  const f0 = rec;
  try {
    // A damaged DICOM file (DICM, then truncated) fails here: it is never filed as "not DICOM".
    header = rec.category === undefined || (!hasDest && layout === "seed") ? inspectHeader(src) : undefined;
    rec = header ? describe(rec as FileRecord, header) : rec as FileRecord;
    dest = hasDest ? String(rec.dest) : recordPath(rec as FileRecord, layout, header);
  } catch (e) {
    return { ...f0, copy: { status: "failed", from: src, error: (e as Error).message } };
  }
  const f = rec as FileRecord;
  const target = resolve(to, dest);
  if (target !== to && !target.startsWith(to + sep)) {
    return { ...rec, copy: { status: "failed", error: `destination "${dest}" leaves the target folder` } };
  }
  const key = relative(to, target).split(sep).join("/");
  // export-plan --to marks a file it found copied here by an earlier run (its record points at the
  // tree's file): done-before when this ledger agrees, else the file is simply in place.
  const markedDone = src === target && rec.copy === "done-before";
  if (src === target && !markedDone) return { ...rec, copy: { status: "in-place" } };
  try {
    const known = !doneBefore || doneBefore.has(key) ? await opts.ledger?.get("file", key) : undefined;
    if (known?.status === "done" && known.sha256 && (!f.sha256 || f.sha256 === known.sha256)) {
      const s = await stat(target).catch(() => undefined);
      if (s && s.size === Number(known.bytes)) {
        await consumeStaged(f, src);
        // The ledger's hash, not one computed now from these bytes, so it is named so (`status --verify` rehashes the tree).
        const { staged: _staged, sha256: _sha256, ...rest } = rec;
        return { ...rest, path: target, bytes: s.size, ledgerSha256: known.sha256, copy: { status: "done-before", from: src } };
      }
    }
    if (markedDone) {
      // Not this ledger's word: the file is in place if it is there at all; the other ledger's hash does not go on.
      const { ledgerSha256: _ledgerSha256, ...rest } = rec;
      if (await stat(target).then((s) => s.isFile(), () => false)) return { ...rest, copy: { status: "in-place" } };
      return { ...rest, copy: { status: "failed", from: src, error: `Cannot copy "${src}": no such file` } };
    }
    const o = await copyFileVerified(src, target, { expectedSha256: typeof f.sha256 === "string" ? f.sha256 : undefined, verify: opts.verify, signal: opts.signal });
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
    // Stopped (Ctrl-C, a reader that went away): the copy was abandoned, its temporary file removed.
    if (opts.signal?.aborted) return { ...rec, copy: { status: "interrupted", from: src } };
    const error = (e as NodeJS.ErrnoException).code === "ENOENT" ? `Cannot copy "${src}": no such file` : (e as Error).message;
    await opts.ledger?.queue({ kind: "file", key, status: "failed", source: src, dest: key, error }).catch(() => {});
    return { ...rec, copy: { status: "failed", from: src, error } };
  }
}
