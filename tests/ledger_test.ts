// The ledger's batched writes (queue / flush / recordMany) on SQLite and on a real PostgreSQL.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger, type LedgerEntry, LedgerWriteError } from "../lib/ledger/ledger.ts";
import { type PostgresServer, startPostgres } from "./_postgres.ts";

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
  } finally {
    await ledger.close();
  }
  const again = await Ledger.open(url, "test");
  try {
    assert.equal((await again.get("push", "PACS|2.25.1"))?.status, "done", "close() writes what was queued");
    const rows = await again.db.selectFrom("rtx_ledger_items").select((eb) => eb.fn.countAll().as("n")).where("kind", "=", "file").executeTakeFirstOrThrow();
    assert.equal(Number(rows.n), Ledger.BATCH * 2 + 37);
    // The look-up set of finished items, and none when there are more than asked for.
    const doneNow = await again.keys("file", "done");
    assert.deepEqual(await again.keysIfAtMost("file", "done", doneNow.size), doneNow);
    assert.equal(await again.keysIfAtMost("file", "done", doneNow.size - 1), undefined);
    // recordMany with the same key twice in one call: the last wins, one row.
    await again.recordMany([file(9000, "failed"), { ...file(9000), status: "done" }]);
    assert.equal((await again.get("file", file(9000).key))?.status, "done");
  } finally {
    await again.close();
  }
}

/** A row the database refuses (status is NOT NULL), queued among good ones. */
async function exerciseFailure(url: string): Promise<void> {
  const ledger = await Ledger.open(url, "test");
  try {
    const good = (i: number) => ({ ...file(i), key: `failure-test/${i}` });
    for (let i = 0; i < 10; i++) await ledger.queue(good(i));
    await ledger.queue({ ...good(10), status: null as unknown as "done" });
    await assert.rejects(ledger.flush(), (e: Error) => e instanceof LedgerWriteError && /1 ledger row\(s\).*file "failure-test\/10"/.test(e.message));
    // The good rows of the failed batch were written one by one; the chain is usable again.
    for (let i = 0; i < 10; i++) assert.equal((await ledger.get("file", good(i).key))?.status, "done");
    // The refused row was queued again once, fails again, and is given up.
    await assert.rejects(ledger.flush(), LedgerWriteError);
    await ledger.flush();
    await ledger.record({ ...file(300), status: "failed", error: "later" });
    assert.equal((await ledger.get("file", file(300).key))?.error, "later");
    assert.equal(await ledger.get("file", good(10).key), undefined);
  } finally {
    await ledger.close();
  }
}

describe("ledger batches", () => {
  test("SQLite: queued outcomes are written in batches, read back before they are flushed, and by close()", async () => {
    await exercise(`sqlite:${join(dir, "ledger.sqlite")}`);
  });
  test("SQLite: a row the database refuses fails its batch; the others are written, the error names it", async () => {
    await exerciseFailure(`sqlite:${join(dir, "ledger-failure.sqlite")}`);
  });
  test("SQLite: the timer writes a stalled queue", async () => {
    const url = `sqlite:${join(dir, "ledger-timer.sqlite")}`;
    const ledger = await Ledger.open(url, "test");
    const other = await Ledger.open(url, "other");
    try {
      await ledger.queue(file(1));
      assert.equal(await other.get("file", file(1).key), undefined, "not written yet");
      await new Promise((r) => setTimeout(r, Ledger.BATCH_MS + 300));
      assert.equal((await other.get("file", file(1).key))?.status, "done", "written by the timer");
    } finally {
      await ledger.close();
      await other.close();
    }
  });

  let pg: PostgresServer | undefined;
  before(async () => {
    pg = await startPostgres();
    pg.psql("create database ledger_batches");
  });
  after(() => pg?.stop());
  test("PostgreSQL: the same", async () => {
    await exercise(pg!.url("ledger_batches"));
    await exerciseFailure(pg!.url("ledger_batches"));
  });
});
