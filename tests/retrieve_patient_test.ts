// retrieve without a plan filter (the whole patient), with a plan (its registrations and the
// series they register), by SOP Instance UID, and by C-MOVE to a third AE (DCMTK storescp);
// and two patients sharing a Study Instance UID (and one Series Instance UID) at Orthanc:
// only the asked patient's objects are written, by C-GET and by C-MOVE (issues 16 and 12).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic, type ClinicManifest } from "../lib/fixtures/mod.ts";
import { textElement } from "../lib/dicom/dataset.ts";
import { lookupKeyword } from "../lib/dicom/dictionary.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { FolderIndex } from "../lib/index/index.ts";
import { findMatches, selectInstances } from "../lib/qr/find.ts";
import { ArrivalStore } from "../lib/retrieve/arrivals.ts";
import { type RetrieveTransport, retrievePlans } from "../lib/retrieve/planner.ts";
import { main as retrieveMain } from "../commands/retrieve.ts";
import { main as showMain } from "../commands/show.ts";
import { freePort, type OrthancPeer, runMainCaptured, startOrthanc, startStorescp, type StorescpPeer } from "./_peers.ts";

const root = mkdtempSync(join(tmpdir(), "rtexport-retrieve-patient-"));
const clinicDir = join(root, "clinic");
let manifest: ClinicManifest;
/** An MR series of patient 0 that neither a plan nor a registration references (its own frame of reference). */
let loneMr: { seriesUid: string; uids: string[] };

const OTHER_ID = "RTXB9999";
const OTHER_NAME = "Zzyzx^Quentin";
/** Patient B's objects: its own CT series and plan in patient 0's CT study, and one CT slice in patient 0's CT series. */
const otherDir = join(root, "other");
let otherUids: string[];
let sharedSeriesUid: string;

/** A copy of a clinic file with some elements replaced (by keyword), written explicit VR little endian. */
function rewrite(src: string, dest: string, changes: Record<string, string>): void {
  const f = readDicomFile(src, { full: true });
  for (const [keyword, value] of Object.entries(changes)) {
    const e = lookupKeyword(keyword)!;
    f.dataset.set(textElement(e.tag, e.vr.split(/[ /]/)[0], value));
  }
  mkdirSync(join(dest, ".."), { recursive: true });
  writeFileSync(dest, encodeFile(f.dataset, { transferSyntaxUid: "1.2.840.10008.1.2.1" }));
}

function dicomFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".dcm") && !e.parentPath.includes(".rtexport"))
    .map((e) => join(e.parentPath, e.name));
}

const uidOf = (f: string) => readDicomFile(f).dataset.string("SOPInstanceUID")!;

before(async () => {
  manifest = await generateClinic({ out: clinicDir, patients: 2, slices: 4, size: 32 });
  const p = manifest.patients[0];
  const mr = p.studies.flatMap((s) => s.series).find((s) => s.modality === "MR")!;
  // The explicit VR slices of the MR, as a second MR series in a frame of reference of its own.
  loneMr = { seriesUid: "2.25.4242000000000000000000000000000001", uids: [] };
  for (const [k, i] of mr.instances.filter((x) => x.transferSyntaxUid === "1.2.840.10008.1.2.1").entries()) {
    const uid = `2.25.42420000000000000000000000000001${k + 10}`;
    loneMr.uids.push(uid);
    rewrite(join(clinicDir, i.path), join(clinicDir, p.patientId, "MR2", `MR${k}.dcm`), {
      SeriesInstanceUID: loneMr.seriesUid, SOPInstanceUID: uid, SeriesDescription: "T1 lone", FrameOfReferenceUID: "2.25.4242000000000000000000000000000002",
    });
  }
  // Patient B: another patient whose objects share patient 0's CT Study Instance UID (seen in
  // real QA exports), one of them even its CT Series Instance UID.
  const st = p.studies.find((s) => s.series.some((x) => x.modality === "CT"))!;
  const ct = st.series.find((x) => x.modality === "CT")!;
  sharedSeriesUid = ct.seriesUid;
  const other = { PatientID: OTHER_ID, PatientName: OTHER_NAME, StudyInstanceUID: st.studyUid };
  otherUids = [];
  for (const [k, i] of ct.instances.entries()) {
    const uid = `2.25.4343000000000000000000000000000${k + 10}`;
    otherUids.push(uid);
    rewrite(join(clinicDir, i.path), join(otherDir, `CT${k}.dcm`), { ...other, SeriesInstanceUID: "2.25.4343000000000000000000000000000001", SOPInstanceUID: uid });
  }
  otherUids.push("2.25.43430000000000000000000000000000099");
  rewrite(join(clinicDir, ct.instances[0].path), join(otherDir, "CT-shared.dcm"), { ...other, SOPInstanceUID: otherUids.at(-1)! });
  const plan = p.plans.find((x) => x.label === "Plan1")!;
  otherUids.push("2.25.43430000000000000000000000000000098");
  rewrite(join(clinicDir, plan.path), join(otherDir, "RP.dcm"), { ...other, SeriesInstanceUID: "2.25.4343000000000000000000000000000002", SOPInstanceUID: otherUids.at(-1)! });
});
after(() => rmSync(root, { recursive: true, force: true }));

async function upload(orthanc: OrthancPeer, files: string[]): Promise<void> {
  for (const f of files) {
    const r = await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances`, { method: "POST", body: readFileSync(f) });
    assert.ok(r.ok, `upload ${f}: HTTP ${r.status}`);
    await r.body?.cancel();
  }
}

/** The SOP Instance UIDs Orthanc holds for a patient (its REST API, not C-FIND). */
async function orthancInstances(orthanc: OrthancPeer, patientId: string): Promise<string[]> {
  const found: { MainDicomTags: { SOPInstanceUID: string } }[] = await orthanc.rest("/tools/find", { Level: "Instance", Query: { PatientID: patientId }, Expand: true });
  return found.map((i) => i.MainDicomTags.SOPInstanceUID).sort();
}

/** The `plan` records of `show` over a folder, without paths (they name the folder). */
async function showPlans(dir: string): Promise<Record<string, unknown>[]> {
  const r = await runMainCaptured(showMain, [dir, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const strip = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(strip) : v && typeof v === "object"
      ? Object.fromEntries(Object.entries(v).filter(([k]) => k !== "path").map(([k, x]) => [k, strip(x)]))
      : v;
  return r.records.filter((x) => x.type === "plan").map((x) => strip(x) as Record<string, unknown>);
}

describe("retrieve ← Orthanc: the whole patient, a plan with its registrations, instances, a third AE", () => {
  let orthanc: OrthancPeer;
  let storescp: StorescpPeer;
  let movePort: number;
  let peer: string[];
  before(async () => {
    movePort = await freePort();
    storescp = await startStorescp({ aeTitle: "THIRDAE" });
    const down = await freePort(); // known to Orthanc, nothing listens there
    orthanc = await startOrthanc({
      modalities: [
        { aeTitle: "RTX", host: "127.0.0.1", port: movePort }, { aeTitle: "THIRDAE", host: "127.0.0.1", port: storescp.port },
        { aeTitle: "DOWNAE", host: "127.0.0.1", port: down },
      ],
    });
    await upload(orthanc, dicomFilesUnder(clinicDir));
    peer = ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTX", "--dimse-timeout", "20"];
  });
  after(async () => {
    await orthanc?.stop();
    await storescp?.stop();
  });

  for (const how of ["C-GET", "C-MOVE"]) {
    test(`no plan filter, by ${how}: every instance Orthanc has for the patient, counted per series`, async () => {
      const p = manifest.patients[0];
      const out = join(root, `whole-${how}`);
      const mode = how === "C-GET" ? ["--get"] : ["--move-port", String(movePort), "--move-host", "127.0.0.1"];
      const r = await runMainCaptured(retrieveMain, [...peer, ...mode, "--patient-id", p.patientId, "--out", out]);
      assert.equal(r.code, 0, r.stderr);
      const want = await orthancInstances(orthanc, p.patientId);
      assert.ok(want.length > 20 && want.includes(loneMr.uids[0]), "Orthanc holds the patient, the lone MR included");
      assert.deepEqual(r.records.filter((x) => x.type === "file").map((f) => f.sopInstanceUid).sort(), want);
      assert.deepEqual(dicomFilesUnder(out).map(uidOf).sort(), want);
      const summary = r.records.find((x) => x.type === "retrieve-summary")!;
      assert.equal(summary.mode, "patient");
      assert.equal(summary.complete, true);
      assert.equal(summary.series.reduce((n: number, s: { arrived: number }) => n + s.arrived, 0), want.length);
      assert.ok(summary.series.every((s: { expected: number; arrived: number }) => s.expected === s.arrived));
      assert.match(r.stderr, new RegExp(`patient "${p.patientId}": ${want.length} of ${want.length} instances in ${summary.series.length} series arrived`));
    });
  }

  test("--plan: the plan, what it references, its registration and the MR it registers; show on the result equals show on the source", async () => {
    const p = manifest.patients[0];
    const plan = p.plans.find((x) => x.label === "Plan1")!;
    const out = join(root, "plan");
    const r = await runMainCaptured(retrieveMain, [...peer, "--get", "--patient-id", p.patientId, "--plan", "Plan1", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const got = new Set(r.records.filter((x) => x.type === "file").map((f) => f.sopInstanceUid));
    assert.ok(got.has(plan.registrations[0].sopInstanceUid), "the registration arrived");
    const mr = p.unreferenced[0];
    const mrUids = p.studies.flatMap((s) => s.series).find((s) => s.seriesUid === mr.seriesUid)!.instances.map((i) => i.sopInstanceUid);
    assert.ok(mrUids.every((u) => got.has(u)), "the registered MR arrived");
    assert.ok(loneMr.uids.every((u) => !got.has(u)), "an MR nothing registers stays at the source");
    assert.ok(r.records.filter((x) => x.type === "file").every((f) => f.planUid === plan.planUid));
    const source = (await showPlans(clinicDir)).find((x) => x.planUid === plan.planUid)!;
    assert.equal((source.registrations as unknown[]).length, 1);
    assert.deepEqual(await showPlans(out), [source]);
  });

  test("--sop: exactly those instances; one the patient does not have is a gap (exit 3)", async () => {
    const p = manifest.patients[0];
    const wanted = [p.plans[0].planUid, loneMr.uids[0], p.plans[0].doses[0].sopInstanceUid];
    const out = join(root, "sop");
    const r = await runMainCaptured(retrieveMain, [...peer, "--get", "--patient-id", p.patientId, ...wanted.flatMap((u) => ["--sop", u]), "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(dicomFilesUnder(out).map(uidOf).sort(), [...wanted].sort());
    const summary = r.records.find((x) => x.type === "retrieve-summary")!;
    assert.deepEqual(summary.instances.map((i: { sopInstanceUid: string; arrived: boolean }) => [i.sopInstanceUid, i.arrived]), wanted.map((u) => [u, true]));
    // Patient 1's plan is not patient 0's, even by UID.
    const theirs = manifest.patients[1].plans[0].planUid;
    const bad = await runMainCaptured(retrieveMain, [
      ...peer, "--move-port", String(movePort), "--move-host", "127.0.0.1", "--patient-id", p.patientId, "--sop", theirs, "--sop", wanted[0], "--out", join(root, "sop-bad"),
    ]);
    assert.equal(bad.code, 3, bad.stderr);
    assert.deepEqual(dicomFilesUnder(join(root, "sop-bad")).map(uidOf), [wanted[0]]);
    assert.match(bad.stderr, new RegExp(`Cannot retrieve OBJECT ${theirs.replace(/\./g, "\\.")}: not found for patient "${p.patientId}" \\(C-FIND\\)`));
  });

  test("--move-dest: the objects arrive at the third AE (storescp) and none here; the peer's counts per request", async () => {
    const p = manifest.patients[0];
    const out = join(root, "third");
    for (const n of readdirSync(storescp.outDir)) rmSync(join(storescp.outDir, n));
    const r = await runMainCaptured(retrieveMain, [...peer, "--patient-id", p.patientId, "--move-dest", "THIRDAE", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const want = await orthancInstances(orthanc, p.patientId);
    assert.deepEqual(readdirSync(storescp.outDir).map((n) => n.replace(/^[A-Za-z]+\./, "")).sort(), want);
    assert.deepEqual(dicomFilesUnder(out), [], "nothing written here");
    assert.equal(r.records.filter((x) => x.type === "file").length, 0);
    const summary = r.records.find((x) => x.type === "retrieve-summary")!;
    assert.equal(summary.destination, "THIRDAE");
    assert.equal(summary.moves.length, summary.series.length);
    assert.equal(summary.moves.reduce((n: number, m: { completed: number }) => n + m.completed, 0), want.length);
    assert.ok(summary.moves.every((m: { failed: number; completed: number; expected: number }) => m.failed === 0 && m.completed === m.expected));
    const ct = p.studies.flatMap((s) => s.series).find((s) => s.modality === "CT")!;
    assert.match(r.stderr, new RegExp(`series ${ct.seriesUid.replace(/\./g, "\\.")} \\(CT\\) → THIRDAE: ${ct.instances.length} completed, 0 failed, 0 warning of ${ct.instances.length} expected`));
    assert.match(r.stderr, new RegExp(`${summary.moves.length} requests done, 0 failed`));
    // --sop to the third AE, without --out.
    for (const n of readdirSync(storescp.outDir)) rmSync(join(storescp.outDir, n));
    const one = await runMainCaptured(retrieveMain, [...peer, "--patient-id", p.patientId, "--move-dest", "THIRDAE", "--sop", loneMr.uids[0]]);
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(readdirSync(storescp.outDir).map((n) => n.replace(/^[A-Za-z]+\./, "")), [loneMr.uids[0]]);
  });

  test("--move-dest: a destination that is down fails every request with the peer's counts (exit 3); one Orthanc does not know, too", async () => {
    const p = manifest.patients[0];
    const r = await runMainCaptured(retrieveMain, [...peer, "--patient-id", p.patientId, "--move-dest", "DOWNAE", "--series", loneMr.seriesUid]);
    assert.equal(r.code, 3, r.stderr);
    const summary = r.records.find((x) => x.type === "retrieve-summary")!;
    assert.equal(summary.complete, false);
    assert.equal(summary.moves.length, 1);
    assert.match(r.stderr, new RegExp(`Cannot move series ${loneMr.seriesUid.replace(/\./g, "\\.")} \\(MR\\) → DOWNAE: the peer reported \\d+ completed, \\d+ failed, \\d+ warning of ${loneMr.uids.length} expected, status 0x[0-9a-f]{4}`));
    assert.match(r.stderr, /0 requests done, 1 failed/);
    const unknown = await runMainCaptured(retrieveMain, [...peer, "--patient-id", p.patientId, "--move-dest", "NOBODY", "--sop", loneMr.uids[0]]);
    assert.equal(unknown.code, 3, unknown.stderr);
    assert.match(unknown.stderr, /Cannot move instance .* → NOBODY: the peer reported 0 completed/);
  });

  test("--move-dest refuses what needs the objects here (usage, exit 2)", async () => {
    const p = manifest.patients[0];
    for (const [extra, flag] of [[["--get"], "--get"], [["--plan", "Plan1"], "--plan"], [["--new-patient-id", "X"], "--new-patient-id"]] as const) {
      const r = await runMainCaptured(retrieveMain, [...peer, "--patient-id", p.patientId, "--move-dest", "THIRDAE", ...extra]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`--move-dest cannot be combined with ${flag}`));
    }
    const noOut = await runMainCaptured(retrieveMain, [...peer, "--patient-id", p.patientId, "--get"]);
    assert.equal(noOut.code, 2);
    assert.match(noOut.stderr, /--out is required/);
  });
});

describe("retrieve ← Orthanc holding two patients that share a Study Instance UID", () => {
  let orthanc: OrthancPeer;
  let movePort: number;
  let peer: string[];
  before(async () => {
    movePort = await freePort();
    orthanc = await startOrthanc({ modalities: [{ aeTitle: "RTX", host: "127.0.0.1", port: movePort }] });
    const p0 = manifest.patients[0];
    await upload(orthanc, [...dicomFilesUnder(join(clinicDir, p0.patientId)), ...dicomFilesUnder(otherDir)]);
    assert.deepEqual(await orthancInstances(orthanc, OTHER_ID), [...otherUids].sort());
    peer = ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTX", "--dimse-timeout", "20"];
  });
  after(async () => {
    await orthanc?.stop();
  });

  for (const how of ["C-GET", "C-MOVE"]) {
    for (const filter of [[], ["--plan", "Plan1"]]) {
      test(`${filter.length ? "--plan" : "the whole patient"} by ${how}: only that patient's objects are written; the other's is dropped and named by UID only`, async () => {
        const p = manifest.patients[0];
        const out = join(root, `two-${how}-${filter.length}`);
        const mode = how === "C-GET" ? ["--get"] : ["--move-port", String(movePort), "--move-host", "127.0.0.1"];
        const r = await runMainCaptured(retrieveMain, [...peer, ...mode, "--patient-id", p.patientId, ...filter, "--out", out]);
        const written = dicomFilesUnder(out);
        assert.ok(written.length > 10);
        for (const f of written) assert.equal(readDicomFile(f).dataset.string("PatientID"), p.patientId, f);
        assert.ok(!existsSync(join(out, OTHER_ID)), "no folder of the other patient");
        assert.ok(r.records.every((x) => x.type !== "file" || x.patientId === p.patientId));
        // Orthanc sends the other patient's slice with the shared Series UID: dropped, reported, exit 3.
        const summary = r.records.find((x) => x.type === "retrieve-summary")!;
        assert.equal(summary.otherPatient, 1);
        assert.equal(summary.complete, true, "everything of the patient arrived");
        assert.equal(r.code, 3, r.stderr);
        const shared = otherUids.at(-2)!;
        assert.match(r.stderr, new RegExp(`Cannot keep object ${shared.replace(/\./g, "\\.")}: it belongs to another patient \\(its PatientID is not "${p.patientId}"\\); dropped, not written`));
        const text = r.stderr + r.stdout + JSON.stringify(summary);
        assert.ok(!text.includes(OTHER_ID) && !text.includes("Zzyzx"), "never the other patient's ID or name");
        if (!filter.length) {
          assert.deepEqual(written.map(uidOf).sort(), await orthancInstances(orthanc, p.patientId));
          // The shared series counts the patient's own instances only: complete, no gap.
          const shared = summary.series.find((x: { seriesUid: string }) => x.seriesUid === sharedSeriesUid);
          assert.deepEqual([shared.expected, shared.arrived, shared.missing], [4, 4, []]);
        }
      });
    }
  }
});

describe("registrations by frame of reference only (the planner over the real folder index)", () => {
  test("a registration that names the MR frame of reference and no series: the MR series is found by FrameOfReferenceUID", async () => {
    const dir = join(root, "frames-only");
    const p = manifest.patients[0];
    for (const st of p.studies) {
      for (const se of st.series) {
        for (const i of se.instances) {
          const src = join(clinicDir, i.path);
          if (se.modality !== "REG") {
            mkdirSync(join(dir, se.seriesUid), { recursive: true });
            writeFileSync(join(dir, se.seriesUid, `${i.sopInstanceUid}.dcm`), readFileSync(src));
            continue;
          }
          // The registration without its series references: frames of reference only.
          const f = readDicomFile(src, { full: true });
          f.dataset.delete("ReferencedSeriesSequence");
          f.dataset.delete("StudiesContainingOtherReferencedInstancesSequence");
          for (const item of f.dataset.items("RegistrationSequence")) item.delete("ReferencedImageSequence");
          mkdirSync(join(dir, se.seriesUid), { recursive: true });
          writeFileSync(join(dir, se.seriesUid, `${i.sopInstanceUid}.dcm`), encodeFile(f.dataset, { transferSyntaxUid: f.transferSyntaxUid }));
        }
      }
    }
    const index = await FolderIndex.open(dir, { dbPath: join(root, "frames-only.sqlite") });
    try {
      await index.indexFolder();
      const arrivals = new ArrivalStore(join(root, "frames-only-staging"));
      const asked: string[] = [];
      let n = 0;
      const transport: RetrieveTransport = {
        find: (id) => findMatches(index, id, "STUDY"),
        async retrieve(id) {
          asked.push(`${id.string("QueryRetrieveLevel")} ${id.string("SeriesInstanceUID")} ${id.string("PatientID")}`);
          const files = await selectInstances(index, id, "STUDY");
          for (const f of files) {
            const tmp = join(arrivals.dir, `in-${n++}`);
            writeFileSync(tmp, readFileSync(f.path));
            arrivals.accept({ path: tmp, sopClassUid: f.sopClassUid, sopInstanceUid: f.sopInstanceUid, transferSyntaxUid: f.transferSyntaxUid, size: f.bytes });
          }
          return { status: 0, completed: files.length, failed: 0, warning: 0 };
        },
      };
      const result = await retrievePlans(transport, arrivals, { patientId: p.patientId, planLabels: ["Plan1"] });
      const mr = p.unreferenced[0];
      assert.ok(asked.includes(`SERIES ${mr.seriesUid} ${p.patientId}`), asked.join("\n"));
      const kept = new Set(result.objects.map((o) => o.object.sopInstanceUid));
      assert.equal(result.objects.filter((o) => o.object.seriesUid === mr.seriesUid).length, mr.count);
      assert.ok(kept.has(p.plans[0].registrations[0].sopInstanceUid));
      assert.equal(result.summary.complete, true);
      // Every request named the patient.
      assert.ok(asked.every((a) => a.endsWith(` ${p.patientId}`)));
      arrivals.cleanup();
    } finally {
      await index.close();
    }
  });
});
