// The ledger's batched writes (queue / flush / recordMany) on SQLite and on a real PostgreSQL.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger, type LedgerEntry } from "../lib/ledger/ledger.ts";
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
    // recordMany with the same key twice in one call: the last wins, one row.
    await again.recordMany([file(9000, "failed"), { ...file(9000), status: "done" }]);
    assert.equal((await again.get("file", file(9000).key))?.status, "done");
  } finally {
    await again.close();
  }
}

describe("ledger batches", () => {
  test("SQLite: queued outcomes are written in batches, read back before they are flushed, and by close()", async () => {
    await exercise(`sqlite:${join(dir, "ledger.sqlite")}`);
  });

  let pg: PostgresServer | undefined;
  before(async () => {
    pg = await startPostgres();
    pg.psql("create database ledger_batches");
  });
  after(() => pg?.stop());
  test("PostgreSQL: the same", async () => {
    await exercise(pg!.url("ledger_batches"));
  });
});
