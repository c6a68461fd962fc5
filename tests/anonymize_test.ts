// anonymize: PS3.15 Annex E de-identification checked against real tools (dciodvfy) and by what a
// user would see: records out, exit codes, stderr lines, bytes on disk, references that resolve.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../commands/anonymize.ts";
import {
  anonymizeDataSet, anonymizeToParts, createAnonymizeContext, encodeParts, parseProfileCsv, ProfileError, resolveCombined,
  resolveProfile, SUPPLEMENT_ROWS,
} from "../lib/anonymize/mod.ts";
import { DataSet, textElement } from "../lib/dicom/dataset.ts";
import { parseDicom, readDicomFile } from "../lib/dicom/reader.ts";
import { buildMeta, encodeFile } from "../lib/dicom/writer.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { buildReferenceTree, summarizeObject } from "../lib/rt/mod.ts";
import { anonymizeRecords } from "../lib/anonymize/stage.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { ledgerItems, replacePaths, runLibraryStage } from "./_stage_compare.ts";

const KEY = "test-key-0123456789abcdef";
const OTHER_KEY = "another-key-0123456789abcdef";

interface Run {
  code: number;
  // deno-lint-ignore no-explicit-any -- parsed NDJSON, checked field by field
  records: Record<string, any>[];
  stderr: string;
}

async function anonymize(argv: string[], stdinLines?: string[]): Promise<Run> {
  let out = "";
  let err = "";
  const stdout = {
    isTTY: false,
    write(chunk: string) { out += chunk; return true; },
    once() {}, on() {}, removeListener() {},
  };
  const stdin = stdinLines
    ? Object.assign((async function* () { for (const l of stdinLines) yield l + "\n"; })(), { isTTY: false })
    : Object.assign((async function* () {})(), { isTTY: true });
  const code = await main(argv, { stdout, stderr: { write: (t: string) => { err += t; return true; } }, stdin, env: {}, cwd: process.cwd() });
  const records = out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
  return { code, records, stderr: err };
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith(".dcm") ? [join(dir, e.name)] : []
  ).sort();
}

function text(ds: DataSet, tag: string): string | undefined {
  return ds.string(tag);
}

function putText(ds: DataSet, tag: number, vr: string, value: string): void {
  ds.set(textElement(tag, vr, value));
}

/** dciodvfy's error lines for a file, without the value-specific tail. */
function dciodvfyErrors(path: string): string[] {
  const r = spawnSync("dciodvfy", [path], { encoding: "utf8", timeout: 30_000 });
  if (r.error) throw r.error;
  return (r.stderr + r.stdout).split("\n").filter((l) => l.startsWith("Error")).map((l) => l.replace(/ - "[^"]*"$/, "").trim());
}

/** Runs dciodvfy on one output of each SOP class and transfer syntax and its input; fails on any new error line. */
function compareWithDciodvfy(run: Run): number {
  const seen = new Set<string>();
  let compared = 0;
  for (const r of run.records) {
    if (r.type !== "file") continue;
    const kind = `${r.sopClassUid}|${r.transferSyntaxUid}`;
    if (seen.has(kind)) continue;
    seen.add(kind);
    const before = new Set(dciodvfyErrors(r.anonymized.from));
    const added = dciodvfyErrors(r.path).filter((e) => !before.has(e));
    assert.deepEqual(added, [], `new dciodvfy errors for ${r.anonymized.from}`);
    compared++;
  }
  return compared;
}

let root: string;
let input: string;
let inputFiles: string[];
let first: Run;

before(async () => {
  root = mkdtempSync(join(tmpdir(), "rtexport-anon-"));
  input = join(root, "in");
  await generateClinic({ out: input, patients: 2, slices: 3, size: 16, seed: 7 });
  rmSync(join(input, "manifest.json"), { force: true });
  inputFiles = walk(input);
  first = await anonymize(["--key", KEY, "--out", join(root, "out1"), input]);
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("anonymize: default profile on a synthetic clinic", () => {
  it("writes one file record per input, with the file's real size and sha256", () => {
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.records.length, inputFiles.length);
    const froms = first.records.map((r) => r.anonymized.from).sort();
    assert.deepEqual(froms, inputFiles);
    for (const r of first.records) {
      assert.equal(r.type, "file");
      assert.equal(r.category, "dicom");
      const bytes = readFileSync(r.path);
      assert.equal(r.bytes, bytes.length);
      assert.equal(r.sha256, createHash("sha256").update(bytes).digest("hex"));
      assert.match(r.sopInstanceUid, /^2\.25\.\d+$/);
      assert.ok(r.sopInstanceUid.length <= 64);
      assert.match(r.patientId, /^ANON-[0-9A-F]{10}$/);
      assert.ok(r.path.endsWith(`${r.sopInstanceUid}.dcm`));
      const f = readDicomFile(r.path);
      assert.equal(f.meta.string("MediaStorageSOPInstanceUID"), r.sopInstanceUid);
      assert.equal(f.dataset.string("SOPInstanceUID"), r.sopInstanceUid);
      assert.equal(f.dataset.string("PatientIdentityRemoved"), "YES");
      assert.equal(f.dataset.items("DeidentificationMethodCodeSequence")[0].string("CodeValue"), "113100");
    }
  });

  it("finds none of the inputs' identifying values anywhere in the output bytes", () => {
    const needles = new Set<string>();
    for (const path of inputFiles) {
      const ds = readDicomFile(path).dataset;
      for (const kw of ["PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber", "StationName", "StudyID"]) {
        const v = text(ds, kw);
        if (v && v.length >= 4) needles.add(v);
      }
      for (const kw of ["PatientName", "ReferringPhysicianName", "OperatorsName"]) {
        for (const part of (text(ds, kw) ?? "").split(/[\^=]/)) if (part.trim().length >= 3) needles.add(part.trim());
      }
    }
    assert.ok(needles.size >= 8, `too few identifying values collected: ${[...needles].length}`);
    const outputs = first.records.map((r) => readFileSync(r.path));
    for (const needle of needles) {
      const forms = [Buffer.from(needle, "utf8"), Buffer.from(needle, "latin1")];
      for (let i = 0; i < outputs.length; i++) {
        for (const form of forms) {
          assert.equal(outputs[i].indexOf(form), -1, `"${needle}" found in ${first.records[i].anonymized.from}`);
        }
      }
    }
  });

  it("keeps pixel data byte for byte", () => {
    for (const r of first.records) {
      const out = readDicomFile(r.path, { full: true }).dataset.get("PixelData");
      const src = readDicomFile(r.anonymized.from, { full: true }).dataset.get("PixelData");
      assert.equal(!!out, !!src);
      if (src?.value) assert.deepEqual(out!.value, src.value);
    }
  });

  it("remaps every UID consistently, so the RT reference tree has the same shape", () => {
    const shape = (paths: string[]) => {
      const tree = buildReferenceTree(paths.map((p) => summarizeObject(readDicomFile(p), p)));
      return tree.patients.map((pt) => ({
        plans: pt.plans.map((pl) => ({
          beams: pl.beams,
          structureSet: pl.structureSet ? pl.structureSet.imageSeries.map((s) => `${s.modality}:${s.count}`).sort() : null,
          doses: pl.doses.length, records: pl.records.length, images: pl.images.length,
          registrations: pl.registrations.length, missing: pl.missing.length,
        })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        unconnected: pt.unconnected.objects.map((o) => `${o.modality}:${o.count}`).sort(),
      })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    };
    const before = shape(inputFiles);
    const afterShape = shape(first.records.map((r) => r.path));
    assert.ok(before.some((p) => p.plans.length > 0));
    assert.deepEqual(afterShape, before);
  });

  it("keeps direct references resolvable: RTPLAN → RTSTRUCT → CT, RTDOSE → RTPLAN", () => {
    const out = first.records.map((r) => ({ r, ds: readDicomFile(r.path).dataset }));
    const uids = new Set(out.map((o) => o.r.sopInstanceUid));
    let checked = 0;
    for (const { ds } of out) {
      const modality = ds.string("Modality");
      const refs: string[] = [];
      if (modality === "RTPLAN") for (const i of ds.items("ReferencedStructureSetSequence")) refs.push(i.string("ReferencedSOPInstanceUID")!);
      if (modality === "RTDOSE") for (const i of ds.items("ReferencedRTPlanSequence")) refs.push(i.string("ReferencedSOPInstanceUID")!);
      if (modality === "RTSTRUCT") {
        for (const f of ds.items("ReferencedFrameOfReferenceSequence")) {
          for (const s of f.items("RTReferencedStudySequence")) {
            for (const se of s.items("RTReferencedSeriesSequence")) {
              for (const c of se.items("ContourImageSequence")) refs.push(c.string("ReferencedSOPInstanceUID")!);
            }
          }
        }
      }
      for (const ref of refs) {
        assert.ok(ref.startsWith("2.25."), `reference ${ref} was not remapped`);
        assert.ok(uids.has(ref), `${modality} references ${ref}, which is not among the outputs`);
        checked++;
      }
    }
    assert.ok(checked >= 6, `only ${checked} references checked`);
  });

  it("keeps SOP Class and other standard UIDs", () => {
    for (const r of first.records) {
      const src = readDicomFile(r.anonymized.from).dataset;
      assert.equal(r.sopClassUid, src.string("SOPClassUID"));
      assert.equal(r.transferSyntaxUid, readDicomFile(r.anonymized.from).transferSyntaxUid);
    }
  });

  it("adds no dciodvfy errors (one file of each SOP class and transfer syntax, input vs output)", () => {
    assert.ok(compareWithDciodvfy(first) >= 8);
  });

  it("removes private attributes and their creators", () => {
    for (const r of first.records) {
      const ds = readDicomFile(r.path, { full: true }).dataset;
      const priv = [...ds.elements.keys()].filter((t) => ((t >>> 16) & 1) === 1);
      assert.deepEqual(priv, []);
    }
  });
});

describe("anonymize: determinism", () => {
  it("gives byte-identical output for the same key, and other UIDs for another key", async () => {
    const again = await anonymize(["--key", KEY, "--out", join(root, "out2"), input]);
    assert.equal(again.code, 0);
    const sums = (run: Run) => run.records.map((r) => `${r.anonymized.from} ${r.sha256} ${r.sopInstanceUid}`).sort();
    assert.deepEqual(sums(again), sums(first));
    const other = await anonymize(["--key", OTHER_KEY, "--out", join(root, "out3"), input]);
    assert.equal(other.code, 0);
    const firstUids = new Set(first.records.flatMap((r) => [r.sopInstanceUid, r.studyUid, r.seriesUid]));
    for (const r of other.records) {
      assert.ok(!firstUids.has(r.sopInstanceUid));
      assert.ok(!firstUids.has(r.seriesUid));
    }
    assert.notEqual(other.records[0].patientId, first.records.find((r) => r.anonymized.from === other.records[0].anonymized.from)!.patientId);
  });
});

describe("anonymize: options", () => {
  it("with --retain-dates modified shifts every date of a patient by the same whole number of weeks", async () => {
    const run = await anonymize(["--key", KEY, "--retain-dates", "modified", "--out", join(root, "dates"), input]);
    assert.equal(run.code, 0, run.stderr);
    const shifts = new Map<string, Set<number>>();
    for (const r of run.records) {
      const src = readDicomFile(r.anonymized.from).dataset;
      const out = readDicomFile(r.path).dataset;
      assert.equal(out.string("LongitudinalTemporalInformationModified"), "MODIFIED");
      const a = src.string("StudyDate"), b = out.string("StudyDate");
      assert.ok(a && b, "StudyDate kept");
      const days = (Date.UTC(+a.slice(0, 4), +a.slice(4, 6) - 1, +a.slice(6)) - Date.UTC(+b.slice(0, 4), +b.slice(4, 6) - 1, +b.slice(6))) / 86_400_000;
      assert.ok(days > 0 && days % 7 === 0, `shift ${days}`);
      const set = shifts.get(r.patientId) ?? new Set();
      set.add(days);
      shifts.set(r.patientId, set);
      const codes = out.items("DeidentificationMethodCodeSequence").map((i) => i.string("CodeValue"));
      assert.deepEqual(codes, ["113100", "113107"]);
    }
    for (const s of shifts.values()) assert.equal(s.size, 1);
  });

  it("keeps institution and device identity, descriptors and UIDs only when asked", async () => {
    const run = await anonymize([
      "--key", KEY, "--retain-institution-identity", "--retain-device-identity", "--clean-descriptors", "--retain-uids",
      "--retain-patient-characteristics", "--retain-dates", "modified", "--clean-structured-content", "--clean-graphics",
      "--retain-safe-private", "--out", join(root, "opts"), input,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(compareWithDciodvfy(run) >= 8);
    for (const r of run.records) {
      const src = readDicomFile(r.anonymized.from).dataset;
      const out = readDicomFile(r.path).dataset;
      assert.equal(out.string("InstitutionName"), src.string("InstitutionName"));
      assert.equal(out.string("StationName"), src.string("StationName"));
      assert.equal(out.string("SOPInstanceUID"), src.string("SOPInstanceUID"));
      assert.equal(out.string("SeriesDescription"), src.string("SeriesDescription"));
      assert.equal(out.string("PatientSex"), src.string("PatientSex"));
      assert.equal(out.string("ReferringPhysicianName"), undefined);
      if (src.string("Modality") === "RTPLAN") {
        const machines = (ds: DataSet) => ds.items("BeamSequence").map((b) => b.string("TreatmentMachineName"));
        assert.deepEqual(machines(out), machines(src));
        assert.equal(out.string("RTPlanLabel"), src.string("RTPlanLabel"));
      }
    }
  });

  it("applies --map and writes the mapping only with --write-map", async () => {
    const ids = [...new Set(inputFiles.map((p) => readDicomFile(p).dataset.string("PatientID")!))].sort();
    const mapFile = join(root, "map.csv");
    writeFileSync(mapFile, `old_id,new_id,new_name\n${ids[0]},STUDY-001,Study^One\n`);
    const written = join(root, "written-map.csv");
    const run = await anonymize(["--key", KEY, "--map", mapFile, "--write-map", written, "--out", join(root, "mapped"), input]);
    assert.equal(run.code, 0, run.stderr);
    const byOld = new Map<string, string>();
    for (const r of run.records) byOld.set(readDicomFile(r.anonymized.from).dataset.string("PatientID")!, r.patientId);
    assert.equal(byOld.get(ids[0]), "STUDY-001");
    assert.match(byOld.get(ids[1])!, /^ANON-/);
    const out = readDicomFile(run.records.find((r) => r.patientId === "STUDY-001")!.path).dataset;
    assert.equal(out.string("PatientName"), "Study^One");
    const lines = readFileSync(written, "utf8").trim().split("\n");
    assert.deepEqual(lines, ["old_id,new_id,new_name", `${ids[0]},STUDY-001,Study^One`, `${ids[1]},${byOld.get(ids[1])},${byOld.get(ids[1])}`]);
    assert.equal(existsSync(join(root, "out1", "map.csv")), false);
  });

  it("applies a profile CSV that overrides rows", async () => {
    const profile = join(root, "profile.csv");
    writeFileSync(profile, [
      "tag,action",
      "# drop the manufacturer, keep the study description",
      "(0008,0070),X",
      "StudyDescription,K",
      "# a private attribute that repeats the patient ID: keep it, cleaned",
      '(3253,xx01),C,"RTEXPORT TEST 1.0"',
    ].join("\n"));
    const run = await anonymize(["--key", KEY, "--profile", profile, "--out", join(root, "profiled"), inputFiles[0]]);
    assert.equal(run.code, 0, run.stderr);
    const src = readDicomFile(inputFiles[0]).dataset;
    const out = readDicomFile(run.records[0].path).dataset;
    assert.equal(out.has("Manufacturer"), false);
    assert.equal(out.string("StudyDescription"), src.string("StudyDescription"));
    const pid = src.string("PatientID")!;
    assert.ok(src.string(0x32531001)!.includes(pid));
    assert.equal(out.string(0x32530010), "RTEXPORT TEST 1.0");
    assert.equal(out.string(0x32531001), src.string(0x32531001)!.replace(pid, "ANON"));
    assert.equal(out.has(0x32531002), false); // other elements of the block still removed
  });
});

describe("anonymize: bad input", () => {
  it("refuses to run without a key (exit 2)", async () => {
    const run = await anonymize(["--out", join(root, "nokey"), input]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /A key is required/);
    assert.equal(existsSync(join(root, "nokey")), false);
  });

  it("names the line of a malformed profile CSV (exit 2)", async () => {
    const profile = join(root, "bad.csv");
    writeFileSync(profile, "(0008,0070),X\n\n(0010,0010),Q\n");
    const run = await anonymize(["--key", KEY, "--profile", profile, "--out", join(root, "badprofile"), input]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /Cannot read profile ".*bad\.csv": line 3: unknown action "Q"/);
    assert.throws(() => parseProfileCsv("0010,0010,X,Y,Z\n", "p"), (e) => e instanceof ProfileError && /line 1/.test(e.message));
    assert.throws(() => parseProfileCsv("NoSuchKeyword,X\n", "p"), /line 1: "NoSuchKeyword" is not a tag or keyword/);
  });

  it("reports an unreadable file with its name and exits 3; nothing partial appears", async () => {
    const dir = join(root, "mixed");
    const good = join(dir, "good.dcm");
    const truncated = join(dir, "truncated.dcm");
    const bytes = readFileSync(inputFiles[0]);
    spawnSync("mkdir", ["-p", dir]);
    writeFileSync(good, bytes);
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const out = join(root, "mixed-out");
    const run = await anonymize(["--key", KEY, "--out", out, dir]);
    assert.equal(run.code, 3);
    assert.equal(run.records.length, 1);
    assert.match(run.stderr, /Cannot read DICOM file ".*truncated\.dcm": unexpected end of data at offset \d+/);
    assert.doesNotMatch(run.stderr, /at .*\.ts:\d+/); // no stack trace
    const written = walk(out);
    assert.deepEqual(written, [run.records[0].path]);
    assert.deepEqual(readdirSync(dir).sort(), ["good.dcm", "truncated.dcm"]); // inputs untouched, no temp files
  });

  it("refuses burned-in annotation and unlabelled secondary captures unless --allow-burned-in", async () => {
    const dir = join(root, "burned");
    spawnSync("mkdir", ["-p", dir]);
    const ct = readDicomFile(inputFiles.find((p) => readDicomFile(p).dataset.string("Modality") === "CT")!, { full: true });
    putText(ct.dataset, 0x00280301, "CS", "YES");
    writeFileSync(join(dir, "burned.dcm"), encodeFile(ct.dataset, { transferSyntaxUid: ct.transferSyntaxUid }));
    const sc = new DataSet();
    putText(sc, 0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7");
    putText(sc, 0x00080018, "UI", "1.2.3.4.5.6.7");
    putText(sc, 0x00080060, "CS", "OT");
    putText(sc, 0x00100010, "PN", "Screen^Shot");
    putText(sc, 0x00100020, "LO", "SC123456");
    writeFileSync(join(dir, "screenshot.dcm"), encodeFile(sc));
    const refused = await anonymize(["--key", KEY, "--out", join(root, "burned-out"), dir]);
    assert.equal(refused.code, 3);
    assert.equal(refused.records.length, 0);
    assert.match(refused.stderr, /Refused ".*burned\.dcm": Burned In Annotation is YES/);
    assert.match(refused.stderr, /Refused ".*screenshot\.dcm": a secondary capture \(screenshot\) without Burned In Annotation = NO/);
    const allowed = await anonymize(["--key", KEY, "--allow-burned-in", "--out", join(root, "burned-out2"), dir]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(allowed.records.length, 2);
  });

  it("mirrors input paths with --layout mirror, and names a missing input", async () => {
    const out = join(root, "mirror-out");
    const missing = join(root, "no-such-file.dcm");
    const run = await anonymize(["--key", KEY, "--layout", "mirror", "--out", out, input, missing]);
    assert.equal(run.code, 3);
    assert.match(run.stderr, /Cannot read DICOM file ".*no-such-file\.dcm": no such file/);
    const rel = (p: string, base: string) => p.slice(base.length + 1);
    assert.deepEqual(run.records.map((r) => rel(r.path, out)).sort(), inputFiles.map((p) => rel(p, input)).sort());
  });

  it("copies encapsulated (compressed) pixel data fragment by fragment", async () => {
    const dir = join(root, "jpeg");
    spawnSync("mkdir", ["-p", dir]);
    const ct = readDicomFile(inputFiles.find((p) => readDicomFile(p).dataset.string("Modality") === "CT")!, { full: true });
    const ds = ct.dataset;
    const fragments = [new Uint8Array(0), Uint8Array.from({ length: 301 }, (_, i) => (i * 7) & 0xff), Uint8Array.of(0xff, 0xd9)];
    ds.set({ tag: 0x7fe00010, vr: "OB", fragments, undefinedLength: true, offset: 0, length: 0 });
    const jpeg = "1.2.840.10008.1.2.4.50";
    writeFileSync(join(dir, "ct.dcm"), encodeFile(ds, { transferSyntaxUid: jpeg }));
    const run = await anonymize(["--key", KEY, "--out", join(root, "jpeg-out"), dir]);
    assert.equal(run.code, 0, run.stderr);
    const out = readDicomFile(run.records[0].path, { full: true });
    assert.equal(out.transferSyntaxUid, jpeg);
    const got = out.dataset.get("PixelData")!.fragments!;
    assert.equal(got.length, 3);
    assert.deepEqual([...got[1].subarray(0, 301)], [...fragments[1]]);
    assert.deepEqual([...got[2]], [0xff, 0xd9]);
  });

  it("refuses to write two different inputs to one output path; a byte-identical copy is the same object", async () => {
    const dir = join(root, "dupes");
    spawnSync("mkdir", ["-p", join(dir, "a"), join(dir, "b"), join(dir, "c")]);
    writeFileSync(join(dir, "a", "x.dcm"), readFileSync(inputFiles[0]));
    writeFileSync(join(dir, "b", "x.dcm"), readFileSync(inputFiles[0])); // the same object, byte for byte
    const other = readDicomFile(inputFiles[0], { full: true });
    putText(other.dataset, 0x00081030, "LO", "another version"); // same SOP Instance UID, other content
    writeFileSync(join(dir, "c", "x.dcm"), encodeFile(other.dataset, { transferSyntaxUid: other.transferSyntaxUid }));
    const run = await anonymize(["--key", KEY, "-v", "--out", join(root, "dupes-out"), dir]);
    assert.equal(run.code, 3);
    assert.equal(run.records.length, 1);
    assert.match(run.stderr, /Skipped ".*b\/x\.dcm": the same object as ".*a\/x\.dcm" \(byte for byte\), written once as ".*"/);
    assert.match(run.stderr, /Cannot write ".*": ".*c\/x\.dcm" has the same SOP Instance UID as ".*a\/x\.dcm"/);
    assert.match(run.stderr, /anonymize: 1 files done, 1 skipped \(1 identical\), 1 failed/);
  });

  it("writes to the input only with --in-place", async () => {
    const dir = join(root, "inplace");
    spawnSync("mkdir", ["-p", dir]);
    const path = join(dir, "a.dcm");
    writeFileSync(path, readFileSync(inputFiles[0]));
    const mirror = await anonymize(["--key", KEY, "--layout", "mirror", "--out", dir, dir]);
    assert.equal(mirror.code, 3);
    assert.match(mirror.stderr, /it is the input file; use --in-place/);
    const inPlace = await anonymize(["--key", KEY, "--in-place", path]);
    assert.equal(inPlace.code, 0, inPlace.stderr);
    assert.equal(inPlace.records[0].path, path);
    assert.equal(readDicomFile(path).dataset.string("PatientIdentityRemoved"), "YES");
    assert.deepEqual(readdirSync(dir), ["a.dcm"]);
  });
});

describe("anonymize: records on stdin", () => {
  it("anonymizes file records, de-identifies patient and plan records, passes other records through", async () => {
    const src = readDicomFile(inputFiles[0]).dataset;
    const pid = src.string("PatientID")!;
    const lines = [
      JSON.stringify({ type: "patient", patientId: pid, name: { family: "Müller", given: "Jörg" }, birthDate: "1982-02-10", sex: "M" }),
      JSON.stringify({ type: "plan", patientId: pid, planUid: "1.2.3.4", label: "SMITH PLAN", approval: "APPROVED", machines: ["TB1"] }),
      JSON.stringify({ type: "file", path: inputFiles[0], category: "rt-object" }),
      JSON.stringify({ type: "file", path: "/nowhere/report.pdf", category: "document" }),
      JSON.stringify({ type: "note", text: "kept" }),
    ];
    const run = await anonymize(["--key", KEY, "-v", "--out", join(root, "stdin-out")], lines);
    assert.equal(run.code, 0, run.stderr); // the document is counted, never written
    assert.match(run.stderr, /Skipped "\/nowhere\/report\.pdf": a document file is not DICOM: left out of the anonymized output/);
    assert.match(run.stderr, /anonymize: 1 files done, 1 skipped \(1 not DICOM\), 0 failed/);
    const [patient, plan, file, note] = run.records;
    const newId = file.patientId;
    assert.deepEqual(patient, { type: "patient", patientId: newId, name: { family: newId } });
    assert.equal(plan.patientId, newId);
    assert.match(plan.planUid, /^2\.25\./);
    assert.equal(plan.label, undefined);
    assert.equal(plan.machines, undefined);
    assert.equal(plan.approval, "APPROVED");
    assert.equal(file.type, "file");
    assert.equal(file.category, "rt-object"); // export-plan's category rides through
    assert.deepEqual(note, { type: "note", text: "kept" });
    assert.equal(run.records.length, 4);
  });
});

describe("anonymize: the library stage is the command", () => {
  // The same input through `rtexport anonymize` and through anonymizeRecords(): the same
  // records (paths aside: each run writes under its own --out) and the same ledger rows.
  it("gives the same records, ledger rows and patient map from stdin records as the CLI", async () => {
    const src = readDicomFile(inputFiles[0]).dataset;
    const pid = src.string("PatientID")!;
    const dir = join(root, "same");
    spawnSync("mkdir", ["-p", dir]);
    const truncated = join(dir, "truncated.dcm");
    writeFileSync(truncated, readFileSync(inputFiles[1]).subarray(0, 300));
    const input = [
      { type: "patient", patientId: pid, name: { family: "Müller", given: "Jörg" }, birthDate: "1982-02-10", sex: "M" },
      { type: "plan", patientId: pid, planUid: "1.2.3.4", label: "SMITH PLAN", name: "Smith", approval: "APPROVED", machines: ["TB1"] },
      ...inputFiles.slice(0, 6).map((path) => ({ type: "file", path })),
      { type: "file", path: truncated },
      { type: "file", path: "/nowhere/report.pdf", category: "document" },
      { type: "note", text: "kept" },
    ];
    const flags = ["--key", KEY, "--clean-descriptors", "--retain-patient-characteristics"];
    const cli = await anonymize([...flags, "--out", join(dir, "cli"), "--ledger", `sqlite:${join(dir, "cli.sqlite")}`, "--write-map", join(dir, "cli-map.csv")], input.map((r) => JSON.stringify(r)));
    assert.equal(cli.code, 3, cli.stderr); // the truncated file (the document is skipped)
    const lib = await runLibraryStage(anonymizeRecords, input, {
      key: KEY, cleanDescriptors: true, retainPatientCharacteristics: true, out: join(dir, "lib"), writeMap: join(dir, "lib-map.csv"),
    }, `sqlite:${join(dir, "lib.sqlite")}`, "anonymize");
    assert.equal(lib.records.length, 6 + 3);
    assert.deepEqual(replacePaths(lib.records, [[join(dir, "lib"), "OUT"]]), replacePaths(cli.records, [[join(dir, "cli"), "OUT"]]));
    const rows = await ledgerItems(`sqlite:${join(dir, "lib.sqlite")}`);
    assert.equal(rows.filter((r) => r.kind === "anonymize" && r.status === "done").length, 6);
    assert.equal(rows.filter((r) => r.kind === "anonymize" && r.status === "failed").length, 1);
    assert.equal(rows.filter((r) => r.kind === "anonymize" && r.status === "skipped").length, 1);
    assert.deepEqual(replacePaths(rows, [[join(dir, "lib"), "OUT"]]), replacePaths(await ledgerItems(`sqlite:${join(dir, "cli.sqlite")}`), [[join(dir, "cli"), "OUT"]]));
    assert.equal(readFileSync(join(dir, "lib-map.csv"), "utf8"), readFileSync(join(dir, "cli-map.csv"), "utf8"));
    const finished = lib.events.at(-1)!;
    assert.ok(finished.type === "finished");
    assert.deepEqual([finished.counts.done, finished.counts.skipped, finished.counts.failed], [6, 1, 1]);
  });

  it("gives the same records and ledger rows from paths (mirror layout) as the CLI", async () => {
    const dir = join(root, "same-paths");
    spawnSync("mkdir", ["-p", join(dir, "elsewhere")]);
    const single = join(dir, "elsewhere", "single.dcm");
    writeFileSync(single, readFileSync(inputFiles[0]));
    const cli = await anonymize(["--key", KEY, "--layout", "mirror", "--out", join(dir, "cli"), "--ledger", `sqlite:${join(dir, "cli.sqlite")}`, input, single]);
    assert.equal(cli.code, 0, cli.stderr);
    const lib = await runLibraryStage(anonymizeRecords, pathRecords([input, single]), {
      key: KEY, layout: "mirror", roots: [input, single], out: join(dir, "lib"),
    }, `sqlite:${join(dir, "lib.sqlite")}`, "anonymize");
    assert.equal(lib.records.length, inputFiles.length + 1);
    // The files under the folder keep their path under it; the file named itself its name only.
    assert.deepEqual(lib.records.map((r) => String(r.path).slice(join(dir, "lib").length + 1)), [...inputFiles.map((f) => f.slice(input.length + 1)), "single.dcm"]);
    assert.deepEqual(replacePaths(lib.records, [[join(dir, "lib"), "OUT"]]), replacePaths(cli.records, [[join(dir, "cli"), "OUT"]]));
    const rows = await ledgerItems(`sqlite:${join(dir, "lib.sqlite")}`);
    assert.equal(rows.length, inputFiles.length + 1);
    assert.deepEqual(replacePaths(rows, [[join(dir, "lib"), "OUT"]]), replacePaths(await ledgerItems(`sqlite:${join(dir, "cli.sqlite")}`), [[join(dir, "cli"), "OUT"]]));
  });

  it("applies the PHI rule to patient and plan records for a library user", async () => {
    const src = readDicomFile(inputFiles[0]).dataset;
    const pid = src.string("PatientID")!;
    const patient = { type: "patient", patientId: pid, name: { family: "Müller", given: "Jörg" }, birthDate: "1982-02-10", sex: "M", source: "catalog" };
    const plan = { type: "plan", patientId: pid, planUid: "1.2.3.4", label: "SMITH PLAN", name: "Smith boost", status: "Completed", approval: "APPROVED", machines: ["TB1"] };
    const run = async (options: Record<string, unknown>) => {
      const out: RtRecord[] = [];
      for await (const r of anonymizeRecords([patient, plan, { type: "file", path: inputFiles[0] }], { key: KEY, out: join(root, "phi-lib"), ...options })) out.push(r);
      return out;
    };
    const [p, pl, file] = await run({});
    const newId = String(file.patientId);
    assert.match(newId, /^ANON-/);
    assert.deepEqual(p, { type: "patient", patientId: newId, name: { family: newId } });
    assert.deepEqual(pl, { type: "plan", patientId: newId, planUid: pl.planUid, status: "Completed", approval: "APPROVED" });
    assert.match(String(pl.planUid), /^2\.25\./);
    assert.ok(!JSON.stringify([p, pl]).includes(pid), "the original patient ID leaves with neither record");
    // What the options keep, and only that.
    const [p2, pl2] = await run({ retainPatientCharacteristics: true, cleanDescriptors: true, retainDeviceIdentity: true, retainUids: true, newPatientId: "STUDY-7" });
    assert.deepEqual(p2, { type: "patient", patientId: "STUDY-7", name: { family: "STUDY-7" }, sex: "M" });
    assert.deepEqual(pl2, { type: "plan", patientId: "STUDY-7", planUid: "1.2.3.4", label: "SMITH PLAN", name: "Smith boost", status: "Completed", approval: "APPROVED", machines: ["TB1"] });
  });
});

describe("anonymizeDataSet: profile details", () => {
  function sample(): DataSet {
    const ds = new DataSet();
    putText(ds, 0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2");
    putText(ds, 0x00080018, "UI", "1.2.3.999.1");
    putText(ds, 0x00100010, "PN", "Doe^Jane");
    putText(ds, 0x00100020, "LO", "MRN12345");
    putText(ds, 0x00081030, "LO", "Study of Doe for MRN12345");
    // nested: a kept sequence whose items hold listed attributes two levels down
    const inner = new DataSet();
    putText(inner, 0x00321032, "PN", "Physician^Paul"); // Requesting Physician: X
    putText(inner, 0x00081155, "UI", "1.2.3.999.2");
    putText(inner, 0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2");
    const mid = new DataSet();
    mid.set({ tag: 0x00081199, vr: "SQ", items: [inner], offset: 0, length: 0 });
    putText(mid, 0x00400007, "LO", "Scheduled for Doe");
    ds.set({ tag: 0x300c0002, vr: "SQ", items: [mid], offset: 0, length: 0 }); // Referenced RT Plan Sequence: not listed, kept
    // overlay plane with data, a curve, private block with a safe-list entry
    ds.set({ tag: 0x60000010, vr: "US", value: Uint8Array.of(16, 0), offset: 0, length: 2 });
    ds.set({ tag: 0x60003000, vr: "OW", value: new Uint8Array(32), offset: 0, length: 32 });
    ds.set({ tag: 0x50000005, vr: "US", value: Uint8Array.of(1, 0), offset: 0, length: 2 });
    putText(ds, 0x00190010, "LO", "SIEMENS MR HEADER");
    putText(ds, 0x0019100c, "IS", "1000");
    putText(ds, 0x00191099, "LO", "MRN12345");
    ds.set({ tag: 0x00200000, vr: "UL", value: Uint8Array.of(1, 2, 3, 4), offset: 0, length: 4 });
    return ds;
  }

  it("carries every row of Table E.1-1 and applies options to it", () => {
    const basic = resolveProfile({});
    // 617 tags + curves, overlay data, overlay comments, private; and rtexport's supplement rows
    assert.equal(basic.byTag.size + 4, 621 + SUPPLEMENT_ROWS.length);
    assert.equal(basic.byTag.get(0x00100010), "Z");
    assert.equal(basic.byTag.get(0x00080018), "U");
    assert.equal(basic.privateDefault, "X");
    const all = resolveProfile({
      retainSafePrivate: true, retainUids: true, retainDeviceIdentity: true, retainInstitutionIdentity: true,
      retainPatientCharacteristics: true, retainLongitudinal: "modified", cleanDescriptors: true,
      cleanStructuredContent: true, cleanGraphics: true,
    });
    assert.equal(all.byTag.get(0x00080018), "K"); // retain UIDs
    assert.equal(all.byTag.get(0x00080020), "C"); // Study Date: modified
    assert.equal(all.byTag.get(0x00080080), "K"); // Institution Name
    assert.equal(all.byTag.get(0x300a00b2), "K"); // Treatment Machine Name: device identity
    assert.equal(all.byTag.get(0x30060026), "C"); // ROI Name: clean descriptors
    assert.equal(all.byTag.get(0x00101010), "K"); // Patient's Age
    assert.equal(all.byTag.get(0x00100010), "Z"); // Patient's Name: no option keeps it
    assert.equal(all.privateDefault, "C");
    assert.equal(all.overlayData, "C");
  });

  it("resolves combined actions per IOD type", () => {
    const CT = "1.2.840.10008.5.1.4.1.1.2", PLAN = "1.2.840.10008.5.1.4.1.1.481.5", REG = "1.2.840.10008.5.1.4.1.1.66.1";
    const table: [string, number, string | undefined, string][] = [
      ["X/D", 0x300a0006, PLAN, "D"], // RT Plan Date: Type 2 in RT General Plan, X not allowed → D
      ["X/D", 0x00080021, CT, "X"], // Series Date: Type 3
      ["Z/D", 0x00080023, REG, "D"], // Content Date: Type 1 in Spatial Registration
      ["Z/D", 0x00080023, CT, "Z"], // Content Date: Type 2C in General Image
      ["X/Z/D", 0x00081070, PLAN, "Z"], // Operators' Name: Type 2 in RT Series
      ["X/Z/D", 0x00081070, CT, "X"],
      ["X/Z/U*", 0x00081140, REG, "U"], // Referenced Image Sequence: Type 1C in Registration Sequence
      ["X/Z/U*", 0x00081140, CT, "X"],
      ["X/Z", 0x300a00b2, "1.2.3.unknown", "Z"], // unknown IOD: never removed
      ["X/D", 0x00080021, undefined, "D"],
    ];
    for (const [action, tag, sop, want] of table) {
      assert.equal(resolveCombined(action as never, tag, sop), want, `${action} ${tag.toString(16)} ${sop}`);
    }
  });

  it("handles nested sequences, wildcard rows, private blocks and group lengths", () => {
    const ds = sample();
    const ctx = createAnonymizeContext({ key: KEY });
    const ids = anonymizeDataSet(ds, ctx.options, ctx);
    assert.equal(ids.originalPatientId, "MRN12345");
    assert.equal(ds.string("PatientID"), ids.patientId);
    assert.equal(ds.has(0x00081030), false); // Study Description: X
    assert.equal(ds.has(0x60000010), false); // whole overlay plane goes with its data
    assert.equal(ds.has(0x60003000), false);
    assert.equal(ds.has(0x50000005), false); // curve
    assert.equal(ds.has(0x00190010), false); // private creator without kept elements
    assert.equal(ds.has(0x0019100c), false);
    assert.equal(ds.has(0x00200000), false); // group length
    const mid = ds.items(0x300c0002)[0];
    assert.equal(mid.has(0x00400007), false); // Scheduled Procedure Step Description: X
    const inner = mid.items(0x00081199)[0];
    assert.equal(inner.has(0x00321032), false);
    assert.equal(inner.string(0x00081155), ctx.uid("1.2.3.999.2"));
    assert.equal(inner.string(0x00081150), "1.2.840.10008.5.1.4.1.1.2");
  });

  it("keeps safe private attributes with the option, and cleans descriptors", () => {
    const ds = sample();
    const ctx = createAnonymizeContext({ key: KEY, retainSafePrivate: true, cleanDescriptors: true });
    anonymizeDataSet(ds, ctx.options, ctx);
    assert.equal(ds.string(0x0019100c), "1000");
    assert.equal(ds.string(0x00190010), "SIEMENS MR HEADER");
    assert.equal(ds.has(0x00191099), false);
    assert.equal(ds.string(0x00081030), "Study of XXX for ANON"); // kept, identifying values removed
    const codes = ds.items("DeidentificationMethodCodeSequence").map((i) => i.string("CodeValue"));
    assert.deepEqual(codes, ["113100", "113105", "113111"]);
  });

  it("writes the same bytes as encodeFile when it passes pixel data through without copying", () => {
    const syntaxes = new Set<string>();
    for (const path of inputFiles) {
      const file = readDicomFile(path, { full: true });
      const sop = file.dataset.string("SOPClassUID")!, inst = file.dataset.string("SOPInstanceUID")!;
      const parts = encodeParts(file, sop, inst);
      const joined = Buffer.concat(parts);
      const expected = encodeFile(file.dataset, { meta: buildMeta(sop, inst, file.transferSyntaxUid), transferSyntaxUid: file.transferSyntaxUid });
      assert.ok(Buffer.from(expected).equals(joined), `different bytes for ${path}`);
      if (file.dataset.has("PixelData")) syntaxes.add(file.transferSyntaxUid);
    }
    assert.ok(syntaxes.size >= 2, `pixel data in only ${[...syntaxes]}`);
  });

  it("keeps overlays with --clean-graphics and structured content with --clean-structured-content, cleaned", () => {
    const withContent = (sopClass: string) => {
      const ds = sample();
      putText(ds, 0x00080016, "UI", sopClass);
      const item = new DataSet();
      putText(item, 0x0040a123, "PN", "Doe^Jane"); // Person Name in an SR content item: D
      putText(item, 0x0040a160, "UT", "Seen by Dr Physician for MRN12345"); // Text Value
      ds.set({ tag: 0x0040a730, vr: "SQ", items: [item], offset: 0, length: 0 }); // Content Sequence: D, C with the option
      return ds;
    };
    const ctx = createAnonymizeContext({ key: KEY, cleanGraphics: true, cleanStructuredContent: true });
    const sr = withContent("1.2.840.10008.5.1.4.1.1.88.33"); // Comprehensive SR: the content is the document
    anonymizeDataSet(sr, ctx.options, ctx);
    assert.equal(sr.items(0x60003000).length, 0);
    assert.equal(sr.get(0x60003000)?.value?.length, 32); // overlay data kept
    assert.equal(sr.has(0x60000010), true);
    assert.equal(sr.has(0x50000005), true); // curve kept
    const content = sr.items(0x0040a730)[0];
    assert.equal(content.string(0x0040a123), "ANONYMIZED");
    assert.equal(content.string(0x0040a160), "Seen by Dr ANON for ANON");
    const codes = sr.items("DeidentificationMethodCodeSequence").map((i) => i.string("CodeValue"));
    assert.deepEqual(codes, ["113100", "113103", "113104"]);
    // In a CT the Content Sequence is Type 3 and nobody's document: removed, whatever the options.
    const ct = withContent("1.2.840.10008.5.1.4.1.1.2");
    anonymizeDataSet(ct, ctx.options, ctx);
    assert.equal(ct.has(0x0040a730), false);
    // Without the option an SR keeps its structure; its free text becomes a dummy.
    const plain = withContent("1.2.840.10008.5.1.4.1.1.88.33");
    const basic = createAnonymizeContext({ key: KEY });
    anonymizeDataSet(plain, basic.options, basic);
    assert.equal(plain.items(0x0040a730)[0].string(0x0040a160), "ANONYMIZED");
  });

  it("anonymizes a data set received over the network into file bytes (for retrieve --anonymize)", () => {
    const file = readDicomFile(inputFiles[0], { full: true });
    const ctx = createAnonymizeContext({ key: KEY });
    const { ids, parts } = anonymizeToParts(file.dataset, file.transferSyntaxUid, ctx);
    const back = parseDicom(Buffer.concat(parts), { full: true });
    assert.equal(back.meta.string("MediaStorageSOPInstanceUID"), ids.sopInstanceUid);
    assert.equal(back.dataset.string("PatientID"), ids.patientId);
    assert.equal(back.transferSyntaxUid, file.transferSyntaxUid);
  });

  it("rejects a short key", () => {
    assert.throws(() => createAnonymizeContext({ key: "short" }), /too short/);
  });
});
