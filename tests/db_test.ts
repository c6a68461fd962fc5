import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqlite } from "../lib/db/sqlite.ts";

interface DB {
  item: { id: number | null; name: string; flag: number | null; size: number | null };
}

const dir = mkdtempSync(join(tmpdir(), "rtexport-db-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("openSqlite: create, insert with booleans, select, update, delete through kysely", async () => {
  const db = openSqlite<DB>(join(dir, "a.sqlite"));
  try {
    await db.schema.createTable("item")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull().unique())
      .addColumn("flag", "integer")
      .addColumn("size", "integer")
      .execute();
    const r = await db.insertInto("item").values({ id: null, name: "a", flag: true as unknown as number, size: 10 }).executeTakeFirst();
    assert.equal(r.insertId, 1n);
    await db.insertInto("item").values([{ id: null, name: "b", flag: 0, size: 20 }, { id: null, name: "c", flag: null, size: 30 }]).execute();
    const rows = await db.selectFrom("item").select(["name", "flag"]).where("size", ">", 15).orderBy("name").execute();
    assert.deepEqual(rows.map((x) => ({ ...x })), [{ name: "b", flag: 0 }, { name: "c", flag: null }]);
    const u = await db.updateTable("item").set({ size: 99 }).where("name", "=", "a").executeTakeFirst();
    assert.equal(u.numUpdatedRows, 1n);
    const d = await db.deleteFrom("item").where("name", "in", ["b", "c"]).executeTakeFirst();
    assert.equal(d.numDeletedRows, 2n);
    const left = await db.selectFrom("item").selectAll().execute();
    assert.deepEqual(left.map((x) => ({ ...x })), [{ id: 1, name: "a", flag: 1, size: 99 }]);
  } finally {
    await db.destroy();
  }
});

test("openSqlite: a failed transaction rolls back, data persists across reopen", async () => {
  const path = join(dir, "b.sqlite");
  const db = openSqlite<DB>(path);
  await db.schema.createTable("item").addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique()).addColumn("flag", "integer").addColumn("size", "integer").execute();
  await db.insertInto("item").values({ id: null, name: "kept", flag: 1, size: 1 }).execute();
  await assert.rejects(db.transaction().execute(async (tx) => {
    await tx.insertInto("item").values({ id: null, name: "lost", flag: 1, size: 1 }).execute();
    await tx.insertInto("item").values({ id: null, name: "kept", flag: 1, size: 1 }).execute(); // unique violation
  }));
  await db.destroy();
  const again = openSqlite<DB>(path);
  try {
    const names = (await again.selectFrom("item").select("name").execute()).map((r) => r.name);
    assert.deepEqual(names, ["kept"]);
  } finally {
    await again.destroy();
  }
});

test("openSqlite: an unopenable path is one clear error naming it", () => {
  assert.throws(() => openSqlite(join(dir, "no", "such", "dir", "x.sqlite")), /Cannot open SQLite database ".*x\.sqlite"/);
});
