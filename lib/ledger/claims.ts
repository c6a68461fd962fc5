/**
 * Work claiming in the ledger: the ledger is also the migration's work queue.
 *
 * A *job* is one command line that any number of workers run (processes on any number of
 * machines, and claimers inside each process). Each worker seeds the job with the items of its
 * input (patients; their plans become pending rows), then claims items one at a time:
 * `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)` on PostgreSQL, the same with
 * `WITH (UPDLOCK, READPAST, ROWLOCK)` and `TOP (1)` on SQL Server, one atomic UPDATE under the
 * write lock on SQLite. A claim is a lease that the worker's heartbeat renews; an item whose
 * lease ran out (its worker died, or lost the database for longer than the lease) is claimable
 * again, so another worker takes it over. The database's clock decides, never a machine's.
 *
 * A job works in *passes*: a worker that starts while other workers of the job are alive joins
 * their pass (and its items are done once); one that starts when none is alive begins a new pass,
 * in which every item of its input is checked again (a rerun; the stage then skips what is
 * already in place, or exports again what changed).
 */
import { createHash } from "node:crypto";
import { type Kysely, sql } from "kysely";
import { processAlive } from "../runtime/mod.ts";
import { dbNowMs, num, queueFrom, writeTransaction } from "./_dialect.ts";
import type { Ledger, LedgerKind, LedgerSchema, WorkRow } from "./ledger.ts";

/** One item to seed: its key, the records a worker needs to do it, and rows listed with it (its plans). */
export interface SeedItem {
  key: string;
  kind?: LedgerKind;
  patientId?: string;
  payload: unknown;
  /** Rows recorded as pending with the item, when the ledger has none for them yet. */
  listed?: { kind: LedgerKind; key: string; patientId?: string }[];
}

/** A claimed item. */
export interface ClaimedItem {
  id: string;
  key: string;
  kind: LedgerKind;
  patientId?: string;
  payload: unknown;
  attempts: number;
  /** The run whose lease ran out on this item, when it is taken over. */
  reclaimedFrom?: string;
  /** That run's machine and process. */
  reclaimedFromHost?: string;
  reclaimedFromPid?: number;
}

/** How a claimed item ended. */
export interface ItemOutcome {
  status: "done" | "failed";
  files?: number;
  bytes?: number;
  error?: string;
}

/** What is left of a pass, for a worker deciding whether to wait. */
export interface PassState {
  /** Pending items, and claimed ones whose lease ran out. */
  claimable: number;
  /** Items other runs hold with a live lease. */
  othersActive: number;
  /** Items this run holds. */
  mineActive: number;
}

/** The id of a job's item: a hash, so any key fits SQL Server's index limit. */
export function workItemId(job: string, key: string): string {
  return createHash("sha256").update(`${job}\u0000${key}`).digest("hex").slice(0, 40);
}

const SEED_BATCH = 100;

/**
 * The claim statement for a dialect (exported so a test can compile it for SQL Server, which
 * cannot run here). PostgreSQL and SQL Server pick the next row in a common table expression,
 * evaluated once, that locks it and skips rows other sessions hold (an `IN (subquery)` with the
 * database's clock in it is re-run per row by PostgreSQL, and then claims every row); SQLite has
 * one writer, and an UPDATE of the first claimable row is atomic.
 *
 * `which` picks pending items (the index on job, pass, status, seq finds the next in one step)
 * or items held by a run whose lease ran out; one condition for both (`pending or expired`) made
 * every claim scan the whole pass: 125 claims/s at 20,000 items against 450 at 2,000.
 */
export function claimQuery(
  db: Kysely<LedgerSchema>, ledger: { dialect: Ledger["dialect"]; runId: string; leaseMs: number }, job: string, pass: string,
  which: "pending" | "expired" = "pending",
) {
  const dialect = ledger.dialect;
  const now = dbNowMs(dialect);
  const leaseEnd = sql<number>`(${now} + ${sql.lit(Math.floor(ledger.leaseMs))})`;
  // deno-lint-ignore no-explicit-any -- the locked FROM item is raw SQL; its columns are WorkRow's
  const claimable = (eb: any, prefix: string) =>
    eb.and([
      eb(`${prefix}job`, "=", job),
      eb(`${prefix}pass`, "=", pass),
      ...(which === "pending"
        ? [eb(`${prefix}status`, "=", "pending")]
        : [eb(`${prefix}status`, "=", "claimed"), eb(`${prefix}lease_until`, "<", now)]),
    ]);
  const t = (c: string) => sql.ref(`rtx_ledger_work.${c}`);
  const set = {
    status: "claimed",
    owner: ledger.runId,
    previous_owner: sql<string | null>`case when ${t("status")} = 'claimed' then ${t("owner")} else ${t("previous_owner")} end`,
    lease_until: leaseEnd,
    attempts: sql<number>`${t("attempts")} + 1`,
    updated_at: new Date().toISOString(),
  };
  const columns = ["id", "key", "kind", "patient_id", "payload", "attempts", "previous_owner"] as const;
  if (dialect === "sqlite") {
    const pick = db.selectFrom("rtx_ledger_work as w").select("w.id").where((eb) => claimable(eb, "w.")).orderBy("w.seq").limit(1);
    return db.updateTable("rtx_ledger_work").set(set).where("id", "in", pick).returning([...columns]);
  }
  const withNext = db.with("next", (qb) => {
    const pick = qb.selectFrom(queueFrom<WorkRow, "w">(dialect, "rtx_ledger_work", "w")).select("w.id").where((eb) => claimable(eb, "w."))
      .orderBy("w.seq");
    return dialect === "postgres" ? pick.limit(1).forUpdate().skipLocked() : pick.top(1);
  });
  const update = withNext.updateTable("rtx_ledger_work").set(set).from("next").whereRef("rtx_ledger_work.id", "=", "next.id");
  if (dialect === "mssql") return update.output(columns.map((c) => `inserted.${c}` as const));
  return update.returning(columns.map((c) => `rtx_ledger_work.${c}` as const));
}

/** A worker's view of one job: seeding, claiming, completing and releasing its items. */
export class WorkQueue {
  readonly ledger: Ledger;
  readonly job: string;
  readonly pass: string;
  /** True when this worker began the pass (no other worker of the job was alive). */
  readonly startedPass: boolean;
  private constructor(ledger: Ledger, job: string, pass: string, startedPass: boolean) {
    this.ledger = ledger;
    this.job = job;
    this.pass = pass;
    this.startedPass = startedPass;
  }

  private get db(): Kysely<LedgerSchema> {
    return this.ledger.db;
  }

  /**
   * Joins `job` as this ledger's run, with `workers` claimers: the pass of the job's live workers,
   * or a new pass when none is alive. Safe when several workers start at once (the job's row is
   * locked while one decides).
   */
  static async join(ledger: Ledger, opts: { job: string; workers?: number }): Promise<WorkQueue> {
    await reapLocalDead(ledger);
    const dialect = ledger.dialect;
    const now = dbNowMs(dialect);
    for (let attempt = 0;; attempt++) {
      try {
        const [pass, started] = await writeTransaction(ledger.db, dialect, async (tx) => {
          let pick = tx.selectFrom(queueFrom<{ job: string; pass: string }, "j">(dialect, "rtx_ledger_jobs", "j", "updlock, holdlock, rowlock"))
            .select(["j.job", "j.pass"]).where("j.job", "=", opts.job);
          if (dialect === "postgres") pick = pick.forUpdate();
          const row = await pick.executeTakeFirst();
          let pass: string | undefined;
          if (row) {
            const live = await tx.selectFrom("rtx_ledger_runs").select((eb) => eb.fn.countAll().as("n")).where("pass", "=", row.pass)
              .where("finished_at", "is", null).where("lease_until", ">", now).where("id", "<>", ledger.runId).executeTakeFirst();
            if (num(live?.n) > 0) pass = row.pass;
          }
          const started = pass === undefined;
          if (!pass) {
            pass = ledger.runId;
            const updated_at = new Date().toISOString();
            if (row) await tx.updateTable("rtx_ledger_jobs").set({ pass, updated_at }).where("job", "=", opts.job).execute();
            else await tx.insertInto("rtx_ledger_jobs").values({ job: opts.job, pass, updated_at }).execute();
          }
          await tx.updateTable("rtx_ledger_runs").set({ job: opts.job, pass, workers: opts.workers ?? 1 }).where("id", "=", ledger.runId)
            .execute();
          return [pass, started] as const;
        });
        ledger.renewClaims = true;
        ledger.claimsWork = true;
        return new WorkQueue(ledger, opts.job, pass, started);
      } catch (e) {
        // Two workers inserting the job's first row at once: one loses, tries again, and joins.
        if (attempt >= 5) throw e;
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      }
    }
  }

  /**
   * Adds items to this pass: new ones as pending; items of an earlier pass become pending in this
   * one; items this pass already has (another worker seeded them) are left as they are. Rows
   * listed with an item (and the item itself) are recorded as pending where the ledger has none.
   */
  async seed(items: SeedItem[], firstSeq = 0): Promise<void> {
    for (let i = 0; i < items.length; i += SEED_BATCH) {
      const batch = items.slice(i, i + SEED_BATCH).map((item, j) => ({ item, seq: firstSeq + i + j, id: workItemId(this.job, item.key) }));
      for (let attempt = 0;; attempt++) {
        try {
          await writeTransaction(this.db, this.ledger.dialect, (tx) => this.seedBatch(tx, batch));
          break;
        } catch (e) {
          // Another worker inserted some of these rows meanwhile: the next try finds them.
          if (attempt >= 5) throw e;
          await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
        }
      }
    }
  }

  private async seedBatch(tx: Kysely<LedgerSchema>, batch: { item: SeedItem; seq: number; id: string }[]): Promise<void> {
    const found = await tx.selectFrom("rtx_ledger_work").select(["id", "pass"]).where("id", "in", batch.map((b) => b.id)).execute();
    const passOf = new Map(found.map((r) => [r.id, r.pass]));
    const updated_at = new Date().toISOString();
    const fresh: WorkRow[] = [];
    for (const { item, seq, id } of batch) {
      const row = {
        kind: item.kind ?? "patient", key: item.key, patient_id: item.patientId ?? null, seq, pass: this.pass, status: "pending",
        owner: null, previous_owner: null, lease_until: null, attempts: 0, payload: JSON.stringify(item.payload), files: null,
        bytes: null, error: null, updated_at,
      };
      const pass = passOf.get(id);
      if (pass === undefined) fresh.push({ id, job: this.job, ...row });
      else if (pass !== this.pass) await tx.updateTable("rtx_ledger_work").set(row).where("id", "=", id).where("pass", "=", pass).execute();
    }
    for (let i = 0; i < fresh.length; i += 50) await tx.insertInto("rtx_ledger_work").values(fresh.slice(i, i + 50)).execute();
    // The items and what is listed with them, as pending rows of the ledger where it has none.
    const listed = new Map<LedgerKind, Map<string, string | null>>();
    for (const { item } of batch) {
      for (const l of [{ kind: item.kind ?? "patient", key: item.key, patientId: item.patientId }, ...(item.listed ?? [])]) {
        let m = listed.get(l.kind);
        if (!m) listed.set(l.kind, m = new Map());
        m.set(l.key, l.patientId ?? null);
      }
    }
    for (const [kind, keys] of listed) {
      const all = [...keys.keys()];
      const have = new Set<string>();
      for (let i = 0; i < all.length; i += 500) {
        for (const r of await tx.selectFrom("rtx_ledger_items").select("key").where("kind", "=", kind).where("key", "in", all.slice(i, i + 500)).execute()) {
          have.add(r.key);
        }
      }
      const rows = all.filter((k) => !have.has(k)).map((key) => ({
        kind, key, status: "pending", patient_id: keys.get(key) ?? null, plan_key: null, source: null, dest: null, bytes: null, sha256: null,
        error: null, run_id: this.ledger.runId, updated_at, source_bytes: null, source_mtime_ms: null,
      }));
      for (let i = 0; i < rows.length; i += 100) await tx.insertInto("rtx_ledger_items").values(rows.slice(i, i + 100)).execute();
    }
  }

  /** Claims the next item of the pass (pending, or held by a run whose lease ran out); undefined when there is none now. */
  async claim(): Promise<ClaimedItem | undefined> {
    type Claimed = Pick<WorkRow, "id" | "key" | "kind" | "patient_id" | "payload" | "attempts" | "previous_owner">;
    let rows = await claimQuery(this.db, this.ledger, this.job, this.pass, "pending").execute() as unknown as Claimed[];
    if (!rows.length) rows = await claimQuery(this.db, this.ledger, this.job, this.pass, "expired").execute() as unknown as Claimed[];
    const r = rows[0];
    if (!r) return undefined;
    const attempts = num(r.attempts);
    let from: { host: string; pid: number | null } | undefined;
    if (r.previous_owner && r.previous_owner !== this.ledger.runId) {
      await this.db.updateTable("rtx_ledger_runs").set({ taken_over: sql`coalesce(${sql.ref("taken_over")}, 0) + 1` } as never)
        .where("id", "=", r.previous_owner).execute();
      from = await this.db.selectFrom("rtx_ledger_runs").select(["host", "pid"]).where("id", "=", r.previous_owner).executeTakeFirst();
    }
    return {
      id: r.id, key: r.key, kind: r.kind as LedgerKind, patientId: r.patient_id ?? undefined,
      payload: r.payload === null ? undefined : JSON.parse(r.payload), attempts,
      reclaimedFrom: from ? r.previous_owner! : undefined,
      reclaimedFromHost: from?.host, reclaimedFromPid: from?.pid === null || from === undefined ? undefined : num(from.pid),
    };
  }

  /**
   * Records how an item ended, when this run still holds it; returns false when its lease had run
   * out and another worker took it over (the item is then that worker's to finish).
   */
  async complete(item: ClaimedItem, outcome: ItemOutcome): Promise<boolean> {
    let held: boolean;
    try {
      const r = await this.db.updateTable("rtx_ledger_work").set({
        status: outcome.status, lease_until: null, files: outcome.files ?? null, bytes: outcome.bytes ?? null, error: outcome.error ?? null,
        updated_at: new Date().toISOString(),
      }).where("id", "=", item.id).where("owner", "=", this.ledger.runId).where("status", "=", "claimed").executeTakeFirst();
      held = Number(r.numUpdatedRows) > 0;
      if (!held) return false;
      await this.db.updateTable("rtx_ledger_runs").set({
        items_done: sql`coalesce(${sql.ref("items_done")}, 0) + ${sql.lit(outcome.status === "done" ? 1 : 0)}`,
        items_failed: sql`coalesce(${sql.ref("items_failed")}, 0) + ${sql.lit(outcome.status === "failed" ? 1 : 0)}`,
        files: sql`coalesce(${sql.ref("files")}, 0) + ${sql.lit(Math.floor(outcome.files ?? 0))}`,
        bytes: sql`coalesce(${sql.ref("bytes")}, 0) + ${sql.lit(Math.floor(outcome.bytes ?? 0))}`,
        heartbeat_ms: dbNowMs(this.ledger.dialect),
      } as never).where("id", "=", this.ledger.runId).execute();
    } catch {
      // The ledger cannot be written (a full disk, a lost server): the item's outcome goes to the
      // journal below, and `status` counts it from there.
      held = true;
    }
    await this.ledger.record({
      kind: item.kind, key: item.key, status: outcome.status, patientId: item.patientId, bytes: outcome.bytes, error: outcome.error,
    });
    return held;
  }

  /** Gives an item back (this run stops before finishing it): pending again, for any worker. */
  async release(item: ClaimedItem): Promise<void> {
    await this.db.updateTable("rtx_ledger_work").set({ status: "pending", owner: null, previous_owner: null, lease_until: null })
      .where("id", "=", item.id).where("owner", "=", this.ledger.runId).where("status", "=", "claimed").execute();
  }

  /** What is left of the pass. */
  async state(): Promise<PassState> {
    const now = dbNowMs(this.ledger.dialect);
    const base = () => this.db.selectFrom("rtx_ledger_work").select((eb) => eb.fn.countAll().as("n")).where("job", "=", this.job)
      .where("pass", "=", this.pass);
    const [claimable, others, mine] = await Promise.all([
      base().where((eb) => eb.or([eb("status", "=", "pending"), eb.and([eb("status", "=", "claimed"), eb("lease_until", "<", now)])]))
        .executeTakeFirst(),
      base().where("status", "=", "claimed").where("lease_until", ">=", now).where("owner", "<>", this.ledger.runId).executeTakeFirst(),
      base().where("status", "=", "claimed").where("owner", "=", this.ledger.runId).executeTakeFirst(),
    ]);
    return { claimable: num(claimable?.n), othersActive: num(others?.n), mineActive: num(mine?.n) };
  }

  /** Ends this run's part: its claims stop being renewed, and the items it still holds go back to pending. */
  async leave(): Promise<void> {
    this.ledger.renewClaims = false;
    await this.db.updateTable("rtx_ledger_work").set({ status: "pending", owner: null, previous_owner: null, lease_until: null })
      .where("owner", "=", this.ledger.runId).where("status", "=", "claimed").execute();
  }

  /** Expires the leases of runs on this machine whose process is gone (see {@link reapLocalDead}). */
  reapLocalDead(): Promise<number> {
    return reapLocalDead(this.ledger);
  }
}

/**
 * Runs of this machine whose process is gone hold no lease: their leases end now, so their items
 * are taken over at once instead of when the lease would have run out. (Other machines' runs are
 * judged by their lease alone.) Returns the number of runs reaped.
 */
export async function reapLocalDead(ledger: Ledger): Promise<number> {
  const now = dbNowMs(ledger.dialect);
  const runs = await ledger.db.selectFrom("rtx_ledger_runs").select(["id", "pid"]).where("host", "=", ledger.host)
    .where("finished_at", "is", null).where("lease_until", ">", now).where("id", "<>", ledger.runId).execute();
  let reaped = 0;
  for (const r of runs) {
    if (r.pid === null || processAlive(num(r.pid))) continue;
    await ledger.db.updateTable("rtx_ledger_runs").set({ lease_until: 0 }).where("id", "=", r.id).execute();
    await ledger.db.updateTable("rtx_ledger_work").set({ lease_until: 0 }).where("owner", "=", r.id).where("status", "=", "claimed").execute();
    reaped++;
  }
  return reaped;
}
