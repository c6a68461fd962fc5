/**
 * The export stage (`export-plan`): patient and plan records in, each plan with everything it
 * references out, as `file` records placed in the per-patient/per-plan tree.
 */
import type { PatientRecord, PlanRecord, RtRecord } from "../records/types.ts";
import { untilAborted, withTotal } from "../stage/stage.ts";
import type { ExportContext } from "./context.ts";
import { closeContext, type ExportPlanOptions, openContext } from "./context.ts";
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
  const ctx = await openContext(opts);
  // Records are small: reading ahead of the export tells the number of patients once the input ends.
  const patientIds = new Set<string>();
  const records = withTotal(untilAborted(input, opts.signal), (r) => {
    if ((r.type === "patient" || r.type === "plan") && typeof r.patientId === "string") patientIds.add(r.patientId);
  }, () => ctx.report.progress({ patients: patientIds.size }));
  try {
    for await (const rec of records) {
      if (rec.type === "patient") yield* paced(ctx, exportPatient(ctx, rec as PatientRecord));
      else if (rec.type === "plan") yield* paced(ctx, exportPlan(ctx, rec as PlanRecord));
      else yield rec;
    }
  } finally {
    await closeContext(ctx);
  }
}

/**
 * Passes a patient's or plan's records on; with a pacer, each file waits for the time window and
 * the rate and bandwidth limits before the next one is exported (the work is done as records are
 * pulled). Outside the window the peer's association, if any, is released until it opens.
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
      onPause: (label) => ctx.report.progress(undefined, label),
      onResume: () => ctx.report.progress(undefined, ""),
    });
  }
}
