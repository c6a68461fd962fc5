/**
 * The export stage (`export-plan`): patient and plan records in, each plan with everything it
 * references out, as `file` records placed in the per-patient/per-plan tree.
 */
import { markProcessGone } from "../copy/copy.ts";
import { runClaimed } from "../ledger/work.ts";
import type { PatientRecord, PlanRecord, RtRecord } from "../records/types.ts";
import { untilAborted, withTotal } from "../stage/stage.ts";
import { pauseText } from "../stage/pace.ts";
import { closeContext, type ExportContext, type ExportPlanOptions, forgetPatient, openContext, planKeyOf, workerContext } from "./context.ts";
import { exportPatient, exportPlan } from "./plans.ts";

export type { ExportPlanOptions } from "./context.ts";
export type { RetrieveSettings } from "./dicom_source.ts";

/**
 * The export stage: takes `patient` and `plan` records (other records pass through unchanged)
 * and yields a `file` record for every file of each plan, placed in the per-patient/per-plan
 * tree (seed 000 §1.1): written under `out`, or (without it) resolved to a `dest` for copy-files.
 * Patient and plan records pass through too, plans with the outcome on them
 * (`export: {status, files, bytes, failed, folder}`). Files come from the source the records name
 * (a catalog and its vault, a folder), and DICOM from `peer` when one is given; the stage opens
 * what it needs and closes it when it ends.
 *
 * With a ledger, each patient is a work item claimed in it (`workers` claimers in this process;
 * other processes and machines with the same input and ledger share the items): see
 * lib/ledger/claims.ts. Records then come out as patients finish.
 *
 * @example
 * ```ts
 * const aria = { host: "aria", port: 104, callingAet: "RTEXPORT", calledAet: "ARIA" };
 * const plans = listPatients({ from: "dicom", peer: aria });
 * for await (const r of exportPlans(plans, { out: "export", peer: aria, retrieve: { mode: "get" } })) {
 *   if (r.type === "file") console.log(r.path);
 * }
 * ```
 */
export async function* exportPlans(input: AsyncIterable<RtRecord>, opts: ExportPlanOptions = {}): AsyncGenerator<RtRecord> {
  const ctx = openContext(opts);
  // Records are small: reading ahead of the export tells the number of patients once the input ends.
  const patientIds = new Set<string>();
  const records = withTotal(untilAborted(input, opts.signal), (r) => {
    if ((r.type === "patient" || r.type === "plan") && typeof r.patientId === "string") patientIds.add(r.patientId);
  }, () => ctx.report.progress({ patients: patientIds.size }));
  try {
    if (!opts.ledger || opts.claims === false) {
      for await (const rec of records) yield* exportRecord(ctx, rec);
      return;
    }
    // Patients are the work items: claimed in the ledger, each exported whole by one worker.
    yield* runClaimed(records, {
      itemOf: (r) =>
        (r.type === "patient" || r.type === "plan") && typeof r.patientId === "string"
          ? { key: `patient|${r.source ?? ""}|${r.patientId}`, kind: "patient", patientId: r.patientId }
          : undefined,
      // The plans that will be exported are pending until they are.
      listed: (recs) =>
        recs.filter((r) => r.type === "plan" && !(r.approval && r.approval !== "APPROVED" && !opts.includeUnapproved && !opts.authorizedBy))
          .map((r) => ({ kind: "plan" as const, key: planKeyOf(r as PlanRecord), patientId: String(r.patientId) })),
      async *work(recs, { worker, item }) {
        ctx.perPatient.delete(item.patientId!);
        // Taken over from a dead worker: its half-written copies in this patient's folders go at once.
        if (item.reclaimedFromHost && item.reclaimedFromPid !== undefined) markProcessGone(item.reclaimedFromHost, item.reclaimedFromPid);
        const wctx = workerContext(ctx, worker);
        try {
          for (const rec of recs) {
            if (opts.signal?.aborted) return;
            yield* exportRecord(wctx, rec);
          }
        } finally {
          forgetPatient(ctx, item.patientId!);
        }
      },
      outcome(item) {
        const t = ctx.perPatient.get(item.patientId!) ?? { failed: 0, files: 0, bytes: 0 };
        ctx.perPatient.delete(item.patientId!);
        return t.failed
          ? { status: "failed", files: t.files, bytes: t.bytes, error: `${t.failed} problem(s); the first: ${t.firstError}` }
          : { status: "done", files: t.files, bytes: t.bytes };
      },
    }, {
      ledger: opts.ledger, job: opts.job ?? "export-plan", workers: opts.workers, signal: opts.signal,
      onMessage: (level, text) => ctx.report.message(level, text),
    });
  } finally {
    await closeContext(ctx);
  }
}

/** One input record: a patient (with all its plans when none follow), a plan, or another record passed through. */
async function* exportRecord(ctx: ExportContext, rec: RtRecord): AsyncGenerator<RtRecord> {
  if (rec.type === "patient") yield* paced(ctx, exportPatient(ctx, rec as PatientRecord));
  else if (rec.type === "plan") yield* paced(ctx, exportPlan(ctx, rec as PlanRecord));
  else yield rec;
}

/**
 * Passes a patient's or plan's records on; with a pacer, each file waits for the rate and
 * bandwidth limits and the time window before the next one is exported (the work is done as
 * records are pulled). Outside the window the worker's peer association, if any, is released
 * until it opens.
 */
async function* paced(ctx: ExportContext, records: AsyncIterable<RtRecord>): AsyncGenerator<RtRecord> {
  const pace = ctx.opts.pace;
  for await (const r of records) {
    yield r;
    if (!pace || r.type !== "file") continue;
    await pace.take(1, typeof r.bytes === "number" ? r.bytes : 0, ctx.opts.signal);
    await pace.waitForWindow({
      signal: ctx.opts.signal,
      beforePause: () => ctx.peer?.release(),
      onPause: (label) => {
        ctx.report.progress(undefined, label);
        ctx.report.message("info", pauseText(label));
      },
      onResume: () => ctx.report.progress(undefined, ""),
    });
  }
}
