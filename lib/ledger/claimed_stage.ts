/**
 * A file stage (copy-files, push, anonymize) run as claimed work items: with a ledger, the
 * input's `file` records are grouped into items, seeded into the ledger's job, and claimed with
 * leases by `workers` claimers in this process and by every other process (on any machine) given
 * the same input, job and ledger (see work.ts and claims.ts). Each claimed item is done by one
 * call of the stage over its records, so the stage itself is unchanged: it skips what its ledger
 * rows say is done (done-before), writes its rows, applies its PHI rules.
 *
 * The unit of work is the patient: a record's `patientId`, else the PatientID in its file's
 * header (a few kilobytes read). A patient's files stay together, in one call: push sends them in
 * dependency order (images, structure sets, plans, doses…), which it can only do within one call;
 * copy-files and anonymize write a patient's folder from one worker; and no item ever mixes two
 * patients. Files without a patient (not DICOM, unreadable, no PatientID) are grouped by their
 * folder, in batches of at most `batch` paths, so a folder of a million PDFs is not one item.
 */
import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { markProcessGone } from "../copy/copy.ts";
import { inspectHeader } from "../layout/record_path.ts";
import type { RtRecord } from "../records/types.ts";
import { type Stage, type StageEvent, type StageOptions, StageReport, untilAborted } from "../stage/stage.ts";
import type { ClaimedItem } from "./claims.ts";
import { runClaimed } from "./work.ts";

/** How {@link claimedStage} claims. */
export interface ClaimSpec<O extends StageOptions = StageOptions> {
  /** The stage's name in events (copy-files, push, anonymize). */
  name: string;
  /** The ledger job (default: the stage's name); workers with the same job share its items. */
  job?: string;
  /** Claimers in this process (default 1). */
  workers?: number;
  /** Items name a patient by a hash of the ID, and carry no patient ID (anonymize: the ledger holds no identity beyond its input paths). */
  hidePatients?: boolean;
  /** Files per item when no patient is known (default 200). */
  batch?: number;
  /** The options each item's call gets, from the run's (e.g. one shared context); default: the run's. */
  itemOptions?: (options: O) => O;
}

/** The items of an array, which lets go of each as it is taken (the input is held only until it is seeded). */
async function* fromArray<T>(items: (T | undefined)[]): AsyncGenerator<T> {
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as T;
    items[i] = undefined;
    yield item;
  }
  items.length = 0;
}

interface ItemTally {
  files: number;
  bytes: number;
  failed: number;
  firstError?: string;
}

/** The patient of a file record: its `patientId`, else its header's PatientID; undefined when there is none. */
function patientOf(r: RtRecord): string | undefined {
  if (typeof r.patientId === "string" && r.patientId !== "") return r.patientId;
  if (typeof r.path !== "string" || typeof r.error === "string") return undefined;
  try {
    const id = inspectHeader(r.path, { damaged: "undefined" })?.fields.patientId;
    return typeof id === "string" && id !== "" ? id : undefined;
  } catch {
    return undefined; // the stage reports an unreadable file, with its reason
  }
}

/** A short digest of which files `records` name (their paths, in any order). */
function filesDigest(records: RtRecord[]): string {
  const names = records.map((r) => typeof r.path === "string" ? r.path : JSON.stringify(r)).sort();
  const h = createHash("sha256");
  for (const n of names) h.update(n).update("\0");
  return h.digest("hex").slice(0, 16);
}

/**
 * `stage` as claimed work when its options carry a ledger (see the module comment); without a
 * ledger it is `stage` itself. Records other than files go through one unclaimed call of the stage
 * first (anonymize rewrites patient and plan records; the others pass them on); file records then
 * come out as items finish. Events are the stage's, as one run: one `started`, one `finished`.
 *
 * @example
 * ```ts
 * const copy = claimedStage(copyFiles, { name: "copy-files", workers: 4 });
 * const ledger = await Ledger.open("postgres://rtx@db/migration", "copy-files");
 * for await (const r of copy(pathRecords(["incoming/"]), { to: "/mnt/shared/export", ledger })) console.log(r.path);
 * await ledger.close();
 * ```
 */
export function claimedStage<O extends StageOptions>(stage: Stage<O>, spec: ClaimSpec<O>): Stage<O> {
  return async function* claimed(input: AsyncIterable<RtRecord>, options: O): AsyncGenerator<RtRecord> {
    const ledger = options.ledger;
    if (!ledger) {
      yield* stage(input, options);
      return;
    }
    const job = spec.job ?? spec.name;
    const batch = Math.max(1, spec.batch ?? 200);
    const report = new StageReport(spec.name, options);
    const itemOptions = spec.itemOptions ? spec.itemOptions(options) : options;
    const tallies = new Map<string, ItemTally>();
    /** Forwards one call's events into the run's report; `tally` counts the item's outcome. */
    const sink = (tally?: ItemTally) => (e: StageEvent) => {
      switch (e.type) {
        case "done":
          if (tally) {
            tally.files++;
            tally.bytes += e.bytes ?? 0;
          }
          report.done(e.item, { bytes: e.bytes, patientId: e.patientId, planKey: e.planKey });
          break;
        case "skipped":
          report.skipped(e.item, e.why, e.reason, { bytes: e.bytes, patientId: e.patientId, planKey: e.planKey });
          break;
        case "failed":
          if (tally) {
            tally.failed++;
            tally.firstError ??= e.reason;
          }
          report.failed(e.item, e.reason, { bytes: e.bytes, patientId: e.patientId, planKey: e.planKey });
          break;
        case "message":
          report.message(e.level, e.text, e.item);
          break;
        case "progress":
          // A call's totals are its item's; the run's total is said once, below. Phases (a pause) go on.
          if (e.note !== undefined) report.progress(undefined, e.note);
          break;
      }
    };
    try {
      // Everything is read before the first claim (runClaimed seeds the whole input): records are small.
      const files: RtRecord[] = [];
      const others: RtRecord[] = [];
      for await (const r of untilAborted(input, options.signal)) (r.type === "file" ? files : others).push(r);
      if (options.signal?.aborted) return;
      report.progress({ items: files.length });
      if (others.length) yield* stage(fromArray(others), { ...itemOptions, onEvent: sink() });
      const inFolder = new Map<string, number>();
      yield* runClaimed(fromArray(files), {
        itemOf(r) {
          const patient = patientOf(r);
          if (patient !== undefined) {
            if (!spec.hidePatients) return { key: `${job}|patient|${patient}`, kind: "group", patientId: patient };
            const hashed = createHash("sha256").update(patient).digest("hex").slice(0, 16);
            return { key: `${job}|patient#${hashed}`, kind: "group" };
          }
          const folder = typeof r.path === "string" ? dirname(resolve(r.path)) : "";
          const n = inFolder.get(folder) ?? 0;
          inFolder.set(folder, n + 1);
          return { key: `${job}|folder|${folder}|${Math.floor(n / batch)}`, kind: "group" };
        },
        // The files an item holds are part of its name: a run whose input has more files of a
        // patient than the run that seeded the pass (a folder that grew, another input) gets an
        // item of its own instead of its extra files being dropped; files both hold are done once
        // (the second finds them done in the ledger).
        keyOf: (key, records) => `${key}|${filesDigest(records)}`,
        async *work(records, { item }: { item: ClaimedItem }) {
          // Taken over from a dead worker: its half-written copies in this item's folders go at once.
          if (item.reclaimedFromHost && item.reclaimedFromPid !== undefined) markProcessGone(item.reclaimedFromHost, item.reclaimedFromPid);
          const tally: ItemTally = { files: 0, bytes: 0, failed: 0 };
          tallies.set(item.id, tally);
          // The item's patient: the stage reads the ledger for it only ("" for files of no patient:
          // rows of no patient). Named by a hash, the patient is not known here: the whole ledger.
          const scope = item.patientId ?? (item.key.startsWith(`${job}|folder|`) ? "" : undefined);
          const opts = { ...itemOptions, onEvent: sink(tally), patientScope: scope };
          yield* stage(fromArray(records), opts);
        },
        outcome(item) {
          const t = tallies.get(item.id) ?? { files: 0, bytes: 0, failed: 0 };
          tallies.delete(item.id);
          return t.failed
            ? { status: "failed", files: t.files, bytes: t.bytes, error: `${t.failed} problem(s); the first: ${t.firstError}` }
            : { status: "done", files: t.files, bytes: t.bytes };
        },
      }, {
        ledger, job, workers: spec.workers, signal: options.signal,
        onMessage: (level, text) => report.message(level, text),
      });
    } finally {
      report.finish();
    }
  };
}
