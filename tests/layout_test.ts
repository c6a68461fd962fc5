// Pure logic of the export layout: name sanitizing, folder assignment, SQL for every dialect.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Kysely } from "kysely";
import { FolderAssigner, patientFolderName, sanitizeName } from "../lib/layout/sanitize.ts";
import { parseItems, treePath } from "../lib/export/layout.ts";
import { filesQuery, patientsQuery, plansQuery, type CatalogSchema } from "../lib/catalog/catalog.ts";
import { ledgerTables, type LedgerSchema } from "../lib/ledger/ledger.ts";
import { mssqlDialect, parseDatabaseUrl } from "../lib/sql/connect.ts";

describe("sanitizeName", () => {
  const cases: [string, string][] = [
    ["Smith", "Smith"],
    ["O'Brien/..:Test", "O'Brien_.._Test"],
    ["..", "_"],
    [".", "_"],
    ["", "_"],
    ["a\\b", "a_b"],
    ["CON", "_CON"],
    ["nul.txt", "_nul.txt"],
    ["com1", "_com1"],
    ["trailing. ", "trailing"],
    ['x<y>z:"|?*', "x_y_z_____"],
    ["tab\there", "tab_here"],
    ["Müller", "Müller"],
  ];
  for (const [input, expected] of cases) {
    test(`${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => assert.equal(sanitizeName(input), expected));
  }
  test("bounds length in UTF-8 bytes and keeps long names apart", () => {
    const a = sanitizeName("あ".repeat(100) + "A");
    const b = sanitizeName("あ".repeat(100) + "B");
    assert.ok(new TextEncoder().encode(a).length <= 64);
    assert.notEqual(a, b);
  });
  test("ascii option folds accents", () => assert.equal(sanitizeName("Ødegård Åse", { ascii: true }), "_degard Ase"));
});

describe("folders", () => {
  test("patient folder is Last_First_MRN", () => {
    assert.equal(patientFolderName({ family: "Müller", given: "Jörg", patientId: "123/4" }), "Müller_Jörg_123_4");
  });
  test("two patients whose sanitized names collide never share a folder; known assignments are kept", () => {
    const a = new FolderAssigner();
    const f1 = a.assign("src|A/1", patientFolderName({ family: "X", given: "Y", patientId: "A/1" }));
    const f2 = a.assign("src|A:1", patientFolderName({ family: "X", given: "Y", patientId: "A:1" }));
    const f3 = a.assign("src|a_1", "x_y_A_1");
    assert.equal(f1, "X_Y_A_1");
    assert.notEqual(f2.toLowerCase(), f1.toLowerCase());
    assert.notEqual(f3.toLowerCase(), f1.toLowerCase());
    assert.equal(a.assign("src|A:1", "X_Y_A_1"), f2, "stable for the same key");
    const resumed = new FolderAssigner([["src|A:1", f2]]);
    assert.equal(resumed.assign("src|A/1", "X_Y_A_1"), "X_Y_A_1");
    assert.equal(resumed.assign("src|A:1", "X_Y_A_1"), f2);
  });
  test("tree paths per category", () => {
    assert.equal(treePath("P", "Plan", "image", "CT_1/a.dcm"), "P/DICOM/CT_1/a.dcm");
    assert.equal(treePath("P", "Plan", "rt-object", "RTPLAN_1.dcm"), "P/Plan/DICOM/RTPLAN_1.dcm");
    assert.equal(treePath("P", "Plan", "live-image", "x.png"), "P/Plan/Live_Images/x.png");
    assert.equal(treePath("P", undefined, "document", "c.pdf"), "P/Documents/c.pdf");
    assert.equal(treePath("P", "Plan", "log", "../../etc/passwd"), "P/Plan/Logs/etc/passwd");
    assert.equal(treePath("P", "Plan", "nonsense", "x"), undefined);
  });
  test("items", () => {
    assert.deepEqual(parseItems(["rt-objects,documents"]), ["rt-objects", "documents"]);
    assert.throws(() => parseItems(["pixels"]), /Unknown item "pixels"/);
  });
});

describe("SQL dialects", () => {
  test("database URLs", () => {
    assert.equal(parseDatabaseUrl("sqlite:a.db").dialect, "sqlite");
    assert.equal(parseDatabaseUrl("postgres://u:secret@h/db").display, "postgres://u:***@h/db");
    assert.equal(parseDatabaseUrl("mssql://u:p@h:1433/idms").dialect, "mssql");
    assert.throws(() => parseDatabaseUrl("mssql://u:p@h"), /no database name/);
    assert.throws(() => parseDatabaseUrl("sqlite:"), /needs a file path/);
    assert.throws(() => parseDatabaseUrl("mysql://h/db"), /unsupported scheme/);
  });

  // No SQL Server can run here: these check the SQL kysely compiles for its dialect.
  test("catalog queries and ledger tables compile to T-SQL for SQL Server", async () => {
    const db = new Kysely<CatalogSchema & LedgerSchema>({ dialect: await mssqlDialect(new URL("mssql://u:p@localhost/idms")) });
    const p = patientsQuery(db, { patientIds: ["A", "B"] }).compile();
    assert.equal(p.sql, 'select * from "rtx_patients" where "patient_id" in (@1, @2) order by "patient_id"'.replace(/"/g, '"'));
    const f = filesQuery(db, "A", null).compile();
    assert.match(f.sql, /where "patient_id" = @1 and "plan_id" is null order by "vault_path"/);
    assert.match(plansQuery(db, "A").compile().sql, /from "rtx_plans" where "patient_id" = @1/);
    const tables = ledgerTables(db, "mssql").map(([, b]) => b.compile().sql);
    assert.match(tables[1], /"key" nvarchar\(400\) not null/);
    assert.match(tables[1], /"error" nvarchar\(max\)/);
    assert.ok(tables.every((t) => !/if not exists/i.test(t)), "SQL Server has no CREATE TABLE IF NOT EXISTS");
    const up = db.updateTable("rtx_ledger_items").set({ status: "done" }).where("kind", "=", "file").where("key", "=", "x").compile();
    assert.equal(up.sql, 'update "rtx_ledger_items" set "status" = @1 where "kind" = @2 and "key" = @3');
    await db.destroy();
  });
});
