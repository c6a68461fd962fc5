// Pure logic of the export layout: name sanitizing, folder assignment, SQL for every dialect.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Kysely } from "kysely";
import fc from "fast-check";
import { join } from "node:path";
import { FolderAssigner, patientFolderName, sanitizeName, storagePath, uniqueName } from "../lib/layout/sanitize.ts";
import { parseItems, treePlace } from "../lib/layout/tree.ts";
import { seriesPath } from "../lib/layout/series.ts";
import { RT_SOP_CLASSES } from "../lib/dicom/uids.ts";
import { filesQuery, patientsQuery, plansQuery, type CatalogSchema } from "../lib/catalog/catalog.ts";
import type { LedgerSchema } from "../lib/ledger/ledger.ts";
import { ledgerTables } from "../lib/ledger/migrations.ts";
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

describe("uniqueName (received and anonymized objects)", () => {
  test("keeps a safe value as it is and gives a missing or blank one the fallback", () => {
    assert.equal(uniqueName("1.2.840.113619.2.55.3", "X"), "1.2.840.113619.2.55.3");
    assert.equal(uniqueName(undefined, "NO_PATIENT_ID"), "NO_PATIENT_ID");
    assert.equal(uniqueName("  ", "NO_PATIENT_ID"), "NO_PATIENT_ID");
  });
  test("a value the rules changed carries a hash of it, so 1.2.3/4 and 1.2.3_4 stay apart", () => {
    const a = uniqueName("1.2.3/4", "X"), b = uniqueName("1.2.3_4", "X");
    assert.equal(b, "1.2.3_4");
    assert.match(a, /^1\.2\.3_4~[0-9a-f]{16}$/);
    assert.equal(uniqueName("CON", "X").startsWith("_CON~"), true);
    assert.equal(uniqueName("..", "X").includes("/"), false);
  });
  test("is one-to-one and every name is a safe component (fast-check)", () => {
    fc.assert(fc.property(fc.string({ maxLength: 90 }), fc.string({ maxLength: 90 }), (x, y) => {
      const a = uniqueName(x, "F"), b = uniqueName(y, "F");
      if (x.trim() !== "" && y.trim() !== "" && x !== y) assert.notEqual(a, b);
      assert.equal(sanitizeName(a, { maxBytes: 64 }), a, `${JSON.stringify(x)} → ${JSON.stringify(a)} is not safe`);
    }), { numRuns: 5000 });
  });
  test("storagePath puts every ID through it", () => {
    assert.equal(storagePath("/r", { patientId: "P1", studyUid: "1.2", seriesUid: "1.3", sopInstanceUid: "1.4" }), join("/r", "P1", "1.2", "1.3", "1.4.dcm"));
    assert.match(storagePath("/r", { patientId: "../x", sopInstanceUid: "1.4" }), /_x~[0-9a-f]{16}.NO_STUDY_UID.NO_SERIES_UID.1\.4\.dcm$/);
  });
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
    const path = (plan: string | undefined, category: string, name: string) => treePlace("P", plan, { category, name })?.path;
    assert.equal(path("Plan", "live-image", "x.png"), "P/Plan/Live_Images/x.png");
    assert.equal(path(undefined, "document", "c.pdf"), "P/Documents/c.pdf");
    assert.equal(path("Plan", "photo", "p.jpg"), "P/Photo/p.jpg");
    assert.equal(path("Plan", "log", "../../etc/passwd"), "P/Plan/Logs/etc/passwd");
    assert.equal(path("Plan", "nonsense", "x"), undefined);
    assert.equal(treePlace("P", "Plan", { category: "plan-file", name: "plan.xml" })?.item, "plan-files");
  });
  test("DICOM objects are placed by what they are and whether a plan is exported, whatever their category", () => {
    const ct = { name: "x.dcm", sopClassUid: "1.2.840.10008.5.1.4.1.1.2", modality: "CT", seriesUid: "1.9", sopInstanceUid: "1.9.1" };
    const plan = { name: "x.dcm", sopClassUid: RT_SOP_CLASSES.RTPlan, modality: "RTPLAN", seriesUid: "2.9", sopInstanceUid: "2.9.1" };
    // A structure set whose Modality says RTDOSE (a real TPS bug) is named for what it is.
    const ss = { name: "x.dcm", sopClassUid: RT_SOP_CLASSES.RTStructureSet, modality: "RTDOSE", seriesUid: "3.9", sopInstanceUid: "3.9.1" };
    const cases: [string | undefined, object, string, string][] = [
      ["Plan", ct, "P/DICOM/CT_1.9/1.9.1.dcm", "patient-dicom"],
      [undefined, ct, "P/DICOM/CT_1.9/1.9.1.dcm", "patient-dicom"],
      ["Plan", plan, "P/Plan/DICOM/RTPLAN_2.9.1.dcm", "rt-objects"],
      [undefined, plan, "P/DICOM/RTPLAN_2.9/2.9.1.dcm", "patient-dicom"],
      ["Plan", ss, "P/Plan/DICOM/RTSTRUCT_3.9.1.dcm", "rt-objects"],
      ["Plan", { name: "a.dcm", modality: "REG" }, "P/Plan/DICOM/a.dcm", "rt-objects"],
    ];
    for (const [planFolder, obj, path, item] of cases) {
      for (const category of ["dicom", "image", "rt-object"]) {
        assert.deepEqual(treePlace("P", planFolder, { category, ...obj } as never), { path, item }, `${category} ${JSON.stringify(obj)} in ${planFolder}`);
      }
    }
  });
  test("series layout: one sanitizer, a named folder for what is missing", () => {
    assert.equal(seriesPath({ patientId: "A/1", studyUid: "1.2", seriesUid: "1.2.3", sopInstanceUid: "1.2.3.4" }), "A_1/1.2/1.2.3/1.2.3.4.dcm");
    assert.equal(seriesPath({ patientId: " ", sopInstanceUid: "9" }), "NO_PATIENT_ID/NO_STUDY_UID/NO_SERIES_UID/9.dcm");
    assert.equal(seriesPath({ patientId: "CON", studyUid: "..", seriesUid: "s" }, "x.dcm"), "_CON/_/s/x.dcm");
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
