// The synthetic clinic: deterministic, complete, parseable by DCMTK, and its manifest is the truth.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { type DataSet } from "../lib/dicom/dataset.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, RT_SOP_CLASSES } from "../lib/dicom/uids.ts";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/clinic.ts";
import { compareRows, rowsOf, runDcmdumpMany } from "./_dcmdump.ts";

const OPTIONS = { patients: 6, slices: 5, size: 16 };
let root: string;
let a: ClinicManifest, b: ClinicManifest, c: ClinicManifest;
let dirA: string, dirB: string, dirC: string;

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out.sort();
}

function hashes(dir: string): Map<string, string> {
  return new Map(listFiles(dir).map((f) => [relative(dir, f).split(sep).join("/"), createHash("sha256").update(readFileSync(f)).digest("hex")]));
}

function read(dir: string, path: string): DataSet {
  return readDicomFile(join(dir, path), { full: true }).dataset;
}

function allInstances(m: ClinicManifest) {
  return m.patients.flatMap((p) => p.studies.flatMap((s) => s.series.flatMap((se) => se.instances.map((i) => ({ ...i, modality: se.modality, seriesUid: se.seriesUid, patient: p })))));
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), "rtexport-fixtures-"));
  dirA = join(root, "a");
  dirB = join(root, "b");
  dirC = join(root, "c");
  a = await generateClinic({ out: dirA, ...OPTIONS, seed: 7 });
  b = await generateClinic({ out: dirB, ...OPTIONS, seed: 7 });
  c = await generateClinic({ out: dirC, ...OPTIONS, seed: 8 });
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("generateClinic", () => {
  it("gives byte-identical files for the same seed", () => {
    const ha = hashes(dirA), hb = hashes(dirB);
    assert.equal(ha.size, a.files + 1); // + manifest.json
    assert.deepEqual([...ha.entries()], [...hb.entries()]);
    assert.deepEqual(a, b);
  });

  it("gives different UIDs for a different seed", () => {
    const uidsA = new Set(allInstances(a).map((i) => i.sopInstanceUid));
    const uidsC = allInstances(c).map((i) => i.sopInstanceUid);
    assert.ok(uidsC.length > 100);
    assert.equal(uidsC.filter((u) => uidsA.has(u)).length, 0);
    assert.notEqual(a.patients[0].studies[0].studyUid, c.patients[0].studies[0].studyUid);
  });

  it("writes the manifest it returns, listing every file it wrote", () => {
    assert.deepEqual(JSON.parse(readFileSync(join(dirA, "manifest.json"), "utf8")), a);
    const listed = allInstances(a).map((i) => i.path).sort();
    const written = listFiles(dirA).map((f) => relative(dirA, f).split(sep).join("/")).filter((p) => p !== "manifest.json");
    assert.deepEqual(listed, written);
    assert.equal(new Set(listed).size, listed.length);
    assert.equal(listed.filter((p) => p.includes("tmp")).length, 0);
  });

  it("has the expected number of objects per modality, as the files say", () => {
    const n = OPTIONS.patients;
    const plans = a.patients.flatMap((p) => p.plans);
    const expected: Record<string, number> = {
      CT: n * OPTIONS.slices,
      MR: n * 3,
      RTSTRUCT: n,
      REG: n,
      RTIMAGE: n,
      RTPLAN: plans.length,
      RTDOSE: plans.reduce((s, p) => s + 1 + p.beams.length, 0),
      RTRECORD: plans.reduce((s, p) => s + p.records.length, 0),
    };
    assert.deepEqual(a.counts, expected);
    const seen: Record<string, number> = {};
    for (const f of listFiles(dirA).filter((f) => f.endsWith(".dcm"))) {
      const m = readDicomFile(f).dataset.string("Modality")!;
      seen[m] = (seen[m] ?? 0) + 1;
    }
    assert.deepEqual(seen, expected);
    for (const p of a.patients) assert.ok(p.plans.length >= 1 && p.plans.length <= 3, `${p.patientId} has ${p.plans.length} plans`);
    assert.deepEqual(new Set(plans.map((p) => p.approval)), new Set(["APPROVED", "UNAPPROVED", "REJECTED"]));
    assert.ok(plans.every((p) => p.records.length === (p.approval === "APPROVED" ? (p.kind === "photon" ? 2 : 1) : 0)));
  });

  it("has exactly one CyberKnife skeleton plan and one TomoTherapy plan", () => {
    const plans = a.patients.flatMap((p) => p.plans);
    const ck = plans.filter((p) => p.kind === "cyberknife");
    const tomo = plans.filter((p) => p.kind === "tomotherapy");
    assert.equal(ck.length, 1);
    assert.equal(tomo.length, 1);
    const ckDs = read(dirA, ck[0].path);
    assert.equal(ckDs.has("BeamSequence"), false);
    assert.equal(ckDs.items("FractionGroupSequence")[0].number("NumberOfBeams"), 0);
    assert.equal(ckDs.string(0x32531010), "CyberKnife M6");
    assert.deepEqual(ck[0].machines, ["CyberKnife M6"]);
    assert.equal(ck[0].doses.length, 1);
    const tomoDs = read(dirA, tomo[0].path);
    const beams = tomoDs.items("BeamSequence");
    assert.equal(beams.length, 1);
    assert.equal(beams[0].string("BeamType"), "DYNAMIC");
    assert.ok(["TomoTherapy HD", "Radixact"].includes(beams[0].string("TreatmentMachineName")!));
    assert.deepEqual(tomo[0].machines, [beams[0].string("TreatmentMachineName")]);
    assert.ok(beams[0].items("ControlPointSequence").length > 8);
  });

  it("has manifest references that resolve to generated files", () => {
    for (const p of a.patients) {
      const byUid = new Map(p.studies.flatMap((s) => s.series.flatMap((se) => se.instances.map((i) => [i.sopInstanceUid, { ...i, se }] as const))));
      const ct = p.studies[0].series.find((s) => s.modality === "CT")!;
      const mr = p.studies[1].series.find((s) => s.modality === "MR")!;
      const rs = read(dirA, p.structureSet.path);
      assert.equal(rs.string("SOPInstanceUID"), p.structureSet.sopInstanceUid);
      const rfor = rs.items("ReferencedFrameOfReferenceSequence")[0];
      assert.equal(rfor.string("FrameOfReferenceUID"), ct.frameOfReferenceUid);
      const rseries = rfor.items("RTReferencedStudySequence")[0].items("RTReferencedSeriesSequence")[0];
      assert.equal(rseries.string("SeriesInstanceUID"), ct.seriesUid);
      assert.deepEqual(rseries.items("ContourImageSequence").map((i) => i.string("ReferencedSOPInstanceUID")), ct.instances.map((i) => i.sopInstanceUid));
      assert.equal(rs.items("StructureSetROISequence").length, rs.items("ROIContourSequence").length);
      assert.equal(rs.items("RTROIObservationsSequence").length, 3);
      for (const contour of rs.items("ROIContourSequence").flatMap((r) => r.items("ContourSequence"))) {
        const ref = contour.items("ContourImageSequence")[0].string("ReferencedSOPInstanceUID")!;
        assert.equal(byUid.get(ref)?.se.modality, "CT");
        assert.equal(contour.strings("ContourData").length, 3 * contour.number("NumberOfContourPoints")!);
      }
      for (const plan of p.plans) {
        const ds = read(dirA, plan.path);
        assert.equal(ds.string("SOPInstanceUID"), plan.planUid);
        assert.equal(ds.string("RTPlanLabel"), plan.label);
        assert.equal(ds.string("RTPlanName"), plan.name);
        assert.equal(ds.string("ApprovalStatus"), plan.approval);
        assert.equal(ds.items("ReferencedStructureSetSequence")[0].string("ReferencedSOPInstanceUID"), plan.structureSetUid);
        assert.equal(plan.structureSetUid, p.structureSet.sopInstanceUid);
        const beamMachines = ds.items("BeamSequence").map((bm) => bm.string("TreatmentMachineName"));
        if (plan.kind !== "cyberknife") assert.deepEqual([...new Set(beamMachines)], plan.machines);
        const fg = ds.items("FractionGroupSequence")[0];
        assert.deepEqual(fg.items("ReferencedBeamSequence").map((r) => r.number("ReferencedBeamNumber")), plan.beams.map((bm) => bm.number));
        for (const dose of plan.doses) {
          const d = read(dirA, dose.path);
          assert.equal(d.string("SOPInstanceUID"), dose.sopInstanceUid);
          assert.equal(d.string("DoseSummationType"), dose.doseSummationType);
          const ref = d.items("ReferencedRTPlanSequence")[0];
          assert.equal(ref.string("ReferencedSOPInstanceUID"), plan.planUid);
          if (dose.doseSummationType === "BEAM") {
            const beam = ref.items("ReferencedFractionGroupSequence")[0].items("ReferencedBeamSequence")[0];
            assert.equal(beam.number("ReferencedBeamNumber"), dose.referencedBeamNumber);
          }
        }
        assert.equal(plan.doses.filter((d) => d.doseSummationType === "PLAN").length, 1);
        assert.equal(plan.doses.filter((d) => d.doseSummationType === "BEAM").length, plan.beams.length);
        for (const rec of plan.records) {
          const r = read(dirA, rec.path);
          assert.equal(r.string("SOPClassUID"), RT_SOP_CLASSES.RTBeamsTreatmentRecord);
          assert.equal(r.items("ReferencedRTPlanSequence")[0].string("ReferencedSOPInstanceUID"), plan.planUid);
          assert.equal(r.items("TreatmentMachineSequence")[0].string("TreatmentMachineName"), rec.machine);
          assert.ok(r.items("TreatmentSessionBeamSequence").length >= 1);
        }
        for (const img of plan.rtImages) {
          const r = read(dirA, img.path);
          assert.equal(r.string("RTImageLabel"), img.label);
          assert.equal(r.items("ReferencedRTPlanSequence")[0].string("ReferencedSOPInstanceUID"), plan.planUid);
          assert.ok(r.get("PixelData")?.value?.length);
        }
        for (const reg of plan.registrations) {
          const r = read(dirA, reg.path);
          assert.deepEqual(r.items("RegistrationSequence").map((i) => i.string("FrameOfReferenceUID")), [ct.frameOfReferenceUid, mr.frameOfReferenceUid]);
          assert.deepEqual(reg.frameOfReferenceUids, [ct.frameOfReferenceUid, mr.frameOfReferenceUid]);
          assert.equal(r.items("ReferencedSeriesSequence")[0].string("SeriesInstanceUID"), ct.seriesUid);
          const other = r.items("StudiesContainingOtherReferencedInstancesSequence")[0];
          assert.equal(other.string("StudyInstanceUID"), p.studies[1].studyUid);
          assert.equal(other.items("ReferencedSeriesSequence")[0].string("SeriesInstanceUID"), mr.seriesUid);
          assert.equal(r.items("RegistrationSequence")[1].items("MatrixRegistrationSequence")[0].items("MatrixSequence")[0].strings("FrameOfReferenceTransformationMatrix").length, 16);
        }
        for (const path of [plan.path, ...plan.doses.map((d) => d.path), ...plan.records.map((r) => r.path), ...plan.rtImages.map((r) => r.path)]) {
          assert.ok(statSync(join(dirA, path)).size > 0, path);
        }
      }
      // The MR series is referenced by no plan: no plan's structure set, dose or record names it.
      assert.deepEqual(p.unreferenced.map((u) => u.seriesUid), [mr.seriesUid]);
      assert.ok(p.plans.every((pl) => pl.imageSeries.every((s) => s.seriesUid !== mr.seriesUid)));
      assert.notEqual(mr.frameOfReferenceUid, ct.frameOfReferenceUid);
      for (const i of ct.instances) {
        const d = read(dirA, i.path);
        assert.equal(d.string("FrameOfReferenceUID"), ct.frameOfReferenceUid);
        assert.equal(d.strings("ImagePositionPatient").length, 3);
        assert.equal(d.get("PixelData")?.value?.length, OPTIONS.size * OPTIONS.size * 2);
      }
    }
  });

  it("states the Frame of Reference each series' files carry", () => {
    for (const p of a.patients) {
      for (const se of p.studies.flatMap((s) => s.series)) {
        assert.equal(se.frameOfReferenceUid === undefined, se.modality === "RTRECORD", `${p.patientId} ${se.modality}`);
        for (const i of se.instances) assert.equal(readDicomFile(join(dirA, i.path)).dataset.string("FrameOfReferenceUID"), se.frameOfReferenceUid, i.path);
      }
    }
  });

  it("puts path-unsafe characters in a patient name and a plan label", () => {
    assert.ok(a.patients.some((p) => /[/:]/.test(p.name) && p.name.includes("..")));
    assert.ok(a.patients.flatMap((p) => p.plans).some((p) => /[/:]/.test(p.label) && p.label.includes("..")));
  });

  it("writes names that decode back to the intended text in each character set", () => {
    const charsets = a.patients.map((p) => p.charset.join("\\"));
    for (const cs of ["ISO_IR 100", "ISO_IR 192", "\\ISO 2022 IR 87", "\\ISO 2022 IR 149", "\\ISO 2022 IR 58"]) {
      assert.ok(charsets.includes(cs), cs);
    }
    assert.equal(a.patients[2].name, "Yamada^Tarou=山田^太郎=やまだ^たろう");
    for (const p of a.patients) {
      for (const inst of [p.studies[0].series[0].instances[0], p.studies[1].series[0].instances[1], p.plans[0]]) {
        const ds = readDicomFile(join(dirA, inst.path)).dataset;
        assert.equal(ds.string("PatientName"), p.name, `${p.patientId} ${inst.path}`);
        assert.equal(Buffer.from(ds.get("PatientName")!.value!).toString("hex").replace(/20$/, ""), p.nameBytesHex);
        assert.deepEqual(ds.strings("SpecificCharacterSet"), p.charset);
        assert.equal(ds.string("PatientID"), p.patientId);
        assert.equal(ds.string("PatientBirthDate"), p.birthDate.replace(/-/g, ""));
      }
    }
  });

  it("carries a private creator and a private sequence with nested items", () => {
    for (const inst of allInstances(a).filter((_, i) => i % 7 === 0)) {
      const f = readDicomFile(join(dirA, inst.path), { full: true });
      const ds = f.dataset;
      const text = (tag: number, d: DataSet = ds) => new TextDecoder().decode(d.get(tag)?.value).trimEnd();
      // Implicit VR files carry private values as UN (no dictionary knows them): compare bytes as text.
      assert.equal(text(0x32530010), "RTEXPORT TEST 1.0", inst.path);
      assert.match(text(0x32531001), new RegExp(inst.patient.patientId));
      const items = ds.items(0x32531002);
      assert.equal(items.length, 2, inst.path);
      assert.equal(text(0x32530010, items[0]), "RTEXPORT TEST 1.0");
      assert.equal(items[0].items(0x32531004)[0].string("CodeValue"), "RTX001");
    }
  });

  it("writes MR slices in big endian and implicit VR, the rest mostly explicit little endian", () => {
    for (const p of a.patients) {
      const mr = p.studies[1].series[0].instances;
      assert.equal(mr[0].transferSyntaxUid, EXPLICIT_VR_BIG_ENDIAN);
      assert.equal(mr[1].transferSyntaxUid, IMPLICIT_VR_LITTLE_ENDIAN);
      for (const i of mr.slice(0, 2)) {
        const f = readDicomFile(join(dirA, i.path), { full: true });
        assert.equal(f.transferSyntaxUid, i.transferSyntaxUid);
        assert.equal(f.dataset.number("Rows"), 16);
        assert.equal(f.dataset.string("SOPInstanceUID"), i.sopInstanceUid);
      }
    }
  });

  it("is parsed without complaint by DCMTK's dcmdump, which sees what lib/dicom reads", () => {
    const files = listFiles(dirA).filter((f) => f.endsWith(".dcm"));
    for (let i = 0; i < files.length; i += 100) {
      const r = spawnSync("dcmdump", ["-q", ...files.slice(i, i + 100)], { encoding: "utf8", maxBuffer: 64 << 20, timeout: 60_000 });
      assert.equal(r.error, undefined, String(r.error));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, "");
    }
    const dumps = runDcmdumpMany(files);
    for (const f of files) {
      const ours = readDicomFile(f, { full: true });
      const theirs = dumps.get(f)!;
      assert.deepEqual([...compareRows(rowsOf(ours.meta), theirs.meta), ...compareRows(rowsOf(ours.dataset), theirs.dataset)], [], f);
    }
  });

  it("writes names DCMTK decodes to the intended text (where its iconv knows the character set)", () => {
    // DCMTK's iconv backend here has no ISO 2022 IR 87; that name is checked against the bytes
    // of the PS3.5 H.3.1 example instead.
    const supported = a.patients.filter((p) => !p.charset.includes("ISO 2022 IR 87"));
    const files = supported.map((p) => join(dirA, p.studies[0].series[0].instances[0].path));
    const dumps = runDcmdumpMany(files, { utf8: true });
    supported.forEach((p, i) => {
      const row = dumps.get(files[i])!.dataset.find((r) => r.path === "(0010,0010)");
      assert.equal(row?.value, `[${p.name}]`, p.patientId);
    });
    const yamada = a.patients.find((p) => p.charset.includes("ISO 2022 IR 87"))!;
    assert.equal(yamada.nameBytesHex,
      "59616d6164615e5461726f753d1b24423b3345441b28425e1b244242404f3a1b28423d1b24422464245e24401b28425e1b2442243f246d24261b2842");
  });

  it("leaves only the files the new manifest lists when re-run with other options", async () => {
    const out = join(root, "rerun");
    await generateClinic({ out, patients: 3, slices: 4, size: 8, seed: 1 });
    const m = await generateClinic({ out, patients: 2, slices: 2, size: 8, seed: 2 });
    const listed = allInstances(m).map((i) => i.path).sort();
    const written = listFiles(out).map((f) => relative(out, f).split(sep).join("/")).filter((p) => p !== "manifest.json");
    assert.deepEqual(written, listed);
    assert.equal(existsSync(join(out, "RTX0003")), false);
  });

  it("refuses a non-empty directory that holds no clinic", async () => {
    const out = join(root, "occupied");
    mkdirSync(out);
    writeFileSync(join(out, "notes.txt"), "mine");
    await assert.rejects(generateClinic({ out, patients: 1 }), new RegExp(`Cannot generate a clinic into ".*occupied": the directory is not empty and has no manifest.json of a previous clinic`));
    assert.deepEqual(readdirSync(out), ["notes.txt"]);
  });

  it("rejects impossible options with a clear message", async () => {
    await assert.rejects(generateClinic({ out: join(root, "x"), patients: 0 }), /patients must be a positive integer, got 0/);
    await assert.rejects(generateClinic({ out: join(root, "x"), size: 2 }), /size must be an integer from 8 to 4096, got 2/);
  });
});
