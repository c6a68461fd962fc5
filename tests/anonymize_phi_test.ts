// The de-identification audit of issue 15, as tests: identifiers planted where tools miss them
// (tests/_phi_plant.ts) into pydicom's CT, MR, RT plan/structure set/dose, US, SR, ECG and SC
// objects, written by DCMTK in Implicit and Explicit VR with Latin-1 and UTF-8 text; every
// output is scanned byte by byte and token by token, its dates checked against the patient's
// offset, and dciodvfy run on input and output.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../commands/anonymize.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import {
  DATES, daysBetween, dateValues, instanceUids, MARKERS, markersIn, nameTokensIn, type Planted, plantAll, SHORT_NAMES,
} from "./_phi_plant.ts";

const KEY = "phi-audit-key-0123456789abcdef";

interface Run {
  code: number;
  // deno-lint-ignore no-explicit-any -- parsed NDJSON, checked field by field
  records: Record<string, any>[];
  stderr: string;
}

async function anonymize(argv: string[]): Promise<Run> {
  let out = "";
  let err = "";
  const stdout = { isTTY: false, write(chunk: string) { out += chunk; return true; }, once() {}, on() {}, removeListener() {} };
  const stdin = Object.assign((async function* () {})(), { isTTY: true });
  const code = await main(argv, { stdout, stderr: { write: (t: string) => { err += t; return true; } }, stdin, env: {}, cwd: process.cwd() });
  return { code, records: out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)), stderr: err };
}

/** The option sets of the audit. */
const OPTION_SETS: Record<string, string[]> = {
  default: [],
  // the docs' typical RT choice, where the device option's K used to beat the date option's C
  "device+modified": ["--retain-device-identity", "--retain-dates", "modified"],
  cleaning: [
    "--clean-descriptors", "--clean-graphics", "--clean-structured-content", "--retain-safe-private",
    "--retain-device-identity", "--retain-dates", "modified",
  ],
  "rt-research": ["--preset", "rt-research"],
};

let root: string;
let inputs: Planted[];
const runs = new Map<string, Run>();

/** Output file of one input in one option set. */
function outputOf(set: string, input: Planted): string {
  const r = runs.get(set)!.records.find((x) => x.anonymized?.from === input.path);
  assert.ok(r, `no output for ${input.path} with ${set}: ${runs.get(set)!.stderr}`);
  return r.path;
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), "rtexport-phi-"));
  mkdirSync(join(root, "in"));
  inputs = plantAll(root);
  for (const [name, flags] of Object.entries(OPTION_SETS)) {
    const run = await anonymize(["--key", KEY, "--allow-burned-in", "--layout", "mirror", ...flags, "--out", join(root, `out-${name}`), join(root, "in")]);
    runs.set(name, run);
  }
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("anonymize: planted identifiers (issue 15 audit)", () => {
  it("writes every planted input in every option set", () => {
    assert.equal(inputs.length, 9 * 2 * 2);
    for (const [name, run] of runs) {
      assert.equal(run.code, 0, `${name}: ${run.stderr}`);
      assert.equal(run.records.length, inputs.length, name);
    }
  });

  it("leaves no planted identifier, issuer, other patient or copied UID in any output byte (UTF-8 or Latin-1)", () => {
    const markers = Object.values(MARKERS);
    for (const [name] of runs) {
      for (const input of inputs) {
        const found = markersIn(outputOf(name, input), markers);
        assert.deepEqual(found, [], `${name}: ${input.kind} ${input.encoding} ${input.charset}`);
      }
    }
  });

  it("leaves none of the input's own instance UIDs in any output byte", () => {
    for (const [name] of runs) {
      for (const input of inputs) {
        const uids = [...new Set(instanceUids(input.path))];
        assert.ok(uids.length >= 3, `${input.path}: ${uids.length} UIDs`);
        assert.deepEqual(markersIn(outputOf(name, input), uids), [], `${name}: ${input.kind} ${input.encoding} ${input.charset}`);
      }
    }
  });

  it("leaves no name (Lee, Ann, Jo, Max) as a word in any value, UN values of Implicit VR files included", () => {
    for (const [name] of runs) {
      for (const input of inputs) {
        assert.deepEqual(nameTokensIn(outputOf(name, input), SHORT_NAMES), [], `${name}: ${input.kind} ${input.encoding} ${input.charset}`);
      }
    }
  });

  it("point 1: shifts dates kept by the device option (calibration, beam hold) by the patient's offset", () => {
    for (const set of ["device+modified", "cleaning", "rt-research"]) {
      for (const input of inputs) {
        const out = readDicomFile(outputOf(set, input)).dataset;
        const study = out.string(0x00080020)!;
        const offset = daysBetween(DATES.study, study);
        assert.ok(offset > 0 && offset % 7 === 0, `${set} ${input.path}: offset ${offset}`);
        assert.equal(daysBetween(DATES.calibration, out.string(0x00181200)!), offset, `${set} ${input.path} (0018,1200)`);
        const calibration = out.string(0x00181202)!;
        assert.equal(daysBetween(DATES.calibrationDateTime, calibration), offset);
        assert.equal(calibration.slice(8), DATES.calibrationDateTime.slice(8), "time of day kept");
        const hold = out.string(0x300c0127)!;
        assert.equal(daysBetween(DATES.beamHold, hold), offset);
        assert.equal(hold.slice(8), DATES.beamHold.slice(8), "time and UTC offset kept");
      }
    }
  });

  it("point 2: shifts legacy and partial dates with the same offset and empties what is not a date", () => {
    for (const input of inputs) {
      const out = readDicomFile(outputOf("device+modified", input)).dataset;
      const offset = daysBetween(DATES.study, out.string(0x00080020)!);
      assert.equal(daysBetween("20190429", out.string(0x00080021)!), offset, `${input.path}: legacy 2019.04.29`);
      const partial = out.string(0x00080022)!;
      assert.match(partial, /^\d{6}$/, "a partial date keeps its precision");
      assert.notEqual(partial, DATES.partialAcquisition);
      // April 31st is emptied; where the IOD requires a value (an SR's Content Date is Type 1) a dummy
      assert.equal(out.string(0x00080023), input.kind === "SR" || input.kind === "ECG" ? "19000101" : undefined, `${input.path}: April 31st`);
    }
  });

  it("point 1 and 2 principle: every date in the output is empty or the input's date moved by the patient's offset", () => {
    for (const set of ["device+modified", "cleaning", "rt-research"]) {
      for (const input of inputs) {
        const before = new Set(dateValues(input.path).map(([, v]) => v.replace(/\./g, "").slice(0, 8)));
        const out = outputOf(set, input);
        const offset = daysBetween(DATES.study, readDicomFile(out).dataset.string(0x00080020)!);
        for (const [where, value] of dateValues(out)) {
          if (value === "" || value.length < 8 || value === "19000101") continue; // empty, partial (checked above) or the dummy
          const back = new Date(Date.UTC(+value.slice(0, 4), +value.slice(4, 6) - 1, +value.slice(6, 8)) + offset * 86_400_000);
          const original = back.toISOString().slice(0, 10).replace(/-/g, "");
          assert.ok(before.has(original), `${set} ${input.path} ${where}: ${value} is not an input date moved by ${offset} days`);
        }
      }
    }
  });

  it("point 3: finds IDs of sequences (other patient IDs, request attributes) in free text", () => {
    const ids = [MARKERS.otherPatientId, MARKERS.requestedProcedureId, MARKERS.requestAccession, MARKERS.scheduledStepId];
    for (const set of ["default", "cleaning"]) {
      for (const input of inputs) assert.deepEqual(markersIn(outputOf(set, input), ids), [], `${set} ${input.path}`);
    }
    // and the free text itself is kept (only the identifiers went)
    const ct = inputs.find((i) => i.kind === "CT" && i.encoding === "explicit" && i.charset === "utf8")!;
    assert.equal(readDicomFile(outputOf("default", ct)).dataset.string(0x00281055), "ANON ANON XXX");
  });

  it("point 4: removes a Content Sequence outside SR documents, and dummies an SR's own text values", () => {
    for (const input of inputs) {
      const out = readDicomFile(outputOf("default", input), { full: true }).dataset;
      if (input.kind === "SR") {
        const texts = out.items(0x0040a730).map((i) => i.string(0x0040a160)).filter((t) => t !== undefined);
        assert.ok(texts.length > 0 && texts.every((t) => t === "ANONYMIZED"), `${input.path}: ${texts}`);
      } else {
        assert.equal(out.has(0x0040a730), false, input.path);
      }
    }
  });

  it("point 5: scrubs names as whole words only: ROI names, plan labels and ordinary words stay", () => {
    for (const input of inputs) {
      const out = readDicomFile(outputOf("cleaning", input), { full: true }).dataset;
      if (input.kind === "RTSTRUCT") {
        const rois = out.items(0x30060020).map((r) => r.string(0x30060026));
        assert.deepEqual(rois, ["Esophagus_Lee", "PTV_planned", "XXX XXX max dose ring"], input.path);
      }
      if (input.kind === "RTPLAN") {
        assert.equal(out.string(0x300a0002), "Annotated plan");
        assert.equal(out.string(0x300a0004), "ANON XXX");
        assert.equal(out.items(0x300a00b0)[0].string(0x300a00c3), "for ANON XXX");
      }
      assert.equal(out.string(0x00204000), "XX reviewed XXX XXX ANON, see " + out.string(0x00201040) + "; max dose ok", input.path);
    }
  });

  it("point 6: cleans curve descriptions, labels and overlay comments of Implicit VR files too (--clean-graphics)", () => {
    for (const input of inputs) {
      const out = readDicomFile(outputOf("cleaning", input)).dataset;
      assert.equal(out.string(0x50000022), "XXX ANON", `${input.path}: curve description`);
      assert.equal(out.string(0x50002500), "XXX ANON", `${input.path}: curve label`);
      assert.equal(out.string(0x60004000), "XX ANON", `${input.path}: overlay comments`);
    }
  });

  it("point 7: remaps UIDs copied into text to the same keyed UID as everywhere else", () => {
    for (const input of inputs) {
      const out = readDicomFile(outputOf("cleaning", input)).dataset;
      const pri = out.string(0x00201040)!;
      assert.match(pri, /^2\.25\.\d+$/, input.path);
      assert.match(out.string(0x00181030)!, /^ANON 2\.25\.\d+$/, input.path);
      // the same source UID in two texts gives the same new UID, and the keyed value of the
      // referenced-study UID is what a UI element holding it gets
      assert.ok(out.string(0x00204000)!.includes(pri));
    }
  });

  it("point 8: removes the Issuer of Patient ID Qualifiers Sequence in every mode", () => {
    for (const [name] of runs) {
      for (const input of inputs) assert.equal(readDicomFile(outputOf(name, input)).dataset.has(0x00100024), false, `${name} ${input.path}`);
    }
  });

  it("point 9: adds no dciodvfy error for any input kind (US, SR and ECG included) in any option set", () => {
    const normalize = (path: string) => {
      const r = spawnSync("dciodvfy", [path], { encoding: "utf8", timeout: 60_000 });
      if (r.error) throw r.error;
      return new Set((r.stderr + r.stdout).split("\n").filter((l) => l.startsWith("Error"))
        .map((l) => l.replace(/ - "[^"]*"$/, "").replace(/[0-9][0-9.]*/g, "N").trim()));
    };
    let compared = 0;
    for (const [name] of runs) {
      for (const input of inputs) {
        if (input.charset !== "utf8") continue;
        const before = normalize(input.path);
        const added = [...normalize(outputOf(name, input))].filter((e) => !before.has(e));
        assert.deepEqual(added, [], `${name}: new dciodvfy errors for ${input.kind} (${input.encoding})`);
        compared++;
      }
    }
    assert.equal(compared, 4 * 9 * 2);
  });

  it("point 10: keeps numbers of the safe-private list, never text in a listed slot, never a vendor's path", () => {
    for (const input of inputs) {
      const out = readDicomFile(outputOf("cleaning", input), { full: true }).dataset;
      assert.equal(out.has(0x0019110c), false, `${input.path}: B value slot holding text`);
      assert.equal(out.get(0x0019110e)?.value?.length, 24, `${input.path}: numeric B matrix kept`);
      assert.equal(out.string(0x300d1040), "12.5", `${input.path}: TomoTherapy gantry period kept`);
      assert.equal(out.has(0x300d10a4), false, `${input.path}: coded value not on the safe list`);
      assert.equal(out.has(0x32431009), false, `${input.path}: Beam Secondary Name (a path)`);
      assert.equal(out.has(0x32430010), false, `${input.path}: its creator goes with it`);
      const research = readDicomFile(outputOf("rt-research", input), { full: true }).dataset;
      assert.equal(research.string(0x300d10a4), "HELICAL", `${input.path}: kept by the rt-research preset's row`);
    }
  });

  it("reports each replacement with -v and counts them in the summary, without the values", async () => {
    const input = inputs.find((i) => i.kind === "RTSTRUCT" && i.encoding === "implicit" && i.charset === "latin1")!;
    const run = await anonymize(["--key", KEY, "-v", "--clean-descriptors", "--out", join(root, "verbose"), input.path]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Replaced 2 names in \(3006,0020\)\[2\]\/\(3006,0026\) ROIName of "[^"]+"/);
    assert.match(run.stderr, /1 UID in \(0020,1040\) PositionReferenceIndicator/);
    assert.match(run.stderr, /Scrubbed \d+ identifiers \(\d+ names?, \d+ IDs?, \d+ UIDs?\) from free text in 1 file/);
    for (const m of [MARKERS.patientId, "Lee", "Ann", MARKERS.textUid]) assert.ok(!run.stderr.includes(m), `stderr shows ${m}`);
    const quiet = await anonymize(["--key", KEY, "--clean-descriptors", "--out", join(root, "quiet"), input.path]);
    assert.doesNotMatch(quiet.stderr, /Replaced/);
    assert.match(quiet.stderr, /Scrubbed \d+ identifiers/);
  });
});

describe("anonymize: presets", () => {
  it("--preset rt-research is its options plus the coded TomoTherapy rows; basic is the plain profile", async () => {
    const input = inputs.filter((i) => i.charset === "utf8" && i.encoding === "explicit");
    const dir = join(root, "preset-in");
    mkdirSync(dir);
    for (const i of input) writeFileSync(join(dir, `${i.kind}.dcm`), readFileSync(i.path));
    const preset = await anonymize(["--key", KEY, "--allow-burned-in", "--preset", "rt-research", "--out", join(root, "p1"), dir]);
    const rows = join(root, "rows.csv");
    writeFileSync(rows, "(300d,xx10),C,TOMO_HA_01\n(300d,xx1b),C,TOMO_HA_01\n(300d,xxa4),C,TOMO_HA_01\n(300d,xx11),C,TOMO_DD_01\n(300d,xx12),C,TOMO_DD_01\n(300d,xx24),C,TOMO_DD_01\n(300d,xx30),C,TOMO_DD_01\n(3275,xx00),C,Varian Medical Systems VISION 3275\n");
    const flags = await anonymize([
      "--key", KEY, "--allow-burned-in", "--clean-descriptors", "--retain-device-identity", "--retain-dates", "modified",
      "--retain-safe-private", "--profile", rows, "--out", join(root, "p2"), dir,
    ]);
    assert.equal(preset.code, 0, preset.stderr);
    const sums = (r: Run) => r.records.map((x) => `${x.anonymized.from.split("/").pop()} ${x.sha256}`).sort();
    assert.deepEqual(sums(preset), sums(flags));
    const basic = await anonymize(["--key", KEY, "--allow-burned-in", "--preset", "basic", "--out", join(root, "p3"), dir]);
    const plain = await anonymize(["--key", KEY, "--allow-burned-in", "--out", join(root, "p4"), dir]);
    assert.deepEqual(sums(basic), sums(plain));
    const bad = await anonymize(["--key", KEY, "--preset", "aria", "--out", join(root, "p5"), dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown preset "aria" \(use basic, rt-research\)/);
  });
});
