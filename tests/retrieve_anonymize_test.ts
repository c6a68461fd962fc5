// retrieve --anonymize: objects fetched from a Q/R peer (our serve) land under --out only
// de-identified, with the plan's references intact.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import type { ClinicManifest } from "../lib/fixtures/clinic.ts";
import { cliCommand, records, sh } from "./_run.ts";
import { freePort, waitForPort } from "./_peers.ts";
import { retrieveRecords } from "../lib/retrieve/stage.ts";
import { ledgerItems, replacePaths, runLibraryStage } from "./_stage_compare.ts";

let dir: string;
let manifest: ClinicManifest;
let serve: ReturnType<typeof spawn>;
let port: number;
const aet = "RTX-ANON-SCP";
const KEY = "0123456789abcdef0123456789abcdef";

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-retrieve-anon-"));
  manifest = await generateClinic({ out: join(dir, "clinic"), patients: 2, slices: 4, seed: 11 });
  port = await freePort();
  const [cmd, ...args] = cliCommand();
  serve = spawn(cmd, [...args, "serve", "--dir", join(dir, "clinic"), "--port", String(port), "--aet", aet, "--allow", "RTEXPORT", "-q"], { stdio: "ignore" });
  await waitForPort(port, "127.0.0.1", 30_000);
});
after(() => {
  serve?.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
});

function filesUnder(d: string): string[] {
  return readdirSync(d, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

test("retrieve --anonymize writes only de-identified objects, with the plan's tree intact", async () => {
  const p = manifest.patients[0];
  const plan = p.plans.find((x) => x.approval === "APPROVED")!;
  const out = join(dir, "research");
  const r = await sh(`"\${RT[@]}" retrieve --host 127.0.0.1 --port ${port} --called-aet ${aet} --get --patient-id ${p.patientId} --plan '${plan.label}' --anonymize --anonymize-key ${KEY} --new-patient-id RES-001 --out '${out}'`);
  assert.equal(r.status, 0, r.stderr);
  const files = records(r.stdout).filter((x) => x.type === "file");
  // The plan, its structure set, doses, records, RT images, CT; the registration and the MR it registers.
  const expected = 1 + 1 + plan.doses.length + plan.records.length + plan.rtImages.length + plan.imageSeries.reduce((n, s) => n + s.count, 0) +
    plan.registrations.length + p.unreferenced.reduce((n, u) => n + u.count, 0);
  assert.equal(files.length, expected);
  assert.ok(files.every((f) => f.patientId === "RES-001" && f.path.startsWith(out)));
  // No identifying value of the source anywhere under --out (staging included: it is gone).
  const written = filesUnder(out).filter((f) => f.endsWith(".dcm"));
  assert.equal(written.length, expected);
  const nameBytes = Buffer.from(p.nameBytesHex, "hex");
  for (const f of written) {
    const bytes = readFileSync(f);
    assert.equal(bytes.indexOf(p.patientId), -1, `${f} holds the patient ID`);
    assert.equal(bytes.indexOf(nameBytes), -1, `${f} holds the patient name`);
    assert.equal(bytes.indexOf(plan.planUid), -1, `${f} holds an original UID`);
  }
  assert.deepEqual(readdirSync(join(out, ".rtexport")).filter((n) => n.startsWith("retrieve-staging")), []);
  // The references survive: show finds the plan with its structure set, images and doses.
  const show = records((await sh(`"\${RT[@]}" show --json --pattern '*.dcm' '${out}'`)).stdout);
  const shown = show.find((x) => x.type === "plan")!;
  assert.ok(shown.structureSet && !shown.structureSet.missing);
  assert.equal(shown.structureSet.imageSeries[0].count, plan.imageSeries[0].count);
  assert.equal(shown.doses.length, plan.doses.length);
  assert.deepEqual(shown.missing, []);
  assert.ok(existsSync(join(out, ".rtexport", "ledger.sqlite")));
});

test("retrieve --anonymize: the library stage gives the command's records and ledger rows, none with the original identity", async () => {
  const p = manifest.patients[1];
  const plan = p.plans.find((x) => x.approval === "APPROVED")!;
  const cliOut = join(dir, "same-cli");
  const libOut = join(dir, "same-lib");
  // A plan that is there and a label that is not: files, and a gap for the ledger and the summary.
  const r = await sh(`"\${RT[@]}" retrieve --host 127.0.0.1 --port ${port} --called-aet ${aet} --get --patient-id ${p.patientId} --plan '${plan.label}' --plan NoSuchPlan --anonymize --anonymize-key ${KEY} --out '${cliOut}'`);
  assert.equal(r.status, 3, r.stderr);
  const cli = records(r.stdout);
  const lib = await runLibraryStage(retrieveRecords, [], {
    peer: { host: "127.0.0.1", port, callingAet: "RTEXPORT", calledAet: aet }, patientId: p.patientId, plans: [plan.label, "NoSuchPlan"],
    get: true, out: libOut, anonymize: { key: KEY },
  }, `sqlite:${join(libOut, ".rtexport", "ledger.sqlite")}`, "retrieve");
  assert.deepEqual(replacePaths(lib.records, [[libOut, "OUT"]]), replacePaths(cli, [[cliOut, "OUT"]]));
  const rows = await ledgerItems(`sqlite:${join(libOut, ".rtexport", "ledger.sqlite")}`);
  assert.deepEqual(replacePaths(rows, [[libOut, "OUT"]]), replacePaths(await ledgerItems(`sqlite:${join(cliOut, ".rtexport", "ledger.sqlite")}`), [[cliOut, "OUT"]]));
  // The summary and the ledger carry the new identity: no original patient ID, name or plan UID.
  const summary = lib.records.at(-1)!;
  assert.equal(summary.type, "retrieve-summary");
  assert.match(String(summary.patientId), /^ANON-/);
  assert.equal(summary.complete, false);
  assert.deepEqual(summary.missingLabels, ["NoSuchPlan"]);
  const files = lib.records.filter((x) => x.type === "file");
  assert.ok(files.length > 0 && files.every((f) => f.patientId === summary.patientId));
  assert.deepEqual((summary.plans as { planUid: string }[]).map((x) => x.planUid), [files.find((f) => f.modality === "RTPLAN")!.sopInstanceUid]);
  const text = JSON.stringify([lib.records, rows]);
  for (const original of [p.patientId, plan.planUid, plan.label]) assert.ok(!text.includes(original), `"${original}" in the records or the ledger`);
  assert.deepEqual(rows.filter((x) => x.kind === "retrieval").map((x) => [x.key, x.patient_id]), [[`${summary.patientId}|label|NoSuchPlan`, summary.patientId]]);
});

test("retrieve --anonymize without a key is a usage error; a key without --anonymize too", async () => {
  const p = manifest.patients[0];
  const noKey = await sh(`"\${RT[@]}" retrieve --host 127.0.0.1 --port ${port} --called-aet ${aet} --get --patient-id ${p.patientId} --anonymize --out '${join(dir, "x")}'`);
  assert.equal(noKey.status, 2);
  assert.match(noKey.stderr, /A key is required: give --anonymize-key-file FILE, --anonymize-key SECRET/);
  const stray = await sh(`"\${RT[@]}" retrieve --host 127.0.0.1 --port ${port} --called-aet ${aet} --get --patient-id ${p.patientId} --anonymize-key ${KEY} --out '${join(dir, "y")}'`);
  assert.equal(stray.status, 2);
  assert.match(stray.stderr, /go with --anonymize/);
});

test("retrieve --anonymize takes anonymize's options: --preset rt-research keeps the plan's label and machines, shifts its dates", async () => {
  const p = manifest.patients[0];
  const plan = p.plans.find((x) => x.approval === "APPROVED")!;
  const out = join(dir, "preset");
  const r = await sh(`"\${RT[@]}" retrieve --host 127.0.0.1 --port ${port} --called-aet ${aet} --get --patient-id ${p.patientId} --plan '${plan.label}' --anonymize --anonymize-key ${KEY} --preset rt-research --out '${out}'`);
  assert.equal(r.status, 0, r.stderr);
  const rp = records(r.stdout).find((x) => x.type === "file" && x.modality === "RTPLAN")!;
  const { readDicomFile } = await import("../lib/dicom/reader.ts");
  const ds = readDicomFile(rp.path).dataset;
  assert.equal(ds.string("RTPlanLabel"), plan.label); // clean descriptors: kept (it holds no identifier)
  assert.ok(ds.items("BeamSequence").every((b) => (b.string("TreatmentMachineName") ?? "") !== ""), "machine names kept");
  const codes = ds.items("DeidentificationMethodCodeSequence").map((i) => i.string("CodeValue"));
  assert.deepEqual(codes, ["113100", "113105", "113107", "113109", "113111"]);
  assert.equal(ds.string("LongitudinalTemporalInformationModified"), "MODIFIED");
  const bad = await sh(`"\${RT[@]}" retrieve --host 127.0.0.1 --port ${port} --called-aet ${aet} --get --patient-id ${p.patientId} --preset rt-research --out '${join(dir, "z")}'`);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--preset and the other de-identification options go with --anonymize/);
});
