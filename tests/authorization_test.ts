// What the UI's export of a selection stands on, at the command line: `list-patients --plan`
// (a selection of plans as one command) and `export-plan --authorized-by` (seed 001's approval
// gate, recorded in the ledger), on the synthetic clinic's demo catalog.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { records, sh } from "./_run.ts";
import { ledgerRows } from "./_tree.ts";

let dir: string;
let db: string;
let vault: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-authorization-"));
  const manifest = await generateClinic({ out: join(dir, "clinic"), patients: 5, slices: 4, seed: 7 });
  db = join(dir, "catalog.db");
  vault = join(dir, "vault");
  await buildDemoCatalog({ clinic: join(dir, "clinic"), manifest, catalogPath: db, vault });
});

after(() => rmSync(dir, { recursive: true, force: true }));

// Unapproved plans are listed only with --include-unapproved (issue 14's one default); these
// tests are about selecting plans by name, whatever their approval.
function list(args: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return sh(`"\${RT[@]}" list-patients --from catalog --db 'sqlite:${db}' --vault '${vault}' --include-unapproved --json ${args}`);
}

describe("list-patients --plan", () => {
  test("keeps the named plans (by plan ID, label or UID), each after its patient, whose plan count becomes the number kept", async () => {
    const all = records((await list("")).stdout);
    const uid = all.find((r) => r.type === "plan" && r.planId === "RTX0005-P3")!.planUid as string;
    const r = await list(`--plan RTX0001-P2 --plan Tomo_HN --plan '${uid}'`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(records(r.stdout).map((x) => [x.type, x.patientId, x.type === "patient" ? x.plans : x.planId]), [
      ["patient", "RTX0001", 1],
      ["plan", "RTX0001", "RTX0001-P2"],
      ["patient", "RTX0002", 1],
      ["plan", "RTX0002", "RTX0002-P3"],
      ["patient", "RTX0005", 1],
      ["plan", "RTX0005", "RTX0005-P3"],
    ]);
  });

  test("with --patient: only that patient's plans of the names; a name no listed plan has is reported, the rest listed", async () => {
    const r = await list("--patient RTX0002 --plan RTX0001-P1 --plan RTX0002-P1 --plan NO-SUCH-PLAN");
    const recs = records(r.stdout);
    assert.deepEqual(recs.filter((x) => x.type !== "problem").map((x) => [x.type, x.patientId, x.planId]), [
      ["patient", "RTX0002", undefined],
      ["plan", "RTX0002", "RTX0002-P1"],
    ]);
    assert.match(r.stderr, /plan RTX0001-P1.*no listed plan has this plan ID, UID or label/);
    assert.match(r.stderr, /plan NO-SUCH-PLAN.*no listed plan has this plan ID, UID or label/);
    assert.notEqual(r.status, 0, "a named plan that is not there is not a silent success");
  });
});

describe("export-plan --authorized-by", () => {
  test("an unapproved plan is skipped without it; with it, exported and the authorization is in the ledger with the name", async () => {
    const out = join(dir, "without");
    const without = await sh(`"\${RT[@]}" list-patients --from catalog --db 'sqlite:${db}' --vault '${vault}' --include-unapproved --plan RTX0001-P2 | "\${RT[@]}" export-plan --out '${out}' --json`);
    assert.equal(without.status, 0, without.stderr);
    const skipped = records(without.stdout).find((x) => x.type === "plan")!;
    assert.deepEqual(skipped.export, { status: "skipped", reason: "approval UNAPPROVED" });
    assert.match(without.stderr, /approval is UNAPPROVED; pass --include-unapproved or --authorized-by NAME to export it/);
    assert.ok(!existsSync(join(out, readdirSync(out).find((f) => f.endsWith("RTX0001")) ?? "none", "Plan2_Alt")));

    const authorized = join(dir, "authorized");
    const r = await sh(`"\${RT[@]}" list-patients --from catalog --db 'sqlite:${db}' --vault '${vault}' --include-unapproved --plan RTX0001-P1 --plan RTX0001-P2 | "\${RT[@]}" export-plan --out '${authorized}' --authorized-by '  Dr. Jane Roe ' --json`);
    assert.equal(r.status, 0, r.stderr);
    const plans = records(r.stdout).filter((x) => x.type === "plan");
    assert.deepEqual(plans.map((x) => [x.planId, x.export.status, x.export.authorizedBy]), [
      ["RTX0001-P1", "done", undefined],
      ["RTX0001-P2", "done", "Dr. Jane Roe"],
    ]);
    assert.match(r.stderr, /plan "Plan2_Alt" of patient RTX0001: approval is UNAPPROVED; exported on the authorization of Dr\. Jane Roe/);
    const rows = (await ledgerRows(`sqlite:${join(authorized, ".rtexport", "ledger.sqlite")}`)).filter((x) => x.kind === "authorization");
    assert.deepEqual(rows.map((x) => [x.key, x.status, x.patient_id, x.source]), [[`sqlite:${db}|RTX0001-P2`, "done", "RTX0001", "Dr. Jane Roe"]]);
  });

  test("an empty name or one with a control character is a usage error", async () => {
    const empty = await sh(`echo '{}' | "\${RT[@]}" export-plan --authorized-by ' '`);
    assert.equal(empty.status, 2, empty.stderr);
    assert.match(empty.stderr, /--authorized-by.*expected the name of the person who authorized the export/);
    const control = await sh(`echo '{}' | "\${RT[@]}" export-plan --authorized-by $'Dr.\\tX'`);
    assert.equal(control.status, 2, control.stderr);
  });
});
