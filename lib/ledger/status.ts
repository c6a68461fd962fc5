/**
 * What `status` reports, read from a ledger opened read-only: counts per kind and status (items
 * listed but not done are pending), the work of each job's current pass, every worker with its
 * state (running, finished, or dead: its lease ran out, or its process is gone from this
 * machine), what it did and how fast, the items taken over from dead workers, and outcomes that
 * runs could not write to the ledger (journals) — those are counted as if they were written.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { type Kysely, sql } from "kysely";
import { processAlive } from "../runtime/mod.ts";
import type { SqlDialectName } from "../sql/connect.ts";
import { dbNowMs, dialectOf, num } from "./_dialect.ts";
import { type JournalFile, readJournals } from "./journal.ts";
import type { LedgerSchema } from "./schema.ts";
import { ledgerSchemaVersion } from "./migrations.ts";

type Counts = { done: number; failed: number; pending: number; skipped: number; bytes: number };

/** A run (one process) as `status` shows it. */
export interface WorkerStatus {
  id: string;
  command: string;
  host: string;
  pid: number | null;
  job: string | null;
  /** running, finished, dead (lease ran out, or its process is gone from this machine), or unknown (a run of a version without leases). */
  state: "running" | "finished" | "dead" | "unknown";
  outcome: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** Last heartbeat (ISO 8601, the database's clock). */
  lastHeartbeat: string | null;
  /** Claimers in the process. */
  workers: number | null;
  items: number;
  itemsFailed: number;
  files: number;
  bytes: number;
  /** Items per minute and bytes per second over the run's life so far. */
  itemsPerMinute: number | null;
  bytesPerSecond: number | null;
  /** Items other workers took over from this run after its lease ran out. */
  reclaimed: number;
}

/** The current pass of a job. */
export interface JobStatus {
  job: string;
  pass: string;
  items: { total: number; pending: number; running: number; done: number; failed: number };
  /** Items of the pass taken over from a dead worker. */
  reclaimed: number;
}

/** Outcomes a run could not write to the ledger, waiting in its journal. */
export interface UnwrittenStatus {
  runId: string;
  path: string;
  entries: number;
  failed: number;
}

/** Counts and recent errors for `status`. */
export interface LedgerSummary {
  kinds: Record<string, Counts>;
  lastErrors: { kind: string; key: string; error: string; at: string }[];
  runs: WorkerStatus[];
  jobs?: JobStatus[];
  unwritten?: UnwrittenStatus[];
  schemaVersion?: number;
  /**
   * Storage Commitment, when a push asked for it: objects stored (C-STORE acknowledged), committed
   * by the peer, not committed (sent again by the next push), and stored without an answer yet.
   */
  commitment?: { stored: number; committed: number; failed: number; unconfirmed: number };
  /** Audit events recorded (one per patient and run; schema version 3). */
  auditEvents?: number;
}

/** Options of {@link summarizeLedger}. */
export interface SummaryOptions {
  errorLimit?: number;
  dialect?: SqlDialectName;
  /** Journals of unwritten outcomes to count in (see journal.ts). */
  journals?: JournalFile[];
  /** Runs listed beside those of the jobs' current passes (default 10). */
  runLimit?: number;
}

/**
 * What `rtexport status` shows: counts per kind and status (pending included), the last errors,
 * the runs with their workers and leases (dead ones named), outcomes left in journals. Reads
 * only: works on a ledger opened read-only.
 *
 * @example
 * ```ts
 * const ledger = await Ledger.open("sqlite:export/.rtexport/ledger.sqlite", "status");
 * console.log((await summarizeLedger(ledger.db)).kinds);
 * await ledger.close();
 * ```
 */
export async function summarizeLedger(db: Kysely<LedgerSchema>, options: number | SummaryOptions = {}): Promise<LedgerSummary> {
  const opts: SummaryOptions = typeof options === "number" ? { errorLimit: options } : options;
  const version = await ledgerSchemaVersion(db);
  if (version === 0) return { kinds: {}, lastErrors: [], runs: [], jobs: [], unwritten: [], schemaVersion: 0 };
  const rows = await db.selectFrom("rtx_ledger_items")
    .select(["kind", "status", (eb) => eb.fn.countAll<number>().as("n"), (eb) => eb.fn.sum<number>("bytes").as("bytes")])
    .groupBy(["kind", "status"]).execute();
  const kinds: LedgerSummary["kinds"] = {};
  const bump = (kind: string, status: string, n: number, bytes: number) => {
    const k = kinds[kind] ??= { done: 0, failed: 0, pending: 0, skipped: 0, bytes: 0 };
    if (status === "done" || status === "failed" || status === "pending" || status === "skipped") k[status] += n;
    if (status === "done") k.bytes += bytes;
  };
  for (const r of rows) bump(r.kind, r.status, num(r.n), num(r.bytes));
  const errors = await db.selectFrom("rtx_ledger_items").select(["kind", "key", "error", "updated_at"])
    .where("status", "=", "failed").orderBy("updated_at", "desc").limit(opts.errorLimit ?? 10).execute();
  const lastErrors = errors.map((e) => ({ kind: e.kind, key: e.key, error: e.error ?? "", at: e.updated_at }));

  // Journaled outcomes replace what the ledger says of their items.
  const unwritten: UnwrittenStatus[] = [];
  const latest = new Map<string, NonNullable<JournalFile["lines"][number]["entry"]> & { at: string }>();
  for (const j of opts.journals ?? []) {
    let entries = 0;
    let failed = 0;
    for (const l of j.lines) {
      if (!l.entry) continue;
      entries++;
      if (l.entry.status === "failed") failed++;
      latest.set(`${l.entry.kind}\u0000${l.entry.key}`, { ...l.entry, at: l.at });
    }
    unwritten.push({ runId: j.runId, path: j.path, entries, failed });
  }
  if (latest.size) {
    const byKind = new Map<string, string[]>();
    for (const e of latest.values()) (byKind.get(e.kind) ?? byKind.set(e.kind, []).get(e.kind)!).push(e.key);
    for (const [kind, keys] of byKind) {
      for (let i = 0; i < keys.length; i += 500) {
        const found = await db.selectFrom("rtx_ledger_items").select(["key", "status", "bytes"]).where("kind", "=", kind)
          .where("key", "in", keys.slice(i, i + 500)).execute();
        for (const r of found) bump(kind, r.status, -1, -num(r.bytes));
      }
    }
    for (const e of latest.values()) {
      bump(e.kind, e.status, 1, e.bytes ?? 0);
      if (e.status === "failed") lastErrors.unshift({ kind: e.kind, key: e.key, error: `${e.error ?? ""} (not yet in the ledger)`, at: e.at });
    }
    lastErrors.splice(opts.errorLimit ?? 10);
  }

  const clinical = await commitmentAndAudit(db, kinds, version);
  if (version < 2) {
    const runs = await db.selectFrom("rtx_ledger_runs").select(["id", "command", "host", "started_at", "finished_at", "outcome"])
      .orderBy("started_at", "desc").limit(opts.runLimit ?? 10).execute();
    return {
      kinds, lastErrors, jobs: [], unwritten, schemaVersion: version, ...clinical,
      runs: runs.map((r) => ({
        id: r.id, command: r.command, host: r.host, pid: null, job: null, state: r.finished_at ? "finished" : "unknown", outcome: r.outcome,
        startedAt: r.started_at, finishedAt: r.finished_at, lastHeartbeat: null, workers: null, items: 0, itemsFailed: 0, files: 0,
        bytes: 0, itemsPerMinute: null, bytesPerSecond: null, reclaimed: 0,
      })),
    };
  }

  const now = num((await sql<{ now: number }>`select ${dbNowMs(opts.dialect ?? dialectOf(db as Kysely<unknown>))} as ${sql.id("now")}`.execute(db)).rows[0]?.now);
  const jobRows = await db.selectFrom("rtx_ledger_jobs").selectAll().orderBy("job").execute();
  const passes = jobRows.map((j) => j.pass);
  // Runs of the current passes, and the latest others.
  const current = passes.length
    ? await db.selectFrom("rtx_ledger_runs").selectAll().where("pass", "in", passes).orderBy("started_at", "desc").execute()
    : [];
  const recent = await db.selectFrom("rtx_ledger_runs").selectAll().orderBy("started_at", "desc").limit(opts.runLimit ?? 10).execute();
  const runRows = [...new Map([...current, ...recent].map((r) => [r.id, r])).values()]
    .sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0));
  // How runs ended that could not write it (journaled).
  const endedInJournal = new Map<string, { finishedAt: string; outcome: string }>();
  for (const j of opts.journals ?? []) for (const l of j.lines) if (l.run) endedInJournal.set(l.runId, l.run);
  const here = hostname();
  const runs: WorkerStatus[] = runRows.map((r) => {
    const ended = endedInJournal.get(r.id);
    if (ended && !r.finished_at) Object.assign(r, { finished_at: ended.finishedAt, outcome: ended.outcome });
    const lease = r.lease_until === null ? null : num(r.lease_until);
    const localGone = r.host === here && r.pid !== null && !processAlive(num(r.pid));
    const state: WorkerStatus["state"] = r.finished_at
      ? "finished"
      : lease === null
      ? (localGone ? "dead" : "unknown")
      : lease < now || localGone
      ? "dead"
      : "running";
    const started = r.started_ms === null ? null : num(r.started_ms);
    const last = r.heartbeat_ms === null ? null : num(r.heartbeat_ms);
    const seconds = started !== null && last !== null ? Math.max(0.001, (last - started) / 1000) : null;
    const items = num(r.items_done);
    const bytes = num(r.bytes);
    return {
      id: r.id, command: r.command, host: r.host, pid: r.pid === null ? null : num(r.pid), job: r.job, state, outcome: r.outcome,
      startedAt: r.started_at, finishedAt: r.finished_at, lastHeartbeat: last === null ? null : new Date(last).toISOString(),
      workers: r.workers === null ? null : num(r.workers), items, itemsFailed: num(r.items_failed), files: num(r.files), bytes,
      itemsPerMinute: seconds === null ? null : round(items / seconds * 60), bytesPerSecond: seconds === null ? null : Math.round(bytes / seconds),
      reclaimed: num(r.taken_over),
    };
  });
  const running = new Set(runs.filter((r) => r.state === "running").map((r) => r.id));
  const jobs: JobStatus[] = [];
  for (const j of jobRows) {
    const work = await db.selectFrom("rtx_ledger_work").select(["kind", "key", "status", "owner", "lease_until", "previous_owner"])
      .where("job", "=", j.job).where("pass", "=", j.pass).execute();
    const items = { total: work.length, pending: 0, running: 0, done: 0, failed: 0 };
    let reclaimed = 0;
    for (const w of work) {
      if (w.previous_owner) reclaimed++;
      // An item whose end its worker could not write is counted by its journaled outcome.
      const journaled = latest.get(`${w.kind}\u0000${w.key}`);
      if (journaled && w.status === "claimed" && !running.has(w.owner ?? "")) w.status = journaled.status;
      if (w.status === "done") items.done++;
      else if (w.status === "failed") items.failed++;
      else if (w.status === "claimed" && num(w.lease_until) >= now && running.has(w.owner ?? "")) items.running++;
      else items.pending++; // pending, or held by a worker that is gone
    }
    jobs.push({ job: j.job, pass: j.pass, items, reclaimed });
  }
  return { kinds, lastErrors, runs, jobs, unwritten, schemaVersion: version, ...clinical };
}

/** Stored against committed (when there are commitment rows), and the audit trail's size (version 3 on). */
async function commitmentAndAudit(db: Kysely<LedgerSchema>, kinds: LedgerSummary["kinds"], version: number): Promise<Pick<LedgerSummary, "commitment" | "auditEvents">> {
  const out: Pick<LedgerSummary, "commitment" | "auditEvents"> = {};
  if (kinds.commit) {
    const r = await db.selectFrom("rtx_ledger_items as p").select((eb) => eb.fn.countAll<number>().as("n"))
      .where("p.kind", "=", "push").where("p.status", "=", "done")
      .where((eb) => eb.not(eb.exists(eb.selectFrom("rtx_ledger_items as c").select("c.key").where("c.kind", "=", "commit").whereRef("c.key", "=", "p.key"))))
      .executeTakeFirst();
    out.commitment = { stored: kinds.push?.done ?? 0, committed: kinds.commit.done, failed: kinds.commit.failed, unconfirmed: num(r?.n) };
  }
  if (version >= 3) {
    const a = await db.selectFrom("rtx_ledger_audit").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    if (num(a?.n) > 0) out.auditEvents = num(a!.n);
  }
  return out;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Journals of unwritten outcomes for a ledger (see journal.ts), for {@link summarizeLedger}. */
export function ledgerJournals(dirs: string[], identity: string): JournalFile[] {
  return readJournals(dirs, identity);
}

/** One file of the tree checked against the ledger. */
export interface TreeCheck {
  key: string;
  state: "ok" | "changed" | "missing";
  /** The hash of the file now (for a changed file). */
  sha256?: string;
  ledgerSha256?: string;
}

/**
 * Rehashes every file the ledger records as done against `root` (the export's tree): `ok`,
 * `changed` (other bytes than the ledger recorded) or `missing`. Reads only.
 */
export async function* verifyTree(db: Kysely<LedgerSchema>, root: string): AsyncGenerator<TreeCheck> {
  let last = "";
  for (;;) {
    const rows = await db.selectFrom("rtx_ledger_items").select(["key", "dest", "sha256", "bytes"]).where("kind", "=", "file")
      .where("status", "=", "done").where("key", ">", last).orderBy("key").limit(500).execute();
    if (!rows.length) return;
    for (const r of rows) {
      last = r.key;
      const path = join(root, r.dest ?? r.key);
      const sha256 = await hashOrUndefined(path);
      if (sha256 === undefined) yield { key: r.key, state: "missing", ledgerSha256: r.sha256 ?? undefined };
      else if (r.sha256 && sha256 !== r.sha256) yield { key: r.key, state: "changed", sha256, ledgerSha256: r.sha256 };
      else yield { key: r.key, state: "ok" };
    }
  }
}

function hashOrUndefined(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const h = createHash("sha256");
    createReadStream(path).on("data", (d) => h.update(d)).on("error", () => resolve(undefined)).on("end", () => resolve(h.digest("hex")));
  });
}

/** Runs the ledger holds alive now: not finished, lease not run out (their host and process id). */
export async function liveRuns(db: Kysely<LedgerSchema>): Promise<{ id: string; host: string; pid: number }[]> {
  if ((await ledgerSchemaVersion(db)) < 2) return [];
  const now = dbNowMs(dialectOf(db as Kysely<unknown>));
  const rows = await db.selectFrom("rtx_ledger_runs").select(["id", "host", "pid"]).where("finished_at", "is", null)
    .where("lease_until", ">", now).execute();
  return rows.map((r) => ({ id: r.id, host: r.host, pid: num(r.pid) }));
}
