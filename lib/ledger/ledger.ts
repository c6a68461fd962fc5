import { hostname } from "node:os";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomUUID } from "node:crypto";
import { type Kysely, sql } from "kysely";
import { connectDatabase, type SqlConnection, type SqlDialectName } from "../sql/connect.ts";

/** What the ledger tracks: one row per item and kind, updated as work proceeds. */
export type LedgerKind = "patient" | "plan" | "file" | "push" | "anonymize" | "retrieval" | "commit";
export type LedgerStatus = "pending" | "done" | "failed" | "skipped";

export interface LedgerItemRow {
  kind: string;
  key: string;
  status: string;
  patient_id: string | null;
  plan_key: string | null;
  source: string | null;
  dest: string | null;
  bytes: number | null;
  sha256: string | null;
  error: string | null;
  run_id: string;
  updated_at: string;
}
interface RunRow {
  id: string;
  command: string;
  host: string;
  started_at: string;
  finished_at: string | null;
  outcome: string | null;
}
interface FolderRow {
  patient_key: string;
  folder: string;
}
/** One audit event (lib/audit): who did what to which patient's data, from where to where, with what outcome. */
export interface LedgerAuditRow {
  id: string;
  run_id: string;
  at: string;
  action: string;
  user_name: string;
  host: string;
  patient_id: string | null;
  /** JSON: `[{uid, sopClasses: {uid: count}}]`. */
  studies: string;
  objects: number;
  failed: number;
  bytes: number;
  source: string;
  dest: string;
  outcome: string;
  outcome_text: string | null;
}
export interface LedgerSchema {
  rtx_ledger_items: LedgerItemRow;
  rtx_ledger_runs: RunRow;
  rtx_ledger_folders: FolderRow;
  rtx_ledger_audit: LedgerAuditRow;
}

/**
 * One row of the ledger: an item of a kind (patient, plan, file, push…) by key, its status, and
 * what is known about it (patient, plan, source and destination, bytes, hash, error).
 */
export interface LedgerEntry {
  kind: LedgerKind;
  key: string;
  status: LedgerStatus;
  patientId?: string;
  planKey?: string;
  source?: string;
  dest?: string;
  bytes?: number;
  sha256?: string;
  error?: string;
}

/** Ledger rows that could not be written (`failed`), with the database's reason. */
export class LedgerWriteError extends Error {
  readonly failed: LedgerEntry[];
  constructor(display: string, failed: LedgerEntry[], cause: Error) {
    const names = failed.slice(0, 3).map((e) => `${e.kind} "${e.key}"`).join(", ");
    super(`Cannot write ${failed.length} ledger row(s) to ${display} (${names}${failed.length > 3 ? ", …" : ""}): ${cause.message}`);
    this.name = "LedgerWriteError";
    this.failed = failed;
  }
}

/** One item's identity (kind and key) as a map key, for the queue and its bookkeeping. */
function itemId(kind: LedgerKind, key: string): string {
  return `${kind}\u0000${key}`;
}

/** The default ledger location inside an output folder. */
export function defaultLedgerUrl(outDir: string): string {
  return `sqlite:${join(outDir, ".rtexport", "ledger.sqlite")}`;
}

/**
 * The record of a migration: what was listed, exported, copied and pushed, with hashes and
 * outcomes. SQLite inside the output by default; PostgreSQL or SQL Server when several
 * machines share one migration. `record` is a single-row upsert; `queue` collects outcomes and
 * writes them in one transaction per batch (per-file statements cost ~0.1–0.2 ms each, a
 * tenth of a copied file). Either way a killed run leaves a consistent ledger and a rerun
 * continues from it: what a killed run had queued but not written is simply done again
 * (every acting command skips or repeats an item idempotently).
 *
 * @example
 * ```ts
 * const ledger = await Ledger.open("sqlite:export/.rtexport/ledger.sqlite", "my-script");
 * await ledger.record({ kind: "file", key: "P/DICOM/x.dcm", status: "done", bytes: 1234 });
 * await ledger.close();
 * ```
 */
export class Ledger {
  readonly runId: string = randomUUID();
  private readonly conn: SqlConnection<LedgerSchema>;
  private queued = new Map<string, LedgerEntry>();
  private writing: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Rows that failed to be written once, by kind and key. */
  private readonly failures = new Map<string, number>();
  /** The error of a flush the timer started, for the next caller of flush to see. */
  private background: unknown;
  /** Queued entries written per batch, and the longest an entry waits (ms). */
  static readonly BATCH = 256;
  static readonly BATCH_MS = 1000;
  private constructor(conn: SqlConnection<LedgerSchema>) {
    this.conn = conn;
  }

  get db(): Kysely<LedgerSchema> {
    return this.conn.db;
  }
  get display(): string {
    return this.conn.display;
  }

  static async open(url: string, command: string): Promise<Ledger> {
    if (url.startsWith("sqlite:")) {
      const path = url.slice(7);
      if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    }
    const conn = await connectDatabase<LedgerSchema>(url);
    const ledger = new Ledger(conn);
    try {
      await ledger.migrate();
      await ledger.db.insertInto("rtx_ledger_runs").values({
        id: ledger.runId, command, host: hostname(), started_at: new Date().toISOString(), finished_at: null, outcome: null,
      }).execute();
    } catch (e) {
      await conn.close().catch(() => {});
      throw new Error(`Cannot open ledger "${conn.display}": ${(e as Error).message}`);
    }
    return ledger;
  }

  private async migrate(): Promise<void> {
    // Introspection instead of CREATE TABLE IF NOT EXISTS, which SQL Server does not have.
    const existing = new Set((await this.db.introspection.getTables()).map((t) => t.name));
    for (const [name, builder] of ledgerTables(this.db, this.conn.dialect)) {
      if (!existing.has(name)) await builder.execute();
    }
  }

  /** Records an item's outcome now (insert or update). */
  async record(e: LedgerEntry): Promise<void> {
    await this.flush();
    await this.upsert(e);
  }

  /** One item, in its own transaction. Update-then-insert works the same on SQLite, PostgreSQL and SQL Server. */
  private async upsert(e: LedgerEntry): Promise<void> {
    const row = this.row(e);
    await this.db.transaction().execute(async (tx) => {
      const r = await tx.updateTable("rtx_ledger_items").set(row).where("kind", "=", e.kind).where("key", "=", e.key)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) {
        await tx.insertInto("rtx_ledger_items").values({ kind: e.kind, key: e.key, ...row }).execute();
      }
    });
  }

  /**
   * Records an item's outcome in the next batch: written when {@link Ledger.BATCH} entries
   * are queued, {@link Ledger.BATCH_MS} after the first was queued (a timer, so a stalled
   * input does not hold them), and by `flush`, `finish`, `record` and `close`. A later entry
   * for the same item replaces a queued one.
   */
  async queue(e: LedgerEntry): Promise<void> {
    const id = itemId(e.kind, e.key);
    this.queued.delete(id); // keeps the order of the last outcome
    this.queued.set(id, e);
    if (this.queued.size >= Ledger.BATCH) {
      await this.flush();
      return;
    }
    if (!this.timer) {
      // A failure here is kept for the next flush, finish or close to report (and its rows retried).
      this.timer = setTimeout(() => void this.flush().catch((e) => (this.background ??= e)), Ledger.BATCH_MS);
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  /**
   * Writes the queued entries (batches one after the other, in the order they were queued).
   * Rows that cannot be written go back into the queue once (unless a newer outcome for the
   * same item was queued meanwhile), for the next flush to try again; the error, naming them,
   * is thrown to this caller. Rows that fail twice are given up (and were named twice).
   */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.queued.size > 0) {
      const entries = [...this.queued.values()];
      this.queued = new Map();
      const batch = this.writing.then(() => this.recordMany(entries)).catch((e: unknown) => {
        const failed = e instanceof LedgerWriteError ? e.failed : entries;
        const newer = this.queued;
        this.queued = new Map();
        for (const x of failed) {
          const id = itemId(x.kind, x.key);
          const tries = (this.failures.get(id) ?? 0) + 1;
          if (tries >= 2) {
            this.failures.delete(id);
            continue;
          }
          this.failures.set(id, tries);
          this.queued.set(id, x);
        }
        for (const [id, x] of newer) {
          this.queued.delete(id);
          this.queued.set(id, x);
        }
        throw e;
      });
      // The chain stays usable after a failure: only this flush's caller sees the error.
      this.writing = batch.catch(() => {});
      await batch;
    } else await this.writing;
    if (this.background !== undefined) {
      const e = this.background;
      this.background = undefined;
      throw e;
    }
  }

  /**
   * Records many outcomes in one transaction: existing items are updated, new ones inserted
   * with multi-row INSERTs (in chunks that stay under SQL Server's 2,100 parameters). When that
   * transaction fails (a row another machine inserted meanwhile, a value a column refuses), each
   * outcome is written on its own; the ones that still fail are named in the error.
   */
  async recordMany(entries: LedgerEntry[]): Promise<void> {
    try {
      await this.recordBatch(entries);
      // Written: rows that had failed once start afresh.
      if (this.failures.size) for (const e of entries) this.failures.delete(itemId(e.kind, e.key));
    } catch (batchError) {
      const failed: LedgerEntry[] = [];
      let first: unknown;
      for (const e of entries) {
        try {
          await this.upsert(e);
          this.failures.delete(itemId(e.kind, e.key));
        } catch (rowError) {
          first ??= rowError;
          failed.push(e);
        }
      }
      if (failed.length) throw new LedgerWriteError(this.display, failed, (first ?? batchError) as Error);
    }
  }

  private async recordBatch(entries: LedgerEntry[]): Promise<void> {
    const last = new Map<string, LedgerEntry>();
    for (const e of entries) last.set(itemId(e.kind, e.key), e);
    const byKind = new Map<LedgerKind, LedgerEntry[]>();
    for (const e of last.values()) {
      let list = byKind.get(e.kind);
      if (!list) byKind.set(e.kind, list = []);
      list.push(e);
    }
    await this.db.transaction().execute(async (tx) => {
      for (const [kind, list] of byKind) {
        const existing = new Set<string>();
        for (let i = 0; i < list.length; i += 500) {
          const keys = list.slice(i, i + 500).map((e) => e.key);
          const rows = await tx.selectFrom("rtx_ledger_items").select("key").where("kind", "=", kind).where("key", "in", keys).execute();
          for (const r of rows) existing.add(r.key);
        }
        const fresh: LedgerItemRow[] = [];
        for (const e of list) {
          if (existing.has(e.key)) {
            await tx.updateTable("rtx_ledger_items").set(this.row(e)).where("kind", "=", kind).where("key", "=", e.key).execute();
          } else fresh.push({ kind, key: e.key, ...this.row(e) });
        }
        for (let i = 0; i < fresh.length; i += 150) {
          await tx.insertInto("rtx_ledger_items").values(fresh.slice(i, i + 150)).execute();
        }
      }
    });
  }

  private row(e: LedgerEntry): Omit<LedgerItemRow, "kind" | "key"> {
    return {
      status: e.status,
      patient_id: e.patientId ?? null,
      plan_key: e.planKey ?? null,
      source: e.source ?? null,
      dest: e.dest ?? null,
      bytes: e.bytes ?? null,
      sha256: e.sha256 ?? null,
      error: e.error ?? null,
      run_id: this.runId,
      updated_at: new Date().toISOString(),
    };
  }

  async get(kind: LedgerKind, key: string): Promise<LedgerItemRow | undefined> {
    const queued = this.queued.get(itemId(kind, key));
    if (queued) return { kind, key, ...this.row(queued) }; // not flushed for one look-up: batches stay batches
    await this.writing; // a batch being written counts
    return await this.db.selectFrom("rtx_ledger_items").selectAll().where("kind", "=", kind).where("key", "=", key)
      .executeTakeFirst();
  }

  /** Keys of items of a kind with a given status (for resume). */
  async keys(kind: LedgerKind, status: LedgerStatus): Promise<Set<string>> {
    await this.flush(); // queued outcomes count
    const rows = await this.db.selectFrom("rtx_ledger_items").select("key").where("kind", "=", kind)
      .where("status", "=", status).execute();
    return new Set(rows.map((r) => r.key));
  }

  /**
   * Like `keys`, when there are at most `limit` such items (a shared migration ledger can hold
   * millions: then undefined, and the caller looks items up one by one).
   */
  async keysIfAtMost(kind: LedgerKind, status: LedgerStatus, limit: number): Promise<Set<string> | undefined> {
    await this.flush();
    const r = await this.db.selectFrom("rtx_ledger_items").select((eb) => eb.fn.countAll().as("n")).where("kind", "=", kind)
      .where("status", "=", status).executeTakeFirstOrThrow();
    return Number(r.n) <= limit ? await this.keys(kind, status) : undefined;
  }

  /** Files recorded as done under a plan key (the group an export stage filed them under). */
  async doneFilesOf(planKey: string): Promise<LedgerItemRow[]> {
    await this.flush(); // queued outcomes count
    return await this.db.selectFrom("rtx_ledger_items").selectAll().where("kind", "=", "file").where("plan_key", "=", planKey)
      .where("status", "=", "done").orderBy("key").execute();
  }

  async folders(): Promise<[string, string][]> {
    const rows = await this.db.selectFrom("rtx_ledger_folders").selectAll().execute();
    return rows.map((r) => [r.patient_key, r.folder]);
  }

  async rememberFolder(patientKey: string, folder: string): Promise<void> {
    const existing = await this.db.selectFrom("rtx_ledger_folders").select("folder").where("patient_key", "=", patientKey)
      .executeTakeFirst();
    if (!existing) await this.db.insertInto("rtx_ledger_folders").values({ patient_key: patientKey, folder }).execute();
  }

  /** Appends audit events (rows are never updated: the trail only grows). */
  async appendAudit(rows: Omit<LedgerAuditRow, "id" | "run_id">[]): Promise<void> {
    if (rows.length === 0) return;
    const values = rows.map((r) => ({ ...r, id: randomUUID(), run_id: this.runId }));
    for (let i = 0; i < values.length; i += 100) await this.db.insertInto("rtx_ledger_audit").values(values.slice(i, i + 100)).execute();
  }

  async finish(outcome: "ok" | "partial" | "failed" | "interrupted"): Promise<void> {
    await this.flush();
    await this.db.updateTable("rtx_ledger_runs").set({ finished_at: new Date().toISOString(), outcome })
      .where("id", "=", this.runId).execute();
  }

  /** Writes what is queued and closes the connection; throws (after closing) when rows could not be written. */
  async close(): Promise<void> {
    let error: unknown;
    try {
      await this.flush();
    } catch (e) {
      error = e;
    }
    await this.conn.close();
    if (error) throw error;
  }
}

/** The ledger's CREATE TABLE statements for a dialect (exported so tests can compile them for each). */
export function ledgerTables(db: Kysely<LedgerSchema>, dialect: SqlDialectName) {
  // SQL Server limits index keys to 900 bytes: the primary key columns stay below that there.
  const key = dialect === "mssql" ? "nvarchar(400)" : "varchar(1024)";
  const long = dialect === "mssql" ? "nvarchar(max)" : "text";
  return [
    ["rtx_ledger_runs", db.schema.createTable("rtx_ledger_runs")
      .addColumn("id", "varchar(64)", (c) => c.primaryKey())
      .addColumn("command", "varchar(64)", (c) => c.notNull())
      .addColumn("host", "varchar(255)", (c) => c.notNull())
      .addColumn("started_at", "varchar(32)", (c) => c.notNull())
      .addColumn("finished_at", "varchar(32)")
      .addColumn("outcome", "varchar(32)")],
    ["rtx_ledger_items", db.schema.createTable("rtx_ledger_items")
      .addColumn("kind", "varchar(16)", (c) => c.notNull())
      .addColumn("key", sql.raw(key), (c) => c.notNull())
      .addColumn("status", "varchar(16)", (c) => c.notNull())
      .addColumn("patient_id", "varchar(255)")
      .addColumn("plan_key", sql.raw(long))
      .addColumn("source", sql.raw(long))
      .addColumn("dest", sql.raw(long))
      .addColumn("bytes", "bigint")
      .addColumn("sha256", "varchar(64)")
      .addColumn("error", sql.raw(long))
      .addColumn("run_id", "varchar(64)", (c) => c.notNull())
      .addColumn("updated_at", "varchar(32)", (c) => c.notNull())
      .addPrimaryKeyConstraint("rtx_ledger_items_pk", ["kind", "key"])],
    ["rtx_ledger_folders", db.schema.createTable("rtx_ledger_folders")
      .addColumn("patient_key", sql.raw(key), (c) => c.primaryKey())
      .addColumn("folder", sql.raw(long), (c) => c.notNull())],
    ["rtx_ledger_audit", db.schema.createTable("rtx_ledger_audit")
      .addColumn("id", "varchar(64)", (c) => c.primaryKey())
      .addColumn("run_id", "varchar(64)", (c) => c.notNull())
      .addColumn("at", "varchar(40)", (c) => c.notNull())
      .addColumn("action", "varchar(16)", (c) => c.notNull())
      .addColumn("user_name", "varchar(255)", (c) => c.notNull())
      .addColumn("host", "varchar(255)", (c) => c.notNull())
      .addColumn("patient_id", "varchar(255)")
      .addColumn("studies", sql.raw(long), (c) => c.notNull())
      .addColumn("objects", "integer", (c) => c.notNull())
      .addColumn("failed", "integer", (c) => c.notNull())
      .addColumn("bytes", "bigint", (c) => c.notNull())
      .addColumn("source", sql.raw(long), (c) => c.notNull())
      .addColumn("dest", sql.raw(long), (c) => c.notNull())
      .addColumn("outcome", "varchar(32)", (c) => c.notNull())
      .addColumn("outcome_text", sql.raw(long))],
  ] as const;
}

/** Counts and recent errors for `status`. */
export interface LedgerSummary {
  kinds: Record<string, { done: number; failed: number; pending: number; skipped: number; bytes: number }>;
  lastErrors: { kind: string; key: string; error: string; at: string }[];
  runs: { id: string; command: string; host: string; startedAt: string; finishedAt: string | null; outcome: string | null }[];
  /**
   * Storage Commitment, when a push asked for it: objects stored (C-STORE acknowledged), committed
   * by the peer, not committed (sent again by the next push), and stored without an answer yet.
   */
  commitment?: { stored: number; committed: number; failed: number; unconfirmed: number };
  /** Audit events recorded (one per patient and run). */
  auditEvents?: number;
}

/**
 * What `rtexport status` shows: counts and bytes per kind and status, the last errors, the runs.
 *
 * @example
 * ```ts
 * const ledger = await Ledger.open("sqlite:export/.rtexport/ledger.sqlite", "status");
 * console.log((await summarizeLedger(ledger.db)).kinds);
 * await ledger.close();
 * ```
 */
export async function summarizeLedger(db: Kysely<LedgerSchema>, errorLimit = 10): Promise<LedgerSummary> {
  const rows = await db.selectFrom("rtx_ledger_items")
    .select(["kind", "status", (eb) => eb.fn.countAll<number>().as("n"), (eb) => eb.fn.sum<number>("bytes").as("bytes")])
    .groupBy(["kind", "status"]).execute();
  const kinds: LedgerSummary["kinds"] = {};
  for (const r of rows) {
    const k = kinds[r.kind] ??= { done: 0, failed: 0, pending: 0, skipped: 0, bytes: 0 };
    const status = r.status as keyof typeof k;
    if (status in k && status !== "bytes") k[status] += Number(r.n);
    if (r.status === "done") k.bytes += Number(r.bytes ?? 0);
  }
  const errors = await db.selectFrom("rtx_ledger_items").select(["kind", "key", "error", "updated_at"])
    .where("status", "=", "failed").orderBy("updated_at", "desc").limit(errorLimit).execute();
  const runs = await db.selectFrom("rtx_ledger_runs").selectAll().orderBy("started_at", "desc").limit(10).execute();
  let commitment: LedgerSummary["commitment"];
  if (kinds.commit) {
    const r = await db.selectFrom("rtx_ledger_items as p").select((eb) => eb.fn.countAll<number>().as("n"))
      .where("p.kind", "=", "push").where("p.status", "=", "done")
      .where((eb) => eb.not(eb.exists(eb.selectFrom("rtx_ledger_items as c").select("c.key").where("c.kind", "=", "commit").whereRef("c.key", "=", "p.key"))))
      .executeTakeFirst();
    commitment = { stored: kinds.push?.done ?? 0, committed: kinds.commit.done, failed: kinds.commit.failed, unconfirmed: Number(r?.n ?? 0) };
  }
  let auditEvents: number | undefined;
  if ((await db.introspection.getTables()).some((t) => t.name === "rtx_ledger_audit")) {
    const a = await db.selectFrom("rtx_ledger_audit").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    if (Number(a?.n ?? 0) > 0) auditEvents = Number(a!.n);
  }
  return {
    ...(commitment ? { commitment } : {}),
    ...(auditEvents !== undefined ? { auditEvents } : {}),
    kinds,
    lastErrors: errors.map((e) => ({ kind: e.kind, key: e.key, error: e.error ?? "", at: e.updated_at })),
    runs: runs.map((r) => ({ id: r.id, command: r.command, host: r.host, startedAt: r.started_at, finishedAt: r.finished_at, outcome: r.outcome })),
  };
}
