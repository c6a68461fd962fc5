// The ledger on SQLite and on a real PostgreSQL: batched writes, the versioned schema (created by
// many processes at once), work claims with leases (split, taken over from a dead worker, passes),
// the journal of outcomes the database refused, read-only opening, and the SQL Server statements
// compiled by kysely (no SQL Server can run here).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kysely } from "kysely";
import { Ledger, type LedgerEntry, type LedgerSchema, LedgerWriteError } from "../lib/ledger/ledger.ts";
import { claimQuery, WorkQueue } from "../lib/ledger/claims.ts";
import { ledgerTables, ledgerV2Statements, ledgerV3Statements, LEDGER_SCHEMA_VERSION, ledgerSchemaVersion } from "../lib/ledger/migrations.ts";
import { ledgerIdentity, readJournals } from "../lib/ledger/journal.ts";
import { summarizeLedger } from "../lib/ledger/status.ts";
import { connectDatabase, mssqlDialect } from "../lib/sql/connect.ts";
import { openSqlite } from "../lib/db/sqlite.ts";
import { type PostgresServer, startPostgres } from "./_postgres.ts";
import { isDeno, root } from "./_run.ts";

const dir = mkdtempSync(join(tmpdir(), "rtexport-ledger-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(i: number, status: LedgerEntry["status"] = "done"): LedgerEntry {
  return { kind: "file", key: `P${i % 7}/plan/f${i}.dcm`, status, bytes: i, sha256: i.toString(16).padStart(64, "0"), patientId: `P${i % 7}` };
}

async function exercise(url: string): Promise<void> {
  const ledger = await Ledger.open(url, "test");
  try {
    // An item recorded before the batch, then queued again: the queued outcome updates it.
    await ledger.record({ ...file(3), status: "failed", error: "first attempt" });
    const n = Ledger.BATCH * 2 + 37; // more than two batches: some are written by queue() itself
    for (let i = 0; i < n; i++) await ledger.queue(file(i));
    // A later outcome for a queued item replaces the queued one.
    await ledger.queue({ ...file(5), status: "failed", error: "checksum mismatch" });
    // Reads see what is still queued.
    const five = await ledger.get("file", file(5).key);
    assert.equal(five?.status, "failed");
    assert.equal(five?.error, "checksum mismatch");
    const three = await ledger.get("file", file(3).key);
    assert.equal(three?.status, "done");
    assert.equal(three?.error, null);
    assert.equal(Number(three?.bytes), 3);
    const done = await ledger.keys("file", "done");
    assert.equal(done.size, n - 1);
    assert.ok(!done.has(file(5).key));
    // Queued after the last read: written by close().
    await ledger.queue({ kind: "push", key: "PACS|2.25.1", status: "done", dest: "PACS" });
    // An update that names no patient or plan group keeps the ones the item had.
    await ledger.record({ kind: "file", key: "grouped", status: "pending", patientId: "P1", planKey: "plan|A" });
    await ledger.record({ kind: "file", key: "grouped", status: "done", sha256: "ab".repeat(32), sourceBytes: 12, sourceMtimeMs: 1700000000123 });
  } finally {
    await ledger.close();
  }
  const again = await Ledger.open(url, "test");
  try {
    assert.equal((await again.get("push", "PACS|2.25.1"))?.status, "done", "close() writes what was queued");
    const rows = await again.db.selectFrom("rtx_ledger_items").select((eb) => eb.fn.countAll().as("n")).where("kind", "=", "file").executeTakeFirstOrThrow();
    assert.equal(Number(rows.n), Ledger.BATCH * 2 + 37 + 1);
    // The look-up set of finished items, and none when there are more than asked for.
    const doneNow = await again.keys("file", "done");
    assert.deepEqual(await again.keysIfAtMost("file", "done", doneNow.size), doneNow);
    assert.equal(await again.keysIfAtMost("file", "done", doneNow.size - 1), undefined);
    // recordMany with the same key twice in one call: the last wins, one row.
    await again.recordMany([file(9000, "failed"), { ...file(9000), status: "done" }]);
    assert.equal((await again.get("file", file(9000).key))?.status, "done");
    const grouped = await again.get("file", "grouped");
    assert.deepEqual([grouped?.patient_id, grouped?.plan_key, grouped?.status, grouped?.source_bytes, grouped?.source_mtime_ms], ["P1", "plan|A", "done", 12, 1700000000123]);
  } finally {
    await again.close();
  }
}

/** A row the database refuses (status is NOT NULL), queued among good ones: named, retried once, then journaled. */
async function exerciseFailure(url: string, journalDir: string): Promise<void> {
  const ledger = await Ledger.open(url, "test", { journalDirs: [journalDir] });
  const good = (i: number) => ({ ...file(i), key: `failure-test/${i}` });
  try {
    for (let i = 0; i < 10; i++) await ledger.queue(good(i));
    await ledger.queue({ ...good(10), status: null as unknown as "done" });
    await assert.rejects(ledger.flush(), (e: Error) => e instanceof LedgerWriteError && /1 ledger row\(s\).*file "failure-test\/10"/.test(e.message));
    // The good rows of the failed batch were written one by one; the chain is usable again.
    for (let i = 0; i < 10; i++) assert.equal((await ledger.get("file", good(i).key))?.status, "done");
    // The refused row was queued again once, fails again, and goes to the journal.
    await assert.rejects(ledger.flush(), (e: Error) => e instanceof LedgerWriteError && /kept in ".*unwritten-/.test(e.message));
    await ledger.flush();
    await ledger.record({ ...file(300), status: "failed", error: "later" });
    assert.equal((await ledger.get("file", file(300).key))?.error, "later");
    assert.equal(await ledger.get("file", good(10).key), undefined);
  } finally {
    await assert.rejects(ledger.close(), /1 outcome\(s\) could not be written to the ledger .*kept in/);
  }
  const journals = readJournals([journalDir], ledgerIdentity(url));
  assert.equal(journals.length, 1);
  assert.equal(journals[0].runId, ledger.runId);
  assert.deepEqual(journals[0].lines.map((l) => l.entry?.key), ["failure-test/10"]);
  rmSync(journals[0].path); // a row no database takes: not replayed here
}

/** The run (`node` or `deno`) command for a TypeScript script, under the runtime running the tests. */
function scriptCommand(script: string): string[] {
  return isDeno ? [process.execPath, "run", "-A", `--config=${join(root, "deno.json")}`, script] : [process.execPath, script];
}

/** Runs `tests/_ledger_worker.ts` processes; resolves with their claimed items. */
function runWorker(args: string[], opts: { onClaim?: (line: Record<string, unknown>, kill: () => void) => void } = {}) {
  const [cmd, ...rest] = scriptCommand(join(root, "tests", "_ledger_worker.ts"));
  const child = spawn(cmd, [...rest, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const claims: Record<string, unknown>[] = [];
  let stderr = "";
  let buffered = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    buffered += d;
    for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
      const line = JSON.parse(buffered.slice(0, i));
      buffered = buffered.slice(i + 1);
      claims.push(line);
      opts.onClaim?.(line, () => child.kill("SIGKILL"));
    }
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  );
  return { child, claims, done, stderr: () => stderr };
}

function sha(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

describe("ledger batches", () => {
  test("SQLite: queued outcomes are written in batches, read back before they are flushed, and by close()", async () => {
    await exercise(`sqlite:${join(dir, "ledger.sqlite")}`);
  });
  test("SQLite: a row the database refuses fails its batch; the others are written, the error names it, the journal keeps it", async () => {
    await exerciseFailure(`sqlite:${join(dir, "ledger-failure.sqlite")}`, join(dir, "journal-sqlite"));
  });
  test("status: a run that claims nothing counts the files and bytes it wrote; a claiming run counts them per item, once", async () => {
    const url = `sqlite:${join(dir, "ledger-counts.sqlite")}`;
    const plain = await Ledger.open(url, "copy-files");
    try {
      for (const i of [101, 102, 103]) await plain.queue(file(i));
      await plain.queue(file(104, "failed"));
      await plain.queue({ kind: "patient", key: "P1", status: "done" });
      await plain.queue({ kind: "push", key: "PACS|2.25.9", status: "done", bytes: 7 });
      await plain.queue(file(101)); // the same file again in one batch: counted once
      await plain.flush();
      await plain.queue(file(105));
      await plain.flush();
    } finally {
      await plain.close();
    }
    const claiming = await Ledger.open(url, "export-plan");
    try {
      const queue = await WorkQueue.join(claiming, { job: "counts", workers: 1 });
      await queue.seed([{ kind: "patient", key: "P2", patientId: "P2", payload: {} }]);
      const item = (await queue.claim())!;
      await claiming.queue(file(201));
      await claiming.flush();
      await queue.complete(item, { status: "done", files: 1, bytes: 201 });
      await queue.leave();
      await claiming.queue(file(202)); // after leave(): still this claiming run's, not counted twice
      await claiming.flush();
    } finally {
      await claiming.close();
    }
    const db = openSqlite<LedgerSchema>(url.slice(7), { readOnly: true });
    try {
      const s = await summarizeLedger(db);
      const run = (id: string) => s.runs.find((r) => r.id === id)!;
      assert.deepEqual([run(plain.runId).files, run(plain.runId).bytes], [5, 101 + 102 + 103 + 7 + 105]);
      assert.deepEqual([run(claiming.runId).files, run(claiming.runId).bytes, run(claiming.runId).items], [1, 201, 1]);
    } finally {
      await db.destroy();
    }
  });
  test("SQLite: the timer writes a stalled queue", async () => {
    const url = `sqlite:${join(dir, "ledger-timer.sqlite")}`;
    const ledger = await Ledger.open(url, "test");
    try {
      await ledger.queue(file(1));
      const peek = () => {
        const db = openSqlite<LedgerSchema>(url.slice(7), { readOnly: true });
        return db.selectFrom("rtx_ledger_items").select("status").where("key", "=", file(1).key).executeTakeFirst().finally(() => db.destroy());
      };
      assert.equal(await peek(), undefined, "not written yet");
      await new Promise((r) => setTimeout(r, Ledger.BATCH_MS + 300));
      assert.equal((await peek())?.status, "done", "written by the timer");
    } finally {
      await ledger.close();
    }
  });
});

describe("ledger on PostgreSQL", () => {
  let pg: PostgresServer | undefined;
  before(async () => {
    pg = await startPostgres();
  });
  after(() => pg?.stop());

  test("batches: the same", async () => {
    pg!.psql("create database ledger_batches");
    await exercise(pg!.url("ledger_batches"));
    await exerciseFailure(pg!.url("ledger_batches"), join(dir, "journal-pg"));
  });

  test("schema: eight workers opening an empty database at once create it once; a version-1 ledger upgrades in place", async () => {
    pg!.psql("create database race");
    const opened = await Promise.all(Array.from({ length: 8 }, () => Ledger.open(pg!.url("race"), "test")));
    assert.equal(await ledgerSchemaVersion(opened[0].db), LEDGER_SCHEMA_VERSION);
    assert.equal(pg!.psql("select string_agg(version::text, ',' order by version) from rtx_ledger_schema", "race").trim(), Array.from({ length: LEDGER_SCHEMA_VERSION }, (_, i) => i + 1).join(","));
    assert.equal(pg!.psql("select count(*) from rtx_ledger_runs", "race").trim(), "8");
    for (const l of opened) await l.close();
    // A ledger an earlier rtexport made (no schema table): its rows stay, the new columns appear.
    pg!.psql("create database old");
    const conn = await connectDatabase<LedgerSchema>(pg!.url("old"));
    // deno-lint-ignore no-explicit-any -- the schema of version 1
    for (const [, b] of ledgerTables(conn.db as Kysely<any>, "postgres")) await b.execute();
    pg!.psql("insert into rtx_ledger_items values ('file', 'A/x.dcm', 'done', 'A', null, '/v/x', 'A/x.dcm', 5, 'ab', null, 'r0', '2025-01-01')", "old");
    pg!.psql("insert into rtx_ledger_folders values ('src|A', 'Doe_John_A')", "old");
    await conn.close();
    const upgraded = await Ledger.open(pg!.url("old"), "test");
    assert.equal((await upgraded.get("file", "A/x.dcm"))?.sha256, "ab");
    assert.equal(await upgraded.assignFolder("src|B", ["doe_john_a", "Doe_John_A~2"]), "Doe_John_A~2", "the old folder is taken, whatever its case");
    await upgraded.close();
  });

  test("folders: two workers wanting one name for two patients at once get two folders; one patient keeps one", async () => {
    pg!.psql("create database folders");
    const [a, b] = await Promise.all([Ledger.open(pg!.url("folders"), "a"), Ledger.open(pg!.url("folders"), "b")]);
    for (let i = 0; i < 10; i++) {
      const wanted = `Doe_Jane_${i}`;
      const [x, y, z] = await Promise.all([
        a.assignFolder(`k1|${i}`, [wanted, `${wanted}~1`, `${wanted}~2`]),
        b.assignFolder(`k2|${i}`, [wanted, `${wanted}~1`, `${wanted}~2`]),
        b.assignFolder(`k1|${i}`, [wanted, `${wanted}~1`, `${wanted}~2`]),
      ]);
      assert.notEqual(x, y);
      assert.equal(x, z);
    }
    await a.close();
    await b.close();
  });

  test("claims: three workers split the items, each claimed once; a dead worker's item is taken over when its lease runs out", async () => {
    pg!.psql("create database claims");
    const url = pg!.url("claims");
    const ledgers = await Promise.all([0, 1, 2].map(() => Ledger.open(url, "test", { leaseMs: 1500 })));
    const queues = await Promise.all(ledgers.map((l) => WorkQueue.join(l, { job: "export-plan" })));
    assert.equal(new Set(queues.map((q) => q.pass)).size, 1, "workers started together share one pass");
    assert.equal(queues.filter((q) => q.startedPass).length, 1);
    const items = Array.from({ length: 40 }, (_, i) => ({
      key: `patient|P${i}`, patientId: `P${i}`, payload: [{ type: "patient", patientId: `P${i}` }],
      listed: [{ kind: "plan" as const, key: `plan|P${i}-1`, patientId: `P${i}` }],
    }));
    await Promise.all(queues.map((q) => q.seed(items)));
    const got: string[][] = [[], [], []];
    let held: Awaited<ReturnType<WorkQueue["claim"]>>;
    await Promise.all(queues.map(async (q, i) => {
      for (;;) {
        const it = await q.claim();
        if (!it) return;
        got[i].push(it.key);
        if (i === 2 && got[i].length === 2) {
          held = it; // worker 2 "dies" holding this item: no completion, no more heartbeats
          (ledgers[2] as unknown as { heartbeatTimer: ReturnType<typeof setInterval> }).heartbeatTimer &&
            clearInterval((ledgers[2] as unknown as { heartbeatTimer: ReturnType<typeof setInterval> }).heartbeatTimer);
          ledgers[2].renewClaims = false;
          return;
        }
        await q.complete(it, { status: "done", files: 2, bytes: 10 });
        await new Promise((r) => setTimeout(r, 2));
      }
    }));
    const all = got.flat();
    assert.equal(all.length, 40);
    assert.equal(new Set(all).size, 40, "no item claimed twice");
    assert.ok(got[0].length > 0 && got[1].length > 0);
    // The held item is neither claimable nor done while the lease lasts.
    assert.deepEqual(await queues[0].state(), { claimable: 0, othersActive: 1, mineActive: 0 });
    assert.equal(await queues[0].claim(), undefined);
    await new Promise((r) => setTimeout(r, 1700));
    assert.deepEqual(await queues[0].state(), { claimable: 1, othersActive: 0, mineActive: 0 });
    const taken = await queues[0].claim();
    assert.equal(taken?.key, held!.key);
    assert.equal(taken?.reclaimedFrom, ledgers[2].runId);
    assert.equal(taken?.attempts, 2);
    // The dead worker cannot finish what it lost.
    assert.equal(await queues[2].complete(held!, { status: "done" }), false);
    assert.equal(await queues[0].complete(taken!, { status: "done" }), true);
    const s = await summarizeLedger(ledgers[0].db);
    assert.deepEqual(s.jobs?.[0].items, { total: 40, pending: 0, running: 0, done: 40, failed: 0 });
    assert.equal(s.jobs?.[0].reclaimed, 1);
    const dead = s.runs.find((r) => r.id === ledgers[2].runId)!;
    assert.equal(dead.state, "dead");
    assert.equal(dead.reclaimed, 1);
    assert.equal(dead.items, 1);
    assert.equal(s.runs.find((r) => r.id === ledgers[0].runId)?.state, "running");
    assert.deepEqual([s.kinds.patient.done, s.kinds.patient.pending, s.kinds.plan.pending], [40, 0, 40]);
    for (const l of ledgers.slice(0, 2)) {
      await l.finish("ok");
      await l.close();
    }
    // A worker that starts when no worker of the job is alive begins a new pass: every item again.
    const late = await Ledger.open(url, "test", { leaseMs: 1500 });
    const q = await WorkQueue.join(late, { job: "export-plan" });
    assert.ok(q.startedPass);
    assert.notEqual(q.pass, queues[0].pass);
    await q.seed(items.slice(0, 5));
    assert.deepEqual(await q.state(), { claimable: 5, othersActive: 0, mineActive: 0 });
    await late.close();
    await ledgers[2].close().catch(() => {});
  });

  test("journal: outcomes the database refuses are kept, counted by status, and recorded by the next run", async () => {
    pg!.psql("create role rtx_writer login");
    pg!.psql("create database journal owner rtx_writer");
    const url = pg!.url("journal").replace("postgres@", "rtx_writer@");
    const journalDir = join(dir, "journal-transient");
    const warnings: string[] = [];
    const ledger = await Ledger.open(url, "test", { journalDirs: [journalDir], onWarning: (t) => warnings.push(t) });
    await ledger.record({ ...file(1), status: "pending" });
    // The server refuses writes for a while (as a full disk or a lost connection would).
    pg!.psql("revoke insert, update on rtx_ledger_items from rtx_writer", "journal");
    for (let i = 1; i <= 6; i++) await ledger.queue(file(i, i % 2 ? "failed" : "done"));
    await ledger.flush().catch(() => {});
    await ledger.record({ ...file(7), status: "failed", error: "disk full" });
    await assert.rejects(ledger.close(), /7 outcome\(s\) could not be written/);
    assert.ok(warnings.some((w) => /permission denied/.test(w)), warnings.join("\n"));
    const journals = readJournals([journalDir], ledgerIdentity(url));
    assert.equal(journals.length, 1);
    // status (read-only) counts them as if written, and says they are waiting.
    const ro = await connectDatabase<LedgerSchema>(url, { readOnly: true });
    const s = await summarizeLedger(ro.db, { journals });
    await ro.close();
    assert.deepEqual([s.kinds.file.failed, s.kinds.file.done, s.kinds.file.pending], [4, 3, 0]);
    assert.deepEqual(s.unwritten?.map((u) => [u.runId, u.entries, u.failed]), [[ledger.runId, 7, 4]]);
    assert.match(s.lastErrors[0].error, /disk full \(not yet in the ledger\)/);
    // The next run records them and removes the journal.
    pg!.psql("grant insert, update on rtx_ledger_items to rtx_writer", "journal");
    const told: string[] = [];
    const next = await Ledger.open(url, "test", { journalDirs: [journalDir], onWarning: (t) => told.push(t) });
    assert.deepEqual(next.replayed.map((r) => [r.runId, r.entries]), [[ledger.runId, 7]]);
    assert.match(told.join("\n"), /Recorded 7 outcome\(s\) that run .* could not write/);
    assert.equal((await next.get("file", file(7).key))?.error, "disk full");
    assert.equal((await next.get("file", file(2).key))?.status, "done");
    await next.close();
    assert.equal(readJournals([journalDir], ledgerIdentity(url)).length, 0);
    // The refused run's end was journaled too, and recorded.
    assert.equal(pg!.psql(`select outcome is null from rtx_ledger_runs where id = '${ledger.runId}'`, "journal").trim(), "t");
  });
});

describe("ledger on SQLite shared by processes", () => {
  test("three worker processes split one job; one killed holding an item, its item is taken over at once (same machine, process gone)", async () => {
    const url = `sqlite:${join(dir, "shared.sqlite")}`;
    const n = 40;
    // The first worker claims three items, and hangs holding the third (alive: the others join its pass).
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    const victim = runWorker([url, "job", String(n), "60000", "3"], { onClaim: () => victim.claims.length === 3 && holding() });
    await Promise.race([held, victim.done]);
    assert.equal(victim.claims.length, 3, `the first worker ended before holding its third item: ${victim.stderr()}`);
    const workers: ReturnType<typeof runWorker>[] = [];
    try {
      let started!: () => void;
      const going = new Promise<void>((r) => (started = r));
      for (let i = 0; i < 2; i++) workers.push(runWorker([url, "job", String(n), "60000"], { onClaim: () => workers.every((w) => w.claims.length >= 3) && started() }));
      // A worker that ends without claiming (an error) fails the test below with its stderr, not a hang.
      await Promise.race([going, ...workers.map((w) => w.done)]);
    } finally {
      victim.child.kill("SIGKILL");
    }
    await victim.done;
    const results = await Promise.all(workers.map((w) => w.done));
    for (const [i, r] of results.entries()) assert.equal(r.code, 0, workers[i].stderr());
    const claims = [...victim.claims, ...workers.flatMap((w) => w.claims)];
    const byKey = new Map<string, Record<string, unknown>[]>();
    for (const c of claims) byKey.set(String(c.key), [...(byKey.get(String(c.key)) ?? []), c]);
    assert.equal(byKey.size, n, "every item claimed");
    const twice = [...byKey.entries()].filter(([, cs]) => cs.length > 1);
    // Only the item the killed worker held was claimed again, by a live worker, as a takeover
    // (the 60 s lease did not have to run out: the process was gone from this machine).
    assert.equal(twice.length, 1);
    const [, [first, second]] = twice[0];
    assert.equal(first.pid, victim.child.pid);
    assert.notEqual(second.reclaimedFrom, null);
    assert.equal(second.attempts, 2);
    const db = openSqlite<LedgerSchema>(url.slice(7), { readOnly: true });
    const s = await summarizeLedger(db);
    await db.destroy();
    assert.deepEqual(s.jobs?.[0].items, { total: n, pending: 0, running: 0, done: n, failed: 0 });
    assert.deepEqual(s.runs.map((r) => r.state).sort(), ["dead", "finished", "finished"]);
    assert.equal(s.runs.find((r) => r.state === "dead")?.reclaimed, 1);
  });
});

describe("read-only opening", () => {
  test("an SQLite database read by a source or status keeps its bytes and gets nothing beside it", async () => {
    for (const wal of [true, false]) {
      const path = join(dir, `catalog-${wal}.db`);
      const db = openSqlite<{ t: { a: number } }>(path, { wal });
      await db.schema.createTable("t").addColumn("a", "integer").execute();
      await db.insertInto("t").values({ a: 1 }).execute();
      await db.destroy();
      const before = sha(path);
      const names = readdirSync(dir).filter((n) => n.startsWith(`catalog-${wal}`)).sort();
      const conn = await connectDatabase<{ t: { a: number } }>(`sqlite:${path}`, { readOnly: true });
      assert.deepEqual((await conn.db.selectFrom("t").selectAll().execute()).map((r) => ({ ...r })), [{ a: 1 }]);
      await assert.rejects(conn.db.insertInto("t").values({ a: 2 }).execute(), /readonly/);
      await conn.close();
      assert.equal(sha(path), before, `the ${wal ? "WAL" : "rollback-journal"} file's bytes`);
      assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith(`catalog-${wal}`)).sort(), names);
    }
    await assert.rejects(connectDatabase(`sqlite:${join(dir, "absent.db")}`, { readOnly: true }), /no such file/);
    assert.ok(!existsSync(join(dir, "absent.db")));
  });
});

describe("SQL Server statements (compiled by kysely)", () => {
  test("the claim query locks, skips and takes one row; the schema of version 2 is T-SQL", async () => {
    const db = new Kysely<LedgerSchema>({ dialect: await mssqlDialect(new URL("mssql://u:p@localhost/idms")) });
    const claim = claimQuery(db, { dialect: "mssql", runId: "RUN", leaseMs: 60_000 }, "export-plan", "PASS").compile();
    assert.equal(
      claim.sql,
      'with "next" as (select top(1) "w"."id" from "rtx_ledger_work" as "w" with (updlock, readpast, rowlock) where ("w"."job" = @1 and "w"."pass" = @2 and "w"."status" = @3) order by "w"."seq") ' +
        'update "rtx_ledger_work" set "status" = @4, "owner" = @5, "previous_owner" = case when "rtx_ledger_work"."status" = \'claimed\' then "rtx_ledger_work"."owner" else "rtx_ledger_work"."previous_owner" end, "lease_until" = (datediff_big(millisecond, \'19700101\', sysutcdatetime()) + 60000), "attempts" = "rtx_ledger_work"."attempts" + 1, "updated_at" = @6 ' +
        'output "inserted"."id", "inserted"."key", "inserted"."kind", "inserted"."patient_id", "inserted"."payload", "inserted"."attempts", "inserted"."previous_owner" from "next" where "rtx_ledger_work"."id" = "next"."id"',
    );
    assert.deepEqual(claim.parameters.slice(0, 5), ["export-plan", "PASS", "pending", "claimed", "RUN"]);
    // Items whose worker's lease ran out: the same statement, another condition.
    const expired = claimQuery(db, { dialect: "mssql", runId: "RUN", leaseMs: 60_000 }, "export-plan", "PASS", "expired").compile();
    assert.match(expired.sql, /where \("w"\."job" = @1 and "w"\."pass" = @2 and "w"\."status" = @3 and "w"\."lease_until" < datediff_big\(millisecond, '19700101', sysutcdatetime\(\)\)\) order by "w"\."seq"\)/);
    // deno-lint-ignore no-explicit-any -- the schema statements are typed for any version
    const v2 = ledgerV2Statements(db as Kysely<any>, "mssql").map((s) => s.compile().sql);
    assert.ok(v2.every((s) => !/add column|if not exists/i.test(s)), "T-SQL adds columns with ADD and has no IF NOT EXISTS");
    assert.ok(v2.includes('alter table "rtx_ledger_runs" add "lease_until" bigint'));
    assert.ok(v2.some((s) => /create table "rtx_ledger_work" \("id" varchar\(64\) primary key, "job" varchar\(255\) not null/.test(s)));
    // Version 3, the audit trail: long texts as nvarchar(max) on SQL Server.
    // deno-lint-ignore no-explicit-any -- the schema statements are typed for any version
    const v3 = ledgerV3Statements(db as Kysely<any>, "mssql").map((s) => s.compile().sql);
    assert.match(v3[0], /^create table "rtx_ledger_audit" \("id" varchar\(64\) primary key, .*"studies" nvarchar\(max\) not null/);
    await db.destroy();
  });
});
