/**
 * What the dashboard shows of an export job, read from its ledger (opened read-only, afresh for
 * each look, as `status` opens it): per patient the work item's state in the job (pending,
 * claimed by a live worker, claimed by one that is gone, done, failed with the reason), per plan
 * the ledger's plan row (and the authorization row of an unapproved plan), files and bytes from
 * the file rows, the workers from lib/ledger/status.ts. Nothing comes from this server's memory,
 * so a reopened page, a second browser or a restarted server shows the same.
 */
import { existsSync } from "node:fs";
import type { Kysely } from "kysely";
import type { LedgerSchema } from "../lib/ledger/schema.ts";
import { summarizeLedger, type WorkerStatus } from "../lib/ledger/status.ts";
import { connectDatabase } from "../lib/sql/connect.ts";
import { parseDatabaseUrl } from "../lib/sql/url.ts";
import type { ItemState, JobSnapshot, PatientProgress, SelectedPatient, WorkerRow } from "./shared/types.ts";

/** What the ledger says about an export job's selection. */
export interface ExportProgress {
  patients: PatientProgress[];
  totals: JobSnapshot["totals"];
  workers: WorkerRow[];
  kinds: NonNullable<JobSnapshot["kinds"]>;
  /** True when a worker of the job is alive according to the ledger. */
  active: boolean;
}

/** Opens a ledger read-only for one look, or undefined when it does not exist yet. */
export async function withLedger<T>(url: string, look: (db: Kysely<LedgerSchema>) => Promise<T>): Promise<T | undefined> {
  const parsed = parseDatabaseUrl(url);
  if (parsed.dialect === "sqlite" && !existsSync(parsed.path!)) return undefined;
  const conn = await connectDatabase<LedgerSchema>(url, { readOnly: true });
  try {
    return await look(conn.db);
  } finally {
    await conn.close();
  }
}

function chunks<T>(list: T[], n = 400): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += n) out.push(list.slice(i, i + n));
  return out;
}

function workerRow(w: WorkerStatus): WorkerRow {
  return {
    host: w.host, pid: w.pid, state: w.state, outcome: w.outcome, startedAt: w.startedAt, lastHeartbeat: w.lastHeartbeat,
    items: w.items, files: w.files, bytes: w.bytes, bytesPerSecond: w.bytesPerSecond,
  };
}

/** The key of a patient's work item in an export job (lib/export/export.ts). */
export function patientWorkKey(source: string | undefined, patientId: string): string {
  return `patient|${source ?? ""}|${patientId}`;
}

/** The selection as it stands before anything ran: everything pending. */
export function pendingProgress(selection: SelectedPatient[]): PatientProgress[] {
  return selection.map((p) => ({
    patientId: p.patientId, name: p.name, state: "pending" as ItemState, attempts: 0, files: 0, bytes: 0,
    plans: p.plans.map((q) => ({ planKey: q.planKey, label: q.label ?? q.planId ?? q.planUid, approval: q.approval, state: "pending" as ItemState, files: 0, bytes: 0 })),
  }));
}

/**
 * The progress of an export job: `selection` with each patient's `source` (the records' source,
 * which keys the work items), read from the ledger at `url` for ledger job `job`.
 */
export async function exportProgress(
  url: string, job: string, selection: (SelectedPatient & { source?: string })[], now = Date.now(),
): Promise<ExportProgress> {
  const patients = pendingProgress(selection);
  const empty: ExportProgress = { patients, totals: totalsOf(patients), workers: [], kinds: {}, active: false };
  const result = await withLedger(url, async (db) => {
    const summary = await summarizeLedger(db, { errorLimit: 0, runLimit: 50 });
    if (!summary.schemaVersion) return empty;
    const runs = summary.runs.filter((r) => r.job === job);
    const alive = new Map(runs.filter((r) => r.state === "running").map((r) => [r.id, r]));
    const runOf = new Map(summary.runs.map((r) => [r.id, r]));
    const ids = selection.map((p) => p.patientId);
    const keyOf = new Map(selection.map((p) => [patientWorkKey(p.source, p.patientId), p.patientId]));
    const work = new Map<string, { status: string; owner: string | null; files: number; bytes: number; error: string | null; attempts: number }>();
    for (const part of chunks([...keyOf.keys()])) {
      const rows = await db.selectFrom("rtx_ledger_work").select(["key", "status", "owner", "files", "bytes", "error", "attempts"])
        .where("job", "=", job).where("key", "in", part).execute();
      for (const r of rows) {
        work.set(keyOf.get(r.key)!, { status: r.status, owner: r.owner, files: Number(r.files ?? 0), bytes: Number(r.bytes ?? 0), error: r.error, attempts: Number(r.attempts ?? 0) });
      }
    }
    const planKeys = selection.flatMap((p) => p.plans.map((q) => q.planKey));
    const planRows = new Map<string, { status: string; error: string | null; run: string }>();
    const authorizations = new Map<string, string>();
    for (const part of chunks(planKeys)) {
      const rows = await db.selectFrom("rtx_ledger_items").select(["kind", "key", "status", "error", "run_id", "source"])
        .where("kind", "in", ["plan", "authorization"]).where("key", "in", part).execute();
      for (const r of rows) {
        if (r.kind === "authorization") authorizations.set(r.key, r.source ?? "");
        else planRows.set(r.key, { status: r.status, error: r.error, run: r.run_id });
      }
    }
    // Files and bytes per patient, plan group and run, in one pass over the job's patients' file rows.
    const files = new Map<string, { n: number; bytes: number }>();
    const byRun = new Map<string, number>();
    for (const part of chunks(ids)) {
      const rows = await db.selectFrom("rtx_ledger_items")
        .select(["patient_id", "plan_key", "run_id", (eb) => eb.fn.countAll<number>().as("n"), (eb) => eb.fn.sum<number>("bytes").as("b")])
        .where("kind", "=", "file").where("status", "=", "done").where("patient_id", "in", part)
        .groupBy(["patient_id", "plan_key", "run_id"]).execute();
      for (const r of rows) {
        const group = (r.plan_key ?? "").replace(/^plan\|/, "");
        const k = `${r.patient_id}\u0000${group}`;
        const t = files.get(k) ?? { n: 0, bytes: 0 };
        t.n += Number(r.n);
        t.bytes += Number(r.b ?? 0);
        files.set(k, t);
        byRun.set(r.run_id, (byRun.get(r.run_id) ?? 0) + Number(r.b ?? 0));
      }
    }
    for (const p of patients) {
      const w = work.get(p.patientId);
      const owner = w?.owner ? runOf.get(w.owner) : undefined;
      if (w) {
        p.attempts = w.attempts;
        if (w.status === "done") p.state = "done";
        else if (w.status === "failed") p.state = "failed";
        else if (w.status === "claimed") p.state = owner && alive.has(owner.id) ? "running" : "interrupted";
        if (w.error) p.error = w.error;
        if (owner) p.worker = `${owner.host}:${owner.pid ?? "?"}`;
      }
      let patientFiles = 0, patientBytes = 0;
      const planGroups = new Set(p.plans.map((q) => q.planKey));
      for (const [k, t] of files) {
        const [pid, group] = k.split("\u0000");
        if (pid !== p.patientId) continue;
        patientFiles += t.n;
        patientBytes += t.bytes;
        if (planGroups.has(group)) {
          const plan = p.plans.find((q) => q.planKey === group)!;
          plan.files = t.n;
          plan.bytes = t.bytes;
        }
      }
      p.files = patientFiles;
      p.bytes = patientBytes;
      for (const q of p.plans) {
        const row = planRows.get(q.planKey);
        const by = authorizations.get(q.planKey);
        if (by) q.authorizedBy = by;
        // While its patient runs, a plan the running worker has not reached yet is running, whatever an earlier run left.
        const stale = p.state === "running" && (!row || row.run !== w?.owner);
        if (row && !stale && row.status !== "pending") {
          q.state = row.status === "done" ? "done" : row.status === "failed" ? "failed" : row.status === "skipped" ? "skipped" : "pending";
          if (row.error && q.state !== "done") q.error = row.error;
        } else if (p.state === "running" || p.state === "interrupted") q.state = p.state;
        else if (p.state === "failed") {
          q.state = "failed";
          q.error ??= p.error;
        }
      }
    }
    const totals = totalsOf(patients);
    const current = runs.find((r) => alive.has(r.id));
    if (current) {
      const seconds = Math.max(1, (now - Date.parse(current.startedAt)) / 1000);
      const bytes = byRun.get(current.id) ?? 0;
      totals.rate = Math.round(bytes / seconds);
      const doneNow = [...planRows.values()].filter((r) => r.run === current.id && r.status !== "pending").length;
      const left = totals.plansPending + totals.plansRunning;
      if (doneNow > 0 && left > 0) totals.eta = Math.round((seconds / doneNow) * left);
    }
    return { patients, totals, workers: runs.map(workerRow), kinds: summary.kinds, active: alive.size > 0 };
  });
  return result ?? empty;
}

/** Counts of a job's patients and plans by state, files and bytes. */
export function totalsOf(patients: PatientProgress[]): JobSnapshot["totals"] {
  const plans = patients.flatMap((p) => p.plans);
  const count = (s: ItemState) => plans.filter((q) => q.state === s).length;
  return {
    patients: patients.length,
    patientsDone: patients.filter((p) => p.state === "done").length,
    plans: plans.length,
    plansDone: count("done"),
    plansFailed: count("failed"),
    plansRunning: count("running"),
    plansPending: count("pending") + count("interrupted"),
    plansSkipped: count("skipped"),
    files: patients.reduce((n, p) => n + p.files, 0),
    bytes: patients.reduce((n, p) => n + p.bytes, 0),
  };
}

/** Counts per ledger kind and the job's workers, for jobs that are not exports (copy-files, push…). */
export async function ledgerCounts(url: string): Promise<{ kinds: NonNullable<JobSnapshot["kinds"]>; workers: WorkerRow[] } | undefined> {
  return await withLedger(url, async (db) => {
    const s = await summarizeLedger(db, { errorLimit: 0, runLimit: 5 });
    return { kinds: s.kinds, workers: s.runs.map(workerRow) };
  });
}
