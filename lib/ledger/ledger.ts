import { hostname } from "node:os";
import { mkdirSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomUUID } from "node:crypto";
import process from "node:process";
import { type Kysely, type RawBuilder, sql } from "kysely";
import { connectDatabase, DatabaseConnectError, DIALECT_NAMES, type SqlConnection, type SqlDialectName } from "../sql/connect.ts";
import { dbNowMs, writeTransaction } from "./_dialect.ts";
import { appendJournal, defaultJournalDirs, type JournalLine, ledgerIdentity, readJournals } from "./journal.ts";
import { ledgerTables, migrateLedger } from "./migrations.ts";
import type { LedgerAuditRow, LedgerEntry, LedgerItemRow, LedgerKind, LedgerSchema, LedgerStatus } from "./schema.ts";

export type { JobRow, LedgerAuditRow, LedgerEntry, LedgerItemRow, LedgerKind, LedgerSchema, LedgerStatus, RunRow, WorkRow } from "./schema.ts";

export { ledgerTables };

/** Ledger rows that could not be written (`failed`), with the database's reason. */
export class LedgerWriteError extends Error {
  readonly failed: LedgerEntry[];
  constructor(display: string, failed: LedgerEntry[], cause: Error, journal?: string) {
    const names = failed.slice(0, 3).map((e) => `${e.kind} "${e.key}"`).join(", ");
    super(
      `Cannot write ${failed.length} ledger row(s) to ${display} (${names}${failed.length > 3 ? ", …" : ""}): ${cause.message}` +
        (journal ? `; kept in "${journal}" for the next run to record` : ""),
    );
    this.name = "LedgerWriteError";
    this.failed = failed;
  }
}

/** One item's identity (kind and key) as a map key, for the queue and its bookkeeping. */
/** Outcomes that are one file or object each: what a run's `files` and `bytes` count. */
const OBJECT_KINDS = new Set<LedgerKind>(["file", "push", "anonymize"]);

function itemId(kind: LedgerKind, key: string): string {
  return `${kind}\u0000${key}`;
}

/** The default ledger location inside an output folder. */
export function defaultLedgerUrl(outDir: string): string {
  return `sqlite:${join(outDir, ".rtexport", "ledger.sqlite")}`;
}

/** Options of {@link Ledger.open}. */
export interface LedgerOpenOptions {
  /**
   * How long the run's lease lasts without a heartbeat (ms, default 60 s); the heartbeat renews
   * it every third of that. A run whose lease ran out is dead, and other workers take its items.
   */
  leaseMs?: number;
  /** Folders for the journal of outcomes the database refused (default: beside an SQLite ledger, then the temporary folder). */
  journalDirs?: string[];
  /**
   * Told about problems that do not stop the run: outcomes the database refused (journaled), a
   * missed heartbeat, outcomes of an earlier run recorded from its journal. Without it, refused
   * outcomes are thrown to the caller of `flush`, `record` or `close`.
   */
  onWarning?: (text: string) => void;
  /** Connections a PostgreSQL or SQL Server pool may hold (default 4; a run with several workers wants more). */
  poolSize?: number;
}

/** Outcomes of an earlier run recorded at open from its journal. */
export interface ReplayedJournal {
  runId: string;
  path: string;
  entries: number;
}

/**
 * The record of a migration: what was listed, exported, copied and pushed, with hashes and
 * outcomes. SQLite inside the output by default; PostgreSQL or SQL Server when several
 * machines share one migration. `record` is a single-row upsert; `queue` collects outcomes and
 * writes them in one transaction per batch (per-file statements cost ~0.1–0.2 ms each, a
 * tenth of a copied file). Either way a killed run leaves a consistent ledger and a rerun
 * continues from it: what a killed run had queued but not written is simply done again
 * (every acting command skips or repeats an item idempotently). Outcomes the database refuses
 * go to a journal file and are recorded by the next run (see journal.ts).
 *
 * Each open ledger is a run: a row with its host, process id and a lease its heartbeat renews,
 * so `status` tells a running run from a dead one, and work claimed by a dead run goes back to
 * the others (see claims.ts).
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
  readonly host: string = hostname();
  readonly pid: number = process.pid;
  readonly leaseMs: number;
  /** Outcomes of earlier runs that this open recorded from their journals. */
  readonly replayed: ReplayedJournal[] = [];
  private readonly conn: SqlConnection<LedgerSchema>;
  private queued = new Map<string, LedgerEntry>();
  private writing: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  /** Renews the leases of claimed work on each heartbeat (set by a WorkQueue). */
  renewClaims = false;
  /**
   * This run claims work items (set by a WorkQueue, for good): its row in `rtx_ledger_runs`
   * counts files and bytes as each item completes. A run that claims nothing counts them as its
   * outcomes are written, so `status` shows what every worker did.
   */
  claimsWork = false;
  /** Rows that failed to be written once, by kind and key. */
  private readonly failures = new Map<string, number>();
  /** The error of a flush the timer started, for the next caller of flush to see. */
  private background: unknown;
  private readonly journalDirs: string[];
  private readonly identity: string;
  private readonly onWarning?: (text: string) => void;
  /** Outcomes this run could not write and journaled instead, and where. */
  unwritten = 0;
  journalPath: string | undefined;
  private closed = false;
  /** Queued entries written per batch, and the longest an entry waits (ms). */
  static readonly BATCH = 256;
  static readonly BATCH_MS = 1000;
  private constructor(conn: SqlConnection<LedgerSchema>, url: string, opts: LedgerOpenOptions) {
    this.conn = conn;
    this.leaseMs = Math.max(1000, opts.leaseMs ?? 60_000);
    this.journalDirs = opts.journalDirs ?? defaultJournalDirs(url);
    this.identity = ledgerIdentity(url);
    this.onWarning = opts.onWarning;
  }

  get db(): Kysely<LedgerSchema> {
    return this.conn.db;
  }
  get display(): string {
    return this.conn.display;
  }
  get dialect(): SqlDialectName {
    return this.conn.dialect;
  }

  static async open(url: string, command: string, opts: LedgerOpenOptions = {}): Promise<Ledger> {
    if (url.startsWith("sqlite:")) {
      const path = url.slice(7);
      if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    }
    let conn: SqlConnection<LedgerSchema>;
    try {
      conn = await connectDatabase<LedgerSchema>(url, { poolSize: opts.poolSize });
    } catch (e) {
      if (e instanceof DatabaseConnectError) throw new Error(`Cannot open ledger "${e.display}" (${DIALECT_NAMES[e.dialect]}): ${e.reason}`, { cause: e });
      throw e;
    }
    const ledger = new Ledger(conn, url, opts);
    try {
      await migrateLedger(ledger.db, ledger.dialect);
      const now = dbNowMs(ledger.dialect);
      await ledger.db.insertInto("rtx_ledger_runs").values({
        id: ledger.runId, command, host: ledger.host, pid: ledger.pid, started_at: new Date().toISOString(), finished_at: null,
        outcome: null, started_ms: now, heartbeat_ms: now, lease_until: ledger.leaseEnd(),
        items_done: 0, items_failed: 0, files: 0, bytes: 0,
      } as never).execute();
      await ledger.heartbeat();
    } catch (e) {
      await conn.close().catch(() => {});
      throw new Error(`Cannot open ledger "${conn.display}": ${(e as Error).message}`);
    }
    ledger.heartbeatTimer = setInterval(() => {
      ledger.heartbeat().catch((e) => ledger.onWarning?.(`Cannot renew this run's lease in the ledger: ${(e as Error).message}`));
    }, Math.floor(ledger.leaseMs / 3));
    (ledger.heartbeatTimer as { unref?: () => void }).unref?.();
    await ledger.replayJournals();
    return ledger;
  }

  /** Renews this run's lease (and, with claims, the leases of the work it holds). */
  async heartbeat(): Promise<void> {
    if (this.closed) return;
    const now = dbNowMs(this.dialect);
    const until = this.leaseEnd();
    await this.db.updateTable("rtx_ledger_runs").set({ lease_until: until, heartbeat_ms: now } as never).where("id", "=", this.runId).execute();
    if (this.renewClaims) {
      await this.db.updateTable("rtx_ledger_work").set({ lease_until: this.leaseEnd() } as never).where("owner", "=", this.runId)
        .where("status", "=", "claimed").execute();
    }
  }

  /** `now + lease` on the database's clock, as SQL. */
  leaseEnd(): RawBuilder<number> {
    return sql<number>`(${dbNowMs(this.dialect)} + ${sql.lit(Math.floor(this.leaseMs))})`;
  }

  /** Records outcomes that earlier runs journaled because the database refused them, and removes their journals. */
  private async replayJournals(): Promise<void> {
    for (const j of readJournals(this.journalDirs, this.identity)) {
      if (j.runId === this.runId) continue;
      const entries = j.lines.flatMap((l) => (l.entry ? [l.entry] : []));
      try {
        if (entries.length) await this.recordMany(entries, { journalOnFailure: false });
        for (const l of j.lines) {
          if (l.run) {
            await this.db.updateTable("rtx_ledger_runs").set({ finished_at: l.run.finishedAt, outcome: l.run.outcome })
              .where("id", "=", l.runId).where("finished_at", "is", null).execute();
          }
        }
        unlinkSync(j.path);
        this.replayed.push({ runId: j.runId, path: j.path, entries: entries.length });
        this.onWarning?.(
          `Recorded ${entries.length} outcome(s) that run ${j.runId} could not write to the ledger then (from "${j.path}")`,
        );
      } catch (e) {
        this.onWarning?.(`Cannot record the journal "${j.path}" of run ${j.runId} in the ledger yet: ${(e as Error).message}`);
      }
    }
  }

  /** Records an item's outcome now (insert or update). */
  async record(e: LedgerEntry): Promise<void> {
    await this.settle();
    try {
      await this.upsert(e);
    } catch (error) {
      const journal = this.journal([{ runId: this.runId, at: new Date().toISOString(), entry: e }]);
      this.refused(new LedgerWriteError(this.display, [e], error as Error, journal), true);
    }
  }

  /** One item, in its own transaction. Update-then-insert works the same on SQLite, PostgreSQL and SQL Server. */
  private async upsert(e: LedgerEntry): Promise<void> {
    await writeTransaction(this.db, this.dialect, async (tx) => {
      const r = await tx.updateTable("rtx_ledger_items").set(this.update(e)).where("kind", "=", e.kind).where("key", "=", e.key)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) {
        await tx.insertInto("rtx_ledger_items").values({ kind: e.kind, key: e.key, ...this.row(e) }).execute();
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
      await this.settle();
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => void this.settle(), Ledger.BATCH_MS);
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  /**
   * `flush` for the ledger's own callers: a refused batch does not stop the run. Its rows are
   * tried once more with the next batch and then journaled; the problem goes to `onWarning`
   * (without one, to the next caller of `flush` or `close`).
   */
  private async settle(): Promise<void> {
    try {
      await this.flush();
    } catch (e) {
      this.refused(e, false);
    }
  }

  /** A write the database refused: told to `onWarning`, or kept for the next `flush` (or thrown now, with `now`). */
  private refused(e: unknown, now: boolean): void {
    if (this.onWarning) {
      this.onWarning((e as Error).message);
      return;
    }
    if (now) throw e;
    this.background ??= e;
  }

  /**
   * Writes the queued entries (batches one after the other, in the order they were queued).
   * Rows that cannot be written go back into the queue once (unless a newer outcome for the
   * same item was queued meanwhile), for the next flush to try again; the error, naming them,
   * is thrown to this caller. Rows that fail twice go to the journal (and were named twice).
   */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.queued.size > 0) {
      const entries = [...this.queued.values()];
      this.queued = new Map();
      const batch = this.writing.then(() => this.recordMany(entries, { journalOnFailure: false })).catch((e: unknown) => {
        const failed = e instanceof LedgerWriteError ? e.failed : entries;
        const newer = this.queued;
        this.queued = new Map();
        const givenUp: LedgerEntry[] = [];
        for (const x of failed) {
          const id = itemId(x.kind, x.key);
          const tries = (this.failures.get(id) ?? 0) + 1;
          if (tries >= 2) {
            this.failures.delete(id);
            givenUp.push(x);
            continue;
          }
          this.failures.set(id, tries);
          this.queued.set(id, x);
        }
        for (const [id, x] of newer) {
          this.queued.delete(id);
          this.queued.set(id, x);
        }
        if (givenUp.length) {
          const at = new Date().toISOString();
          const journal = this.journal(givenUp.map((entry) => ({ runId: this.runId, at, entry })));
          throw new LedgerWriteError(this.display, givenUp, e as Error, journal);
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

  /** Appends lines to this run's journal; returns its path (throws when no folder takes it). */
  private journal(lines: JournalLine[]): string {
    this.journalPath = appendJournal(this.journalDirs, this.identity, this.runId, lines);
    this.unwritten += lines.filter((l) => l.entry).length;
    return this.journalPath;
  }

  /**
   * Records many outcomes in one transaction: existing items are updated, new ones inserted
   * with multi-row INSERTs (in chunks that stay under SQL Server's 2,100 parameters). When that
   * transaction fails (a row another machine inserted meanwhile, a value a column refuses), each
   * outcome is written on its own; the ones that still fail are named in the error (and, unless
   * `journalOnFailure` is false, journaled).
   */
  async recordMany(entries: LedgerEntry[], opts: { journalOnFailure?: boolean } = {}): Promise<void> {
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
      if (failed.length) {
        let journal: string | undefined;
        if (opts.journalOnFailure !== false) {
          const at = new Date().toISOString();
          journal = this.journal(failed.map((entry) => ({ runId: this.runId, at, entry })));
        }
        throw new LedgerWriteError(this.display, failed, (first ?? batchError) as Error, journal);
      }
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
    await writeTransaction(this.db, this.dialect, async (tx) => {
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
            await tx.updateTable("rtx_ledger_items").set(this.update(e)).where("kind", "=", kind).where("key", "=", e.key).execute();
          } else fresh.push({ kind, key: e.key, ...this.row(e) });
        }
        for (let i = 0; i < fresh.length; i += 120) {
          await tx.insertInto("rtx_ledger_items").values(fresh.slice(i, i + 120)).execute();
        }
      }
      if (this.claimsWork) return;
      let files = 0;
      let bytes = 0;
      for (const e of last.values()) {
        if (e.status !== "done" || !OBJECT_KINDS.has(e.kind)) continue;
        files++;
        bytes += Math.floor(e.bytes ?? 0);
      }
      if (files === 0) return;
      await tx.updateTable("rtx_ledger_runs").set({
        files: sql`coalesce(${sql.ref("files")}, 0) + ${sql.lit(files)}`,
        bytes: sql`coalesce(${sql.ref("bytes")}, 0) + ${sql.lit(bytes)}`,
      } as never).where("id", "=", this.runId).execute();
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
      source_bytes: e.sourceBytes ?? null,
      source_mtime_ms: e.sourceMtimeMs ?? null,
    };
  }

  /** The columns an update sets: all of them, except a patient or plan group the new outcome does not name. */
  private update(e: LedgerEntry): Partial<Omit<LedgerItemRow, "kind" | "key">> {
    const row: Partial<Omit<LedgerItemRow, "kind" | "key">> = this.row(e);
    if (e.patientId === undefined) delete row.patient_id;
    if (e.planKey === undefined) delete row.plan_key;
    return row;
  }

  async get(kind: LedgerKind, key: string): Promise<LedgerItemRow | undefined> {
    const queued = this.queued.get(itemId(kind, key));
    if (queued) return { kind, key, ...this.row(queued) }; // not flushed for one look-up: batches stay batches
    await this.writing; // a batch being written counts
    const row = await this.db.selectFrom("rtx_ledger_items").selectAll().where("kind", "=", kind).where("key", "=", key)
      .executeTakeFirst();
    return row && normalizeItem(row);
  }

  /**
   * Keys of items of a kind with a given status (for resume). With `patientId`, only that
   * patient's items and those recorded without a patient: a claimed item of one patient reads
   * what concerns it, not the whole migration's rows each time.
   */
  async keys(kind: LedgerKind, status: LedgerStatus, scope: { patientId?: string } = {}): Promise<Set<string>> {
    await this.settle(); // queued outcomes count
    let q = this.db.selectFrom("rtx_ledger_items").select("key").where("kind", "=", kind).where("status", "=", status);
    const patientId = scope.patientId;
    if (patientId !== undefined) q = q.where((eb) => eb.or([eb("patient_id", "=", patientId), eb("patient_id", "is", null)]));
    const rows = await q.execute();
    return new Set(rows.map((r) => r.key));
  }

  /**
   * Like `keys`, when there are at most `limit` such items (a shared migration ledger can hold
   * millions: then undefined, and the caller looks items up one by one).
   */
  async keysIfAtMost(kind: LedgerKind, status: LedgerStatus, limit: number, scope: { patientId?: string } = {}): Promise<Set<string> | undefined> {
    await this.settle();
    let q = this.db.selectFrom("rtx_ledger_items").select((eb) => eb.fn.countAll().as("n")).where("kind", "=", kind).where("status", "=", status);
    const patientId = scope.patientId;
    if (patientId !== undefined) q = q.where((eb) => eb.or([eb("patient_id", "=", patientId), eb("patient_id", "is", null)]));
    const r = await q.executeTakeFirstOrThrow();
    return Number(r.n) <= limit ? await this.keys(kind, status, scope) : undefined;
  }

  /** Files recorded as done under a plan key (the group an export stage filed them under). */
  async doneFilesOf(planKey: string): Promise<LedgerItemRow[]> {
    await this.settle(); // queued outcomes count
    const rows = await this.db.selectFrom("rtx_ledger_items").selectAll().where("kind", "=", "file").where("plan_key", "=", planKey)
      .where("status", "=", "done").orderBy("key").execute();
    return rows.map(normalizeItem);
  }

  async folders(): Promise<[string, string][]> {
    const rows = await this.db.selectFrom("rtx_ledger_folders").select(["patient_key", "folder"]).execute();
    return rows.map((r) => [r.patient_key, r.folder]);
  }

  async rememberFolder(patientKey: string, folder: string): Promise<void> {
    const existing = await this.db.selectFrom("rtx_ledger_folders").select("folder").where("patient_key", "=", patientKey)
      .executeTakeFirst();
    if (!existing) {
      await this.db.insertInto("rtx_ledger_folders").values({ patient_key: patientKey, folder, folder_key: folder.toLowerCase() }).execute();
    }
  }

  /** Appends audit events (rows are never updated: the trail only grows). */
  async appendAudit(rows: Omit<LedgerAuditRow, "id" | "run_id">[]): Promise<void> {
    if (rows.length === 0) return;
    const values = rows.map((r) => ({ ...r, id: randomUUID(), run_id: this.runId }));
    for (let i = 0; i < values.length; i += 100) await this.db.insertInto("rtx_ledger_audit").values(values.slice(i, i + 100)).execute();
  }

  /**
   * The folder of a patient, assigned once for the whole migration: the patient's folder when the
   * ledger has one, else the first of `candidates` no other patient has (compared without case).
   * Atomic across processes and machines: a unique index on the folder decides between two
   * workers that want one name at once.
   */
  async assignFolder(patientKey: string, candidates: Iterable<string>): Promise<string> {
    const mine = async () =>
      (await this.db.selectFrom("rtx_ledger_folders").select("folder").where("patient_key", "=", patientKey).executeTakeFirst())?.folder;
    const known = await mine();
    if (known) return known;
    let tried = 0;
    for (const folder of candidates) {
      if (++tried > 1000) break;
      const taken = await this.db.selectFrom("rtx_ledger_folders").select("patient_key").where("folder_key", "=", folder.toLowerCase())
        .executeTakeFirst();
      if (taken) {
        if (taken.patient_key === patientKey) return folder;
        continue;
      }
      try {
        await this.db.insertInto("rtx_ledger_folders").values({ patient_key: patientKey, folder, folder_key: folder.toLowerCase() }).execute();
        return folder;
      } catch (e) {
        // Another worker took this name, or assigned this patient, a moment ago.
        const now = await mine();
        if (now) return now;
        const still = await this.db.selectFrom("rtx_ledger_folders").select("patient_key").where("folder_key", "=", folder.toLowerCase())
          .executeTakeFirst();
        if (!still) throw e;
      }
    }
    throw new Error(`Cannot assign a folder to patient "${patientKey}": every candidate name is taken`);
  }

  async finish(outcome: "ok" | "partial" | "failed" | "interrupted"): Promise<void> {
    await this.settle();
    const finishedAt = new Date().toISOString();
    try {
      await this.db.updateTable("rtx_ledger_runs").set({ finished_at: finishedAt, outcome, lease_until: null, heartbeat_ms: dbNowMs(this.dialect) } as never)
        .where("id", "=", this.runId).execute();
    } catch (e) {
      const journal = this.journal([{ runId: this.runId, at: finishedAt, run: { finishedAt, outcome } }]);
      this.onWarning?.(`Cannot record the end of this run in the ledger (${(e as Error).message}); kept in "${journal}"`);
    }
  }

  /**
   * Writes what is queued and closes the connection. Outcomes that still cannot be written go to
   * the journal; the error then thrown (after closing) names how many and where.
   */
  async close(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    let error: unknown;
    try {
      await this.flush();
    } catch (e) {
      error = e;
    }
    if (this.queued.size) {
      // Tried once already: into the journal rather than lost.
      const at = new Date().toISOString();
      try {
        this.journal([...this.queued.values()].map((entry) => ({ runId: this.runId, at, entry })));
      } catch (e) {
        error = e;
      }
      this.queued.clear();
    }
    this.closed = true;
    await this.conn.close();
    if (this.unwritten > 0) {
      throw new Error(
        `${this.unwritten} outcome(s) could not be written to the ledger ${this.display}; they are kept in "${this.journalPath}" ` +
          `and recorded by the next run that opens the ledger${error ? ` (${(error as Error).message})` : ""}`,
      );
    }
    if (error) throw error;
  }
}

/** Numbers as numbers (PostgreSQL returns bigint columns as strings). */
function normalizeItem(row: LedgerItemRow): LedgerItemRow {
  return {
    ...row,
    bytes: row.bytes === null ? null : Number(row.bytes),
    source_bytes: row.source_bytes === null || row.source_bytes === undefined ? null : Number(row.source_bytes),
    source_mtime_ms: row.source_mtime_ms === null || row.source_mtime_ms === undefined ? null : Number(row.source_mtime_ms),
  };
}

