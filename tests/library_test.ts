// mod.ts used the way a migration script uses it: from source, under the runtime running the
// suite (Node and Deno). The npm build's import is tested in build_test.ts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as rtexport from "../mod.ts";
import type { ClinicManifest, RtRecord } from "../mod.ts";

let dir: string;
let manifest: ClinicManifest;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-lib-"));
  manifest = await rtexport.generateClinic({ out: join(dir, "clinic"), patients: 2, slices: 3, seed: 5 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("listPatients | exportPlans | copyFiles as async iterables, then the reference tree of the copy", async () => {
  const plans = rtexport.listPatients({ from: "folder", paths: [join(dir, "clinic")] });
  const exported = rtexport.exportPlans(plans, { includeUnapproved: true });
  const out: RtRecord[] = [];
  for await (const r of rtexport.copyFiles(exported, { to: join(dir, "tree") })) out.push(r);
  const files = out.filter((r) => r.type === "file");
  const expected = manifest.patients.reduce((n, p) => n + p.studies.reduce((m, s) => m + s.series.reduce((k, x) => k + x.instances.length, 0), 0), 0);
  // Every object lands in the tree (a structure set shared by plans sits in each plan's folder).
  assert.equal(new Set(files.map((f) => f.sopInstanceUid)).size, expected);
  const summaries = files.map((f) => rtexport.summarizeObject(rtexport.readDicomFile(String(f.path)), String(f.path)));
  const tree = rtexport.buildReferenceTree(summaries);
  assert.equal(tree.patients.reduce((n, p) => n + p.plans.length, 0), manifest.patients.reduce((n, p) => n + p.plans.length, 0));
  assert.ok(tree.patients.every((p) => p.plans.every((plan) => plan.missing.length === 0)));
});

test("anonymizeDataSet keeps the references consistent under one key", () => {
  const p = manifest.patients[0];
  const plan = rtexport.readDicomFile(join(dir, "clinic", p.plans[0].path), { full: true });
  const struct = rtexport.readDicomFile(join(dir, "clinic", p.structureSet.path), { full: true });
  const ctx = rtexport.createAnonymizeContext({ key: "0123456789abcdef0123456789abcdef" });
  rtexport.anonymizeDataSet(plan.dataset, ctx.options, ctx);
  rtexport.anonymizeDataSet(struct.dataset, ctx.options, ctx);
  const ref = plan.dataset.items("ReferencedStructureSetSequence")[0].string("ReferencedSOPInstanceUID");
  assert.equal(ref, struct.dataset.string("SOPInstanceUID"));
  assert.notEqual(ref, p.structureSet.sopInstanceUid);
  assert.notEqual(plan.dataset.string("PatientID"), p.patientId);
});

test("every value export of mod.ts has a JSDoc comment", () => {
  const text = readFileSync(new URL("../mod.ts", import.meta.url), "utf8");
  const undocumented: string[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const m = /^export const (\w+)/.exec(line);
    if (!m) return;
    let j = i - 1;
    while (j >= 0 && lines[j].trim() === "") j--;
    if (!lines[j].trim().endsWith("*/")) undocumented.push(m[1]);
  });
  assert.deepEqual(undocumented, []);
  for (const name of ["listPatients", "exportPlans", "copyFiles", "anonymizeFiles", "pushRecords", "retrieveFiles", "showRecords", "searchFiles", "startQrScp", "summarizeLedger", "readDicomFile", "buildReferenceTree", "anonymizeDataSet", "connect"]) {
    assert.equal(typeof (rtexport as Record<string, unknown>)[name], "function", `mod.ts exports ${name}`);
  }
});
