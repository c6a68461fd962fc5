// export-plan --anonymize: the export runs into a private staging folder and only de-identified
// copies land under --out, with the options `anonymize` takes (one option definition, shared).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import type { ClinicManifest } from "../lib/fixtures/clinic.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { records, sh } from "./_run.ts";

const KEY = "export-anon-key-0123456789abcdef";
let dir: string;
let clinic: string;
let manifest: ClinicManifest;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-export-anon-"));
  clinic = join(dir, "clinic");
  manifest = await generateClinic({ out: clinic, patients: 2, slices: 3, size: 16, seed: 23 });
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function filesUnder(d: string): string[] {
  return readdirSync(d, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

test("export-plan --anonymize --preset rt-research writes only de-identified DICOM, named by keyed UIDs", async () => {
  const out = join(dir, "research");
  const r = await sh(`"\${RT[@]}" list-patients --from folder --include-unapproved '${clinic}' | "\${RT[@]}" export-plan --include-unapproved --out '${out}' --anonymize --anonymize-key ${KEY} --preset rt-research`);
  assert.equal(r.status, 0, r.stderr);
  const out_ = records(r.stdout);
  const files = out_.filter((x) => x.type === "file");
  assert.ok(files.length >= 10, `${files.length} files`);
  for (const f of files) {
    assert.match(String(f.patientId), /^ANON-[0-9A-F]{10}$/);
    assert.ok(String(f.path).endsWith(`${f.sopInstanceUid}.dcm`));
  }
  // Patient and plan records leave with the new identity only.
  for (const p of out_.filter((x) => x.type === "patient")) assert.match(String(p.patientId), /^ANON-/);
  // Nothing of the source under --out: no patient ID, name or original UID in any path or byte, no staging left.
  const written = filesUnder(out);
  assert.equal(written.filter((f) => f.endsWith(".dcm")).length, files.length);
  assert.deepEqual(written.filter((f) => !f.endsWith(".dcm")), [], "only DICOM outputs (no ledger, no staging)");
  assert.equal(existsSync(join(out, ".rtexport")) && readdirSync(join(out, ".rtexport")).length > 0, false);
  for (const p of manifest.patients) {
    const name = Buffer.from(p.nameBytesHex, "hex");
    for (const f of written) {
      assert.ok(!f.includes(p.patientId), `${f} names the patient`);
      const bytes = readFileSync(f);
      assert.equal(bytes.indexOf(p.patientId), -1, `${f} holds ${p.patientId}`);
      assert.equal(bytes.indexOf(name), -1, `${f} holds the patient's name`);
      for (const plan of p.plans) assert.equal(bytes.indexOf(plan.planUid), -1, `${f} holds the plan's original UID`);
    }
  }
  // The preset's options reached the anonymizer: clean descriptors, modified dates, device identity, safe private.
  const plan = readDicomFile(files.find((f) => f.modality === "RTPLAN")!.path as string).dataset;
  const codes = plan.items("DeidentificationMethodCodeSequence").map((i) => i.string("CodeValue"));
  assert.deepEqual(codes, ["113100", "113105", "113107", "113109", "113111"]);
  assert.ok(manifest.patients.some((p) => p.plans.some((x) => x.label === plan.string("RTPlanLabel"))), "the plan label is kept");
});

test("export-plan: de-identification options go with --anonymize, which needs --out and DICOM items", async () => {
  const list = `"\${RT[@]}" list-patients --from folder '${clinic}'`;
  const stray = await sh(`${list} | "\${RT[@]}" export-plan --out '${join(dir, "a")}' --retain-dates modified`);
  assert.equal(stray.status, 2);
  assert.match(stray.stderr, /--retain-dates and the other de-identification options go with --anonymize/);
  const noOut = await sh(`${list} | "\${RT[@]}" export-plan --anonymize --anonymize-key ${KEY}`);
  assert.equal(noOut.status, 2);
  assert.match(noOut.stderr, /--anonymize needs --out/);
  const docs = await sh(`${list} | "\${RT[@]}" export-plan --out '${join(dir, "b")}' --anonymize --anonymize-key ${KEY} --items rt-objects,documents`);
  assert.equal(docs.status, 2);
  assert.match(docs.stderr, /--anonymize writes DICOM only: documents cannot be de-identified/);
});
